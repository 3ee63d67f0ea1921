"""/healthz, /readyz and /metrics, served apart from the Restate endpoint, from a thread of their own.

Shared by `services` and `watcher`: each passes its own readiness check. Busy is not dead: with
hundreds of passes at once the services' event loop took over 5 s to answer /metrics (the idle
benchmark at 500 resources), which a kubelet's 1 s probe timeout would turn into a restart in the
middle of the work, again and again. So the probes run on their own thread and event loop and
answer at once; /healthz reports the process dead only when its main loop has not beaten for
`STALE_SECONDS` (stuck, not busy).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import hypercorn.asyncio
import hypercorn.config
from prometheus_client import make_asgi_app

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


BEAT_SECONDS = 1.0
STALE_SECONDS = 60.0  # the main loop has not run a 1 s timer for this long: it is stuck


class Heartbeat:
    """The main event loop's pulse, read from the probes' thread."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.last

    async def run(self) -> None:
        while True:
            self.last = time.monotonic()
            await asyncio.sleep(BEAT_SECONDS)


def probes_app(
    ready: Callable[[], tuple[bool, dict[str, Any]]], beat_age: Callable[[], float] = lambda: 0.0
) -> ASGIApp:
    """`ready()` returns (is ready, details shown in the /readyz body); `beat_age()` the seconds since
    the main loop last beat."""
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
            age = beat_age()
            if age < STALE_SECONDS:
                status, body = 200, {"status": "ok"}
            else:
                status, body = 503, {"status": f"the event loop has not run for {age:.0f} s"}
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


async def serve(ready: Callable[[], tuple[bool, dict[str, Any]]], bind: str, stop: asyncio.Event) -> None:
    """Serve the probes on `bind` from a thread with its own event loop until `stop` is set; beat the
    heartbeat on the calling loop meanwhile. Raises when the probes cannot be served (a taken port)."""
    heartbeat = Heartbeat()
    config = hypercorn.config.Config()
    config.bind = [bind]
    config.accesslog = None
    config.graceful_timeout = 1.0
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="probes", daemon=True)
    thread.start()
    shutdown = asyncio.Event()  # awaited, and so bound, on the probes' loop
    app = probes_app(ready, heartbeat.age)
    coroutine = hypercorn.asyncio.serve(app, config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]
    served = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))
    beating = asyncio.create_task(heartbeat.run(), name="heartbeat")
    stopping = asyncio.create_task(stop.wait(), name="probes stop")
    either: set[asyncio.Future[Any]] = {served, stopping}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if served.done():
            served.result()
    finally:
        beating.cancel()
        stopping.cancel()
        loop.call_soon_threadsafe(shutdown.set)
        with contextlib.suppress(Exception):
            await served
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, 5)
        loop.close()
