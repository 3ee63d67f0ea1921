"""The watch loop against a scripted fake of the Kubernetes client: list, watch, bookmarks, 410 Gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from services import errors
from services.kinds import RESOURCES
from watcher import watching

RES = RESOURCES["RestateCloudEnvironment"]


def obj(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": name, "resourceVersion": rv}}


class FakeKube:
    """Lists return `lists` in turn; each watch replays the next script of events, then blocks."""

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[list[dict[str, Any]] | Exception]) -> None:
        self.lists, self.watches = lists, watches
        self.list_calls = 0
        self.watched_from: list[str] = []

    async def list(self, res: Any, namespace: str | None = None, **_: Any) -> dict[str, Any]:
        items = self.lists[min(self.list_calls, len(self.lists) - 1)]
        self.list_calls += 1
        return {"items": items, "metadata": {"resourceVersion": str(100 * self.list_calls)}}

    async def watch(self, res: Any, resource_version: str, **_: Any) -> AsyncIterator[dict[str, Any]]:
        self.watched_from.append(resource_version)
        script = self.watches.pop(0) if self.watches else []
        if isinstance(script, Exception):
            raise script
        for event in script:
            yield event
        if not self.watches:
            await asyncio.Event().wait()


async def run(kube: FakeKube, seconds: float = 0.1) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    task = asyncio.create_task(watching.watch_kind(kube, RES, lambda t, o: seen.append((t, o["metadata"]["name"]))))
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return seen


async def test_lists_then_resumes_from_the_last_seen_version_and_bookmark() -> None:
    kube = FakeKube(
        lists=[[obj("a", "1")]],
        watches=[
            [{"type": "MODIFIED", "object": obj("a", "150")}, {"type": "BOOKMARK", "object": obj("", "170")}],
            [{"type": "ADDED", "object": obj("b", "180")}],
        ],
    )
    seen = await run(kube)
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b")]
    assert kube.watched_from == ["100", "170"]  # the bookmark moved the resume point
    assert kube.list_calls == 1


async def test_410_gone_relists_and_reports_everything_again() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    kube = FakeKube(lists=[[obj("a", "1")], [obj("a", "1"), obj("b", "2")]], watches=[[gone], []])
    seen = await run(kube, seconds=0.7)  # after the first backoff, 0.5 s
    assert kube.list_calls == 2
    assert seen == [("ADDED", "a"), ("ADDED", "a"), ("ADDED", "b")]
    assert kube.watched_from == ["100", "200"]


async def test_broken_watch_reconnects_from_the_same_version() -> None:
    kube = FakeKube(lists=[[]], watches=[errors.Unavailable("connection reset"), []])
    await run(kube, seconds=0.7)  # the first backoff is 0.5 s
    assert kube.list_calls == 1
    assert kube.watched_from == ["100", "100"]


async def test_410_on_every_resumed_watch_relists_with_a_growing_backoff_not_in_a_hot_loop() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    kube = FakeKube(lists=[[obj("a", "1")]], watches=[[gone] for _ in range(50)])
    await run(kube, seconds=1.2)  # lists at 0, then after 0.5 s and 1 s more: at 0.5 s and 1.5 s
    assert kube.list_calls == 2


async def test_a_watch_that_delivers_resets_the_backoff() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    delivers = [{"type": "MODIFIED", "object": obj("a", "150")}, gone]
    kube = FakeKube(lists=[[obj("a", "1")]], watches=[[gone], delivers, [gone], []])
    await run(kube, seconds=1.2)  # lists at 0, 0.5 and 1.0 (reset: 0.5 again); without the reset at 0, 0.5 and 1.5
    assert kube.list_calls == 3
