"""A fault-injecting proxy in front of the Kubernetes API, for tests: what an overloaded or
restarting apiserver does to its clients, on demand.

The operator's processes get a kubeconfig whose server is the proxy (`http://127.0.0.1:<port>`,
the same bearer token); the proxy forwards every request, watches streamed, to the real apiserver
over TLS. A test switches one fault on and off while a rollout runs:

    KubeFault.conflict(every=2)     every 2nd write answered 409 Conflict ("the object has been modified")
    KubeFault.throttle(retry_after=2)   every request answered 429 with Retry-After, as priority and
                                    fairness does when a flow's queue is full
    KubeFault.cut_watches(after=2)  open watch streams broken at once, new ones after 2 s (an apiserver
                                    restart or a load balancer's idle timeout)
    KubeFault.gone()                open watches broken, and every resumed watch (one with a
                                    resourceVersion) answered with the ERROR event 410 Expired,
                                    as after etcd compaction: the client must list again
    None                            pass everything through

The bodies are real `Status` objects, so clients parse them as they would the apiserver's. Every
request is recorded (method, path, watch or not, the fault it met). Test-only: plain HTTP to the
clients, loopback only; its event loop runs in a thread so sync tests drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web

from devstack.fault_proxy import LoopInThread

Mode = Literal["conflict", "throttle", "cut_watches", "gone"]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "accept-encoding"})


@dataclass(frozen=True)
class KubeFault:
    mode: Mode
    every: int = 1
    retry_after: float = 1.0
    after: float = 0.0

    @classmethod
    def conflict(cls, every: int = 1) -> KubeFault:
        return cls("conflict", every=every)

    @classmethod
    def throttle(cls, retry_after: float = 1.0) -> KubeFault:
        return cls("throttle", retry_after=retry_after)

    @classmethod
    def cut_watches(cls, after: float = 2.0) -> KubeFault:
        return cls("cut_watches", after=after)

    @classmethod
    def gone(cls) -> KubeFault:
        return cls("gone")

    def __str__(self) -> str:
        if self.mode == "conflict":
            return "409 on every write" if self.every == 1 else f"409 on 1 write in {self.every}"
        if self.mode == "throttle":
            return f"429 Retry-After {self.retry_after:g}"
        if self.mode == "cut_watches":
            return f"watches cut after {self.after:g}s"
        return "410 Gone on every watch resume"


@dataclass(frozen=True)
class Seen:
    at: float
    method: str
    path: str
    watch: bool
    fault: str  # "pass", or what the request met


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A metav1.Status, as the apiserver answers a failed request."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class KubeFaultProxy(LoopInThread):
    """`with KubeFaultProxy(server, ca_file) as proxy: proxy.set(KubeFault.throttle()); ...; proxy.set(None)`."""

    def __init__(self, upstream: str, ca_file: Path, host: str = "127.0.0.1") -> None:
        super().__init__("kube-fault-proxy")
        self.upstream = upstream.rstrip("/")
        self.ca_file = ca_file
        self.host = host
        self.port = 0
        self.seen: list[Seen] = []
        self._fault: KubeFault | None = None
        self._writes = 0  # writes counted while a conflict fault is on
        self._watches: set[asyncio.Event] = set()  # one per open watch stream: set to cut it
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        # Each upstream TLS connection until it is closed: see `_end_upstreams`.
        self._upstreams: dict[asyncio.Transport, asyncio.Future[None]] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def kubeconfig(self, token: str) -> str:
        """A kubeconfig (JSON) pointing at the proxy with the given bearer token."""
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "faulty", "cluster": {"server": self.url}}],
                "users": [{"name": "user", "user": {"token": token}}],
                "contexts": [{"name": "faulty", "context": {"cluster": "faulty", "user": "user"}}],
                "current-context": "faulty",
            }
        )

    def set(self, fault: KubeFault | None) -> None:
        """Switch to `fault` (None: pass through). Watch faults break the streams open now."""
        self._fault, self._writes = fault, 0
        if fault is not None and fault.mode in ("cut_watches", "gone"):
            self._loop.call_soon_threadsafe(self._cut_all)

    def met(self, fault: KubeFault) -> list[Seen]:
        """The requests that met `fault`."""
        return [s for s in self.seen if s.fault == str(fault)]

    def _cut_all(self) -> None:
        for watch in self._watches:
            watch.set()

    async def _open(self) -> None:
        tls = ssl.create_default_context(cafile=str(self.ca_file))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _close(self) -> None:
        self._cut_all()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        await self._end_upstreams()

    async def _end_upstreams(self) -> None:
        """A connection aiohttp closes on release (a watch cut mid-stream) ends its TLS session with
        alerts over the next turns of the loop, and the session no longer tracks it. Abort what is
        still open and wait until it is gone: on a stopped loop it would stay half closed until the
        garbage collector warned about it, in whichever test ran then."""
        for transport in list(self._upstreams):
            transport.abort()
        if self._upstreams:
            await asyncio.wait(list(self._upstreams.values()), timeout=5)

    def _track(self, upstream: aiohttp.ClientResponse) -> None:
        connection = upstream.connection
        protocol = connection.protocol if connection is not None else None
        transport = protocol.transport if protocol is not None else None
        closed = protocol.closed if protocol is not None else None
        if transport is None or closed is None or transport in self._upstreams:
            return
        self._upstreams[transport] = closed
        closed.add_done_callback(lambda _: self._upstreams.pop(transport, None))

    def _fault_for(self, method: str, watch: bool, resumed: bool) -> KubeFault | None:
        fault = self._fault
        if fault is None:
            return None
        if fault.mode == "conflict" and method in WRITES:
            self._writes += 1
            return fault if self._writes % fault.every == 0 else None
        if fault.mode == "throttle":
            return fault
        if fault.mode == "gone" and watch and resumed:
            return fault
        if fault.mode == "cut_watches" and watch:
            return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") in ("true", "1")
        resumed = bool(request.query.get("resourceVersion"))
        fault = self._fault_for(request.method, watch, resumed)
        self.seen.append(Seen(time.monotonic(), request.method, request.path, watch, str(fault) if fault else "pass"))
        if fault is not None and fault.mode == "conflict":
            message = (
                f"Operation cannot be fulfilled on {request.path}: the object has been modified;"
                " please apply your changes to the latest version and try again"
            )
            return web.json_response(status_body(409, "Conflict", message), status=409)
        if fault is not None and fault.mode == "throttle":
            body = status_body(429, "TooManyRequests", "Too many requests, please try again later.")
            return web.json_response(body, status=429, headers={"Retry-After": f"{fault.retry_after:g}"})
        if fault is not None and fault.mode == "gone":
            rv = request.query.get("resourceVersion")
            event = {"type": "ERROR", "object": status_body(410, "Expired", f"too old resource version: {rv}")}
            return web.Response(text=json.dumps(event) + "\n", content_type="application/json")
        return await self._forward(request, watch, fault)

    async def _forward(self, request: web.Request, watch: bool, fault: KubeFault | None) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        async with self._session.request(
            request.method, self.upstream + request.rel_url.raw_path_qs, headers=headers, data=body or None
        ) as upstream:
            self._track(upstream)
            keep = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "retry-after")}
            if not watch:
                return web.Response(status=upstream.status, body=await upstream.read(), headers=keep)
            response = web.StreamResponse(status=upstream.status, headers=keep)
            await response.prepare(request)
            stream = asyncio.Event()
            self._watches.add(stream)
            copy = asyncio.ensure_future(self._copy(upstream, response))
            cut = asyncio.ensure_future(stream.wait())
            try:
                limit = fault.after if fault is not None else None
                done, _ = await asyncio.wait({copy, cut}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
                if copy not in done:  # cut: break the connection mid-stream, as a dying server would
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                with contextlib.suppress(ConnectionError):
                    await response.write_eof()
                return response
            finally:
                self._watches.discard(stream)
                for task in (copy, cut):
                    task.cancel()

    @staticmethod
    async def _copy(upstream: aiohttp.ClientResponse, response: web.StreamResponse) -> None:
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
