"""A fault-injecting HTTP proxy for tests: it sits between the operator and a Restate admin API.

The operator is pointed at the proxy (`register.url: <proxy.url>`), the proxy forwards every request
to the real admin API, and a test switches faults on and off while a rollout runs:

    Fault.status(500)                     every request answered 500 (no Restate error code: transient)
    Fault.status(503) / (429, retry_after=2)   with Retry-After
    Fault.slow(35)                        answered, but only after 35 s (beyond the client's 30 s timeout)
    Fault.refuse()                        the listening socket is closed: connection refused
    Fault.black_hole()                    connections are accepted and never answered
    None                                  pass everything through

It records each request's arrival (method, path, the fault it met), so a test can count what the
operator tried. Test-only: HTTP/1.1 with Content-Length bodies (what httpx sends), one request per
connection (`Connection: close`). It runs its own event loop in a thread, so sync tests drive it.
Not here: TLS, chunked request bodies, HTTP/2.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Self

import httpx

Mode = Literal["status", "slow", "refuse", "black_hole"]


@dataclass(frozen=True)
class Fault:
    mode: Mode
    status: int = 0
    retry_after: float | None = None
    delay: float = 0.0

    @classmethod
    def http(cls, status: int, *, retry_after: float | None = None) -> Fault:
        return cls("status", status=status, retry_after=retry_after)

    @classmethod
    def slow(cls, delay: float) -> Fault:
        return cls("slow", delay=delay)

    @classmethod
    def refuse(cls) -> Fault:
        return cls("refuse")

    @classmethod
    def black_hole(cls) -> Fault:
        return cls("black_hole")

    def __str__(self) -> str:
        if self.mode == "status":
            return f"HTTP {self.status}" + (f" Retry-After {self.retry_after:g}" if self.retry_after else "")
        if self.mode == "slow":
            return f"slow {self.delay:g}s"
        return "connection refused" if self.mode == "refuse" else self.mode.replace("_", " ")


@dataclass(frozen=True)
class Seen:
    at: float
    method: str
    path: str
    fault: str


class LoopInThread:
    """An event loop in a daemon thread, so sync tests drive an async server: `_open` runs on entry,
    `_close` on exit, `_run` runs a coroutine on the loop and waits for it."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        self._run(self._open())
        return self

    def __exit__(self, *exc: object) -> None:
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        """`_close`, then end what is still running (a handler mid-request, a streamed watch), as
        `asyncio.run` does: a task left pending on a closed loop keeps its sockets open until the
        garbage collector finds them, and their warnings then fail whichever test is running."""
        await self._close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._loop.shutdown_asyncgens()
        await asyncio.sleep(0.1)  # turns for the callbacks that closing scheduled (a transport's connection_lost)

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError


class FaultProxy(LoopInThread):
    """`with FaultProxy(upstream) as proxy: proxy.set(Fault.http(503)); ...; proxy.set(None)`."""

    def __init__(self, upstream: str, host: str = "127.0.0.1") -> None:
        super().__init__("fault-proxy")
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = 0
        self.seen: list[Seen] = []
        self._fault: Fault | None = None
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._held: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set(self, fault: Fault | None) -> None:
        """Switch to `fault` (None: pass through). Refusing closes the socket; leaving it re-opens it
        on the same port; leaving a black hole drops the connections it held."""
        previous, self._fault = self._fault, fault
        if fault is not None and fault.mode == "refuse":
            self._run(self._stop_listening())
        elif previous is not None and previous.mode == "refuse":
            self._run(self._listen())
        if previous is not None and previous.mode == "black_hole" and (fault is None or fault.mode != "black_hole"):
            self._run(self._drop_held())

    def met(self, fault: Fault) -> list[Seen]:
        """The requests that met `fault`."""
        return [s for s in self.seen if s.fault == str(fault)]

    async def _open(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=httpx.Timeout(120.0))
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _drop_held(self) -> None:
        for writer in list(self._held):
            writer.close()
        self._held.clear()

    async def _close(self) -> None:
        await self._drop_held()
        await self._stop_listening()
        if self._client is not None:
            await self._client.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the proxy shuts down: end as a closed connection (3.11's stream server logs a cancelled handler)
        finally:
            if writer not in self._held:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
        length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
        body = await reader.readexactly(length) if length else b""
        fault = self._fault
        self.seen.append(Seen(time.monotonic(), method, path, str(fault) if fault else "pass"))
        if fault is not None and fault.mode == "black_hole":
            self._held.add(writer)
            return
        if fault is not None and fault.mode == "status":
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            await self._respond(writer, fault.status, b"injected fault", {"content-type": "text/plain", **extra})
            return
        if fault is not None and fault.mode == "slow":
            await asyncio.sleep(fault.delay)
        assert self._client is not None
        forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length", "connection")}
        answer = await self._client.request(method, path, content=body, headers=forwarded)
        keep = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "retry-after")}
        await self._respond(writer, answer.status_code, answer.content, keep)

    @staticmethod
    async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} {httpx.codes.get_reason_phrase(status) or 'Status'}"]
        lines += [f"{k}: {v}" for k, v in {**headers, "content-length": str(len(body)), "connection": "close"}.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
