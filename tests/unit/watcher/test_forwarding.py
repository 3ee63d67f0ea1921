"""The forwarder against a fake ingress (httpx.MockTransport) and a fake clock."""

from __future__ import annotations

import asyncio
import json

import httpx

from watcher.forwarding import Forwarder
from watcher.mapping import Forward, Target

TARGET = Target("RestateDeployment", "team/svc")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def forward(reason: str = "spec", rv: int = 1) -> Forward:
    return Forward(TARGET, reason, f"RestateDeployment/team/svc@{rv}", f"{reason}:uid:{rv}")


async def run_briefly(forwarder: Forwarder, seconds: float = 0.05) -> None:
    task = asyncio.create_task(forwarder.run())
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_burst_for_one_resource_becomes_one_request_with_the_last_trigger() -> None:
    sent: list[httpx.Request] = []
    clock = Clock()

    def ingress(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202, json={"invocationId": "inv_1", "status": "Accepted"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(ingress), base_url="http://ingress") as http:
        forwarder = Forwarder(http, coalesce_seconds=0.3, max_delay_seconds=1.0, max_in_flight=4, clock=clock)
        for rv in range(1, 11):
            forwarder.submit(forward(rv=rv))
            clock.now += 0.1  # each event before the window closes
        await run_briefly(forwarder)
        assert sent == []  # the last event restarted the wait
        clock.now += 0.3
        await run_briefly(forwarder)
    assert len(sent) == 1
    assert sent[0].headers["idempotency-key"].startswith("spec:merged:")  # covers all ten events
    assert json.loads(sent[0].content) == {"reason": "spec", "trigger": "RestateDeployment/team/svc@10"}
    assert forwarder.pending() == 0


async def test_leading_edge_sends_a_quiet_resources_spec_change_at_once_and_merges_the_rest() -> None:
    sent: list[httpx.Request] = []
    clock = Clock()

    def ingress(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202)

    async with httpx.AsyncClient(transport=httpx.MockTransport(ingress), base_url="http://ingress") as http:
        forwarder = Forwarder(
            http, coalesce_seconds=0.3, max_delay_seconds=1.0, max_in_flight=4, leading_edge=True, clock=clock
        )
        forwarder.submit(forward(rv=1))
        await run_briefly(forwarder)
        assert len(sent) == 1, "no debounce for the first spec change"
        for rv in range(2, 6):
            clock.now += 0.1
            forwarder.submit(forward(rv=rv))
        forwarder.submit(forward("child", rv=6))
        await run_briefly(forwarder)
        assert len(sent) == 1, "the burst after it waits and merges"
        clock.now += 0.3
        await run_briefly(forwarder)
        assert len(sent) == 2
        clock.now += 1.0  # quiet again
        forwarder.submit(forward("child", rv=7))
        await run_briefly(forwarder)
        assert len(sent) == 2, "children's events are always debounced"
    assert json.loads(sent[1].content)["trigger"] == "RestateDeployment/team/svc@6"


async def test_steady_stream_is_still_forwarded_by_the_deadline() -> None:
    sent: list[httpx.Request] = []
    clock = Clock()

    def ingress(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202)

    async with httpx.AsyncClient(transport=httpx.MockTransport(ingress), base_url="http://ingress") as http:
        forwarder = Forwarder(http, coalesce_seconds=0.3, max_delay_seconds=1.0, max_in_flight=4, clock=clock)
        forwarder.submit(forward(rv=1))
        for rv in range(2, 8):
            clock.now += 0.2
            forwarder.submit(forward(rv=rv))
        await run_briefly(forwarder)
    assert len(sent) == 1, "1.2s after the first event the deadline (1s) has passed"


async def test_failed_forward_is_retried_not_dropped() -> None:
    responses = [httpx.Response(503), httpx.Response(202)]
    sent: list[httpx.Request] = []
    clock = Clock()

    def ingress(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return responses.pop(0)

    async with httpx.AsyncClient(transport=httpx.MockTransport(ingress), base_url="http://ingress") as http:
        forwarder = Forwarder(http, coalesce_seconds=0.0, max_delay_seconds=0.0, max_in_flight=4, clock=clock)
        forwarder.submit(forward())
        await run_briefly(forwarder)
        assert len(sent) == 1
        assert forwarder.pending() == 1
        clock.now += 1.0  # past the first backoff (0.5s)
        forwarder.submit(forward("child", rv=2))  # a newer event merges into the retry
        await run_briefly(forwarder)
    assert len(sent) == 2
    assert sent[1].headers["idempotency-key"].startswith("child:merged:")
    assert json.loads(sent[1].content)["trigger"] == "RestateDeployment/team/svc@2"
    assert forwarder.pending() == 0
