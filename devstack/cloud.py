"""A local double of one Restate Cloud environment, for tests: its admin API, ingress and tunnel.

Restate Cloud cannot be reached from here, so a thread named `restate-cloud` plays it in front of
the stack's own restate-server, under the names the operator derives from a
RestateCloudEnvironment (mapped in the stack's hosts file, so the services process and
restate-server resolve them), over TLS with a certificate from the stack's test CA (which both
trust through `SSL_CERT_FILE`):

- `https://<id>.env.<region>.restate.cloud:9070` (admin) and `:8080` (ingress) demand
  `Authorization: Bearer <token>` (`token` may be changed while running: a rotation), answer 401
  otherwise, and forward to restate-server;
- `https://tunnel.<region>.restate.cloud:9080/<id>/<tunnel>/<scheme>/<host>/<port>/<path>` forwards
  what Restate sends through a tunnel: for an external tunnel (named by a RestateCloudEnvironment's
  uid) only while that environment's tunnel Deployment has an available replica, to `<host>` as the
  hosts file maps it; for an in-process tunnel (`<host>` = `in-process`) to the pod whose
  containers carry `RESTATE_INPROC_TUNNEL_NAME=<tunnel>`, at the address the pod runner gave it.

Not covered (said in docs/parity.md): the tunnel's own protocol and request signing, Cloud's
identity and rate limits, HTTP/2 to the services (the double talks HTTP/1.1 to them, so the SDK
serves request/response; Restate Cloud uses bidirectional streams through a real tunnel).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import certifi
import httpx
import hypercorn.asyncio
import hypercorn.config
import trustme
from kubernetes_asyncio import client, config

from devstack import hosts

logger = logging.getLogger("restate-cloud")
HOSTS_OWNER = "restate cloud double"
TUNNEL_CACHE_SECONDS = 0.5
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-connection", "host"}
# Cloud ends authentication at its edge: the token is not passed on (Restate would keep it with the
# invocation's headers, in its journal).
NOT_FORWARDED = HOP_BY_HOP | {"authorization"}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class TestCA:
    """The stack's certificate authority: `bundle` (the public roots plus this CA) is what the
    processes that talk to the double trust, so every other TLS peer still verifies."""

    __test__ = False  # not a pytest class

    def __init__(self, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.pem = work / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.pem))
        self.bundle = work / "bundle.pem"
        self.bundle.write_text(Path(certifi.where()).read_text() + self.ca.cert_pem.bytes().decode())


class CloudDouble:
    """One environment (`environment_id`, `region`), started with `start()`, stopped with `stop()`."""

    def __init__(
        self,
        *,
        ca: TestCA,
        kubeconfig: Path,
        hosts_file: Path,
        runner_state: Path,
        restate_admin: str,
        restate_ingress: str,
        environment_id: str,
        region: str,
        token: str,
        operator_namespace: str,
        log_file: Path,
    ) -> None:
        self.ca, self.kubeconfig, self.hosts_file, self.runner_state = ca, kubeconfig, hosts_file, runner_state
        self.backends = {"admin": restate_admin, "ingress": restate_ingress}
        self.environment_id = environment_id.removeprefix("env_")
        self.region, self.token, self.operator_namespace = region, token, operator_namespace
        self.log_file = log_file
        block = random.randint(0, 249)
        self.environment_ip, self.tunnel_ip = f"127.3.{block}.1", f"127.3.{block}.2"
        self.environment_host = f"{self.environment_id}.env.{region}.restate.cloud"
        self.tunnel_host = f"tunnel.{region}.restate.cloud"
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()  # (listener, status) -> count
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._handler: logging.Handler | None = None
        self._tunnels: tuple[float, dict[str, bool]] = (0.0, {})  # external tunnel name -> connected

    # --- life cycle ---

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._handler = logging.FileHandler(self.log_file)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(self._handler)
        logger.setLevel(logging.INFO)
        self._thread = threading.Thread(target=self._run, name="restate-cloud", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._failure is not None:
            self.stop()
            raise RuntimeError("the Restate Cloud double did not start") from self._failure
        hosts.write_in_place(
            self.hosts_file, {self.environment_host: self.environment_ip, self.tunnel_host: self.tunnel_ip}, HOSTS_OWNER
        )

    def stop(self, timeout: float = 15.0) -> None:
        with contextlib.suppress(OSError):
            hosts.write_in_place(self.hosts_file, {}, owner=HOSTS_OWNER)
        if self._thread is not None:
            if self._loop is not None and self._stop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
            self._thread = None
        if self._handler is not None:
            logger.removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    @property
    def admin_url(self) -> str:
        return f"https://{self.environment_host}:9070"

    def ingress(self) -> httpx.Client:
        """A client for the environment's ingress from the test process (which has no private
        hosts file): by address, with the host name for TLS and the token."""
        return httpx.Client(
            base_url=f"https://{self.environment_ip}:8080",
            verify=ssl.create_default_context(cafile=str(self.ca.pem)),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60.0,
        )

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() or in the log
            self._failure = exc
            logger.exception("the Restate Cloud double stopped on an error")
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        cert = self.ca.ca.issue_cert(self.environment_host, self.tunnel_host, self.environment_ip, self.tunnel_ip)
        cert_file = self.log_file.parent / f"cloud-{self.environment_id}.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
        api = await config.new_client_from_config(config_file=str(self.kubeconfig))
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0)) as http:
            apps = {
                f"{self.environment_ip}:9070": self._authenticated("admin", http),
                f"{self.environment_ip}:8080": self._authenticated("ingress", http),
                f"{self.tunnel_ip}:9080": self._tunnel(http, client.AppsV1Api(api), client.CoreV1Api(api)),
            }
            servers = [asyncio.create_task(self._serve(bind, app, cert_file)) for bind, app in apps.items()]
            await asyncio.sleep(0.5)  # let them bind (a failure ends the tasks at once)
            for task in servers:
                if task.done():
                    task.result()
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                await asyncio.gather(*servers, return_exceptions=True)
                await api.close()

    async def _serve(self, bind: str, app: Callable[[Scope, Receive, Send], Awaitable[None]], cert: Path) -> None:
        settings = hypercorn.config.Config()
        settings.bind = [bind]
        settings.certfile = settings.keyfile = str(cert)
        settings.accesslog = settings.errorlog = None
        assert self._stop is not None
        await hypercorn.asyncio.serve(app, settings, shutdown_trigger=self._stop.wait)

    # --- the listeners ---

    def _authenticated(self, name: str, http: httpx.AsyncClient) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            if headers.get("authorization") != f"Bearer {self.token}":
                self.requests[(name, 401)] += 1
                logger.info("%s %s %s: 401 (bad or missing token)", name, scope["method"], scope["path"])
                body = json.dumps({"message": "Unauthorized: the API token is missing or invalid"}).encode()
                await _respond(send, 401, [(b"content-type", b"application/json")], body)
                return
            url = (
                self.backends[name]
                + scope["path"]
                + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
            )
            await self._forward(name, http, scope, receive, send, url)

        return app

    def _tunnel(
        self, http: httpx.AsyncClient, apps: client.AppsV1Api, core: client.CoreV1Api
    ) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            parts = scope["path"].lstrip("/").split("/", 5)
            if len(parts) < 5 or parts[0] != self.environment_id:
                await self._refuse(send, 404, f"no tunnel at {scope['path']} in environment {self.environment_id}")
                return
            _, tunnel, scheme, host, port, *rest = parts
            path = "/" + (rest[0] if rest else "")
            if host == "in-process":
                address = await self._in_process(core, tunnel)
                if address is None:
                    await self._refuse(send, 503, f"in-process tunnel {tunnel} is not connected")
                    return
                target = f"http://{address}{path}"
            else:
                if not await self._connected(apps, tunnel):
                    await self._refuse(send, 503, f"tunnel {tunnel} is not connected (no tunnel client available)")
                    return
                ip = hosts.entries(self.hosts_file).get(host)
                if ip is None:
                    await self._refuse(send, 502, f"the tunnel client cannot resolve {host}")
                    return
                target = f"{scheme}://{ip}:{port}{path}"
            if scope["query_string"]:
                target += f"?{scope['query_string'].decode()}"
            await self._forward("tunnel", http, scope, receive, send, target)

        return app

    async def _connected(self, apps: client.AppsV1Api, tunnel: str) -> bool:
        """Whether a tunnel client of that name runs: a tunnel Deployment with an available replica
        whose pods say RESTATE_TUNNEL_NAME=<tunnel> (cached briefly; Restate retries)."""
        checked, known = self._tunnels
        if time.monotonic() - checked > TUNNEL_CACHE_SECONDS:
            listed = await apps.list_namespaced_deployment(
                self.operator_namespace, label_selector="app.kubernetes.io/name=restate-cloud-tunnel-client"
            )
            known = {}
            for deployment in listed.items:
                for container in deployment.spec.template.spec.containers:
                    for env in container.env or []:
                        if env.name == "RESTATE_TUNNEL_NAME":
                            known[env.value] = bool(deployment.status.available_replicas)
            self._tunnels = (time.monotonic(), known)
        return known.get(tunnel, False)

    async def _in_process(self, core: client.CoreV1Api, tunnel: str) -> str | None:
        """`ip:port` of a running pod that holds the in-process tunnel `tunnel`."""
        try:
            running = [p for p in json.loads(self.runner_state.read_text()) if p.get("alive")]
        except (OSError, ValueError):
            return None
        for entry in running:
            with contextlib.suppress(client.ApiException):
                pod = await core.read_namespaced_pod(entry["name"], entry["namespace"])
                env = {e.name: e.value for c in pod.spec.containers for e in c.env or []}
                if env.get("RESTATE_INPROC_TUNNEL_NAME") == tunnel:
                    return f"{entry['ip']}:{entry['port']}"
        return None

    async def _refuse(self, send: Send, status: int, message: str) -> None:
        self.requests[("tunnel", status)] += 1
        logger.info("tunnel: %d %s", status, message)
        await _respond(send, status, [(b"content-type", b"text/plain")], message.encode())

    async def _forward(
        self, name: str, http: httpx.AsyncClient, scope: Scope, receive: Receive, send: Send, url: str
    ) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.decode().lower() not in NOT_FORWARDED]
        try:
            response = await http.request(scope["method"], url, headers=headers, content=body)
        except httpx.HTTPError as exc:
            self.requests[(name, 502)] += 1
            logger.info("%s %s %s: 502 (%s)", name, scope["method"], url, exc)
            await _respond(send, 502, [(b"content-type", b"text/plain")], f"unreachable: {exc}".encode())
            return
        self.requests[(name, response.status_code)] += 1
        logger.info("%s %s %s: %d", name, scope["method"], url, response.status_code)
        out = [
            (k.encode(), v.encode())
            for k, v in response.headers.multi_items()
            if k.lower() not in HOP_BY_HOP and k.lower() not in ("content-length", "content-encoding")  # decoded
        ]
        await _respond(send, response.status_code, out, response.content)


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
