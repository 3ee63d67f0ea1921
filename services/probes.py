"""A small ASGI app for /healthz, /readyz and /metrics, served apart from the Restate endpoint.

Shared by `services` and `watcher`: each passes its own readiness check.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import make_asgi_app

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def probes_app(ready: Callable[[], tuple[bool, dict[str, Any]]]) -> ASGIApp:
    """`ready()` returns (is ready, details shown in the /readyz body)."""
    metrics_app = make_asgi_app()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/metrics":
            await metrics_app(scope, receive, send)
            return
        body: dict[str, Any]
        if path == "/healthz":
            status, body = 200, {"status": "ok"}
        elif path == "/readyz":
            ok, details = ready()
            status, body = (200 if ok else 503), {"ready": ok, **details}
        else:
            status, body = 404, {"error": "not found"}
        payload = json.dumps(body).encode()
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": payload})

    return app
