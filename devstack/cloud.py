"""A local double of one Restate Cloud environment, for tests: its admin API, ingress and tunnel.

Restate Cloud cannot be reached from here, so a process of its own plays it in front of
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
import functools
import json
import logging
import random
import signal
import socket
import ssl
import sys
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

from devstack import hosts, procs, tools

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
    """One environment (`environment_id`, `region`), played by a process of its own (so stopping it
    can never hang on a connection a client keeps open): `start()`, then `stop()`."""

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
        self.ca, self.hosts_file, self.log_file = ca, hosts_file, log_file
        self.environment_id = environment_id.removeprefix("env_")
        block = random.randint(0, 249)
        self.environment_ip, self.tunnel_ip = f"127.3.{block}.1", f"127.3.{block}.2"
        self.environment_host = f"{self.environment_id}.env.{region}.restate.cloud"
        self.tunnel_host = f"tunnel.{region}.restate.cloud"
        self.work = log_file.parent / f"cloud-{self.environment_id}"
        self.binds = {
            "admin": f"{self.environment_ip}:9070",
            "ingress": f"{self.environment_ip}:8080",
            "tunnel": f"{self.tunnel_ip}:9080",
        }
        self.config: dict[str, Any] = {
            "kubeconfig": str(kubeconfig),
            "hosts_file": str(hosts_file),
            "runner_state": str(runner_state),
            "backends": {"admin": restate_admin, "ingress": restate_ingress},
            "environment_id": self.environment_id,
            "operator_namespace": operator_namespace,
            "binds": self.binds,
            "cert": str(self.work / "server.pem"),
            "token_file": str(self.work / "token"),
            "requests_file": str(self.work / "requests.json"),
        }
        self._token = token
        self.process: procs.Process | None = None

    @property
    def token(self) -> str:
        return self._token

    @token.setter
    def token(self, value: str) -> None:
        """What the environment accepts from now on (a rotation on Restate Cloud's side)."""
        self._token = value
        Path(self.config["token_file"]).write_text(value)

    @property
    def requests(self) -> collections.Counter[tuple[str, int]]:
        """(listener, HTTP status) -> how many requests got it so far."""
        try:
            counts = json.loads(Path(self.config["requests_file"]).read_text())
        except (OSError, ValueError):
            counts = {}
        return collections.Counter({(k.split()[0], int(k.split()[1])): int(v) for k, v in counts.items()})

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        cert = self.ca.ca.issue_cert(self.environment_host, self.tunnel_host, self.environment_ip, self.tunnel_ip)
        cert.private_key_and_cert_chain_pem.write_to_path(self.config["cert"])
        self.token = self._token
        config_file = self.work / "config.json"
        config_file.write_text(json.dumps(self.config))
        self.process = procs.start(
            self.log_file.stem,
            [sys.executable, "-m", "devstack.cloud", str(config_file)],
            log_dir=self.log_file.parent,
            cwd=tools.REPO,
        )
        for bind in self.binds.values():
            procs.wait_until(
                f"the Restate Cloud double on {bind}",
                functools.partial(_accepts, bind),
                timeout=30,
                process=self.process,
            )
        hosts.write_in_place(
            self.hosts_file, {self.environment_host: self.environment_ip, self.tunnel_host: self.tunnel_ip}, HOSTS_OWNER
        )

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            hosts.write_in_place(self.hosts_file, {}, owner=HOSTS_OWNER)
        if self.process is not None:
            self.process.stop(timeout=5)
            self.process = None

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


def _accepts(bind: str) -> bool:
    host, port = bind.rsplit(":", 1)
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=0.5):
        return True
    return False


class _Environment:
    """The double's server side, in its own process (`python -m devstack.cloud <config.json>`)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.hosts_file, self.runner_state = Path(config["hosts_file"]), Path(config["runner_state"])
        self.backends: dict[str, str] = config["backends"]
        self.environment_id: str = config["environment_id"]
        self.operator_namespace: str = config["operator_namespace"]
        self.token_file, self.requests_file = Path(config["token_file"]), Path(config["requests_file"])
        self.config = config
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = asyncio.Event()
        self._tunnels: tuple[float, dict[str, bool]] = (0.0, {})  # external tunnel name -> connected

    def count(self, listener: str, status: int) -> None:
        self.counts[f"{listener} {status}"] += 1
        scratch = self.requests_file.with_suffix(".tmp")
        scratch.write_text(json.dumps(self.counts))
        scratch.replace(self.requests_file)

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        api = await config.new_client_from_config(config_file=self.config["kubeconfig"])
        binds = self.config["binds"]
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0)) as http:
            apps = {
                binds["admin"]: self._authenticated("admin", http),
                binds["ingress"]: self._authenticated("ingress", http),
                binds["tunnel"]: self._tunnel(http, client.AppsV1Api(api), client.CoreV1Api(api)),
            }
            servers = [self._serve(bind, app, Path(self.config["cert"])) for bind, app in apps.items()]
            try:
                await asyncio.gather(*servers)
            finally:
                await api.close()

    async def _serve(self, bind: str, app: Callable[[Scope, Receive, Send], Awaitable[None]], cert: Path) -> None:
        settings = hypercorn.config.Config()
        settings.bind = [bind]
        settings.certfile = settings.keyfile = str(cert)
        settings.accesslog = settings.errorlog = None
        settings.graceful_timeout = 1.0
        await hypercorn.asyncio.serve(app, settings, shutdown_trigger=self._stop.wait)

    # --- the listeners ---

    def _authenticated(self, name: str, http: httpx.AsyncClient) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            if headers.get("authorization") != f"Bearer {self.token_file.read_text()}":
                self.count(name, 401)
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
        self.count("tunnel", status)
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
            self.count(name, 502)
            logger.info("%s %s %s: 502 (%s)", name, scope["method"], url, exc)
            await _respond(send, 502, [(b"content-type", b"text/plain")], f"unreachable: {exc}".encode())
            return
        self.count(name, response.status_code)
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


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_Environment(json.loads(Path(sys.argv[1]).read_text())).main())
