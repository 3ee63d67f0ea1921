"""Self-registration with the bootstrap Restate, against a fake admin API."""

from __future__ import annotations

import asyncio
import json

import httpx

from services import registration
from services.clients.restate_admin import RestateAdmin

OURS = {"DeploymentReconciler": ["reconcile", "status"]}


def manifest(handlers: dict[str, list[str]]) -> dict[str, object]:
    services = [{"name": name, "handlers": [{"name": h} for h in hs]} for name, hs in handlers.items()]
    return {"id": "dp_1", "services": services}


async def test_registers_with_force_until_restate_sees_this_versions_handlers() -> None:
    """An old pod answering discovery during a rollout must not leave its handlers registered."""
    answers = [
        httpx.Response(503, json={"message": "starting"}),
        httpx.Response(200, json=manifest({"DeploymentReconciler": ["reconcile"]})),  # an older pod answered
        httpx.Response(200, json=manifest(OURS)),
    ]
    bodies: list[dict[str, object]] = []

    def api(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return answers.pop(0)

    async with RestateAdmin("http://restate:9070", transport=httpx.MockTransport(api)) as admin:
        await registration.register_until_done(admin, "http://operator:9080", OURS, asyncio.Event(), first_retry=0.001)
    assert answers == []
    assert bodies == [{"uri": "http://operator:9080", "force": True, "breaking": False}] * 3


async def test_stops_retrying_when_the_process_stops() -> None:
    calls = 0

    def api(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        stop.set()
        return httpx.Response(503, json={"message": "unavailable"})

    stop = asyncio.Event()
    async with RestateAdmin("http://restate:9070", transport=httpx.MockTransport(api)) as admin:
        await registration.register_until_done(admin, "http://operator:9080", OURS, stop, first_retry=60)
    assert calls == 1


def test_handlers_are_compared_by_service_and_handler_name() -> None:
    assert registration.registered_handlers(manifest({"A": ["b", "a"]})) == {"A": ["a", "b"]}
