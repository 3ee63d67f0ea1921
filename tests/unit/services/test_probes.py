"""The probes answer from their own thread, so a busy event loop is not mistaken for a dead one."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from devstack import procs
from services import probes


async def started(port: int, stop: asyncio.Event) -> asyncio.Task[None]:
    server = asyncio.create_task(
        probes.serve(lambda: (True, {"kinds": ["RestateDeployment"]}), f"127.0.0.1:{port}", stop)
    )
    url = f"http://127.0.0.1:{port}/healthz"
    await procs.wait_until_async("the probes", lambda: asyncio.to_thread(procs.http_ok, url), timeout=10)
    return server


async def test_healthz_answers_while_the_main_loop_is_busy_and_readyz_says_why() -> None:
    stop, port = asyncio.Event(), procs.free_port()
    server = await started(port, stop)
    answer: dict[str, Any] = {}

    def ask() -> None:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        answer.update(status=response.status_code, at=time.monotonic())

    asker = threading.Thread(target=ask)
    busy_until = time.monotonic() + 2.0
    asker.start()
    while time.monotonic() < busy_until:  # hundreds of passes at once: the loop runs nothing else meanwhile
        pass
    await asyncio.to_thread(asker.join)
    assert answer["status"] == 200
    assert answer["at"] < busy_until, "answered while the main loop was still busy, not after"

    ready = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "kinds": ["RestateDeployment"]}
    stop.set()
    await asyncio.wait_for(server, 10)
    assert not procs.http_ok(f"http://127.0.0.1:{port}/healthz"), "stopped with the process"


async def call(app: probes.ASGIApp, path: str) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


async def test_healthz_fails_only_when_the_loop_has_not_beaten_for_a_minute() -> None:
    heartbeat = probes.Heartbeat()
    app = probes.probes_app(lambda: (True, {}), heartbeat.age)
    assert await call(app, "/healthz") == (200, {"status": "ok"})
    heartbeat.last -= probes.STALE_SECONDS - 5  # busy for 55 s: still alive
    assert (await call(app, "/healthz"))[0] == 200
    heartbeat.last -= 10
    status, body = await call(app, "/healthz")
    assert status == 503
    assert body["status"].startswith("the event loop has not run for 6"), body


# hypercorn does not close the socket it failed to bind (the process exits on it in production)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_taken_port_fails_the_process_instead_of_serving_no_probes() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            await asyncio.wait_for(probes.serve(lambda: (True, {}), f"127.0.0.1:{port}", asyncio.Event()), 10)
