"""A pass skips applying a Service only when the same body was applied onto the object as it still is."""

from __future__ import annotations

from typing import Any, cast

from services.reconcilers import replicaset_mode
from services.reconcilers.replicaset_mode import AppliedServices, ServiceSeen
from services.reconcilers.steps import Steps


class RecordingSteps:
    """Stands in for `Steps`: only `apply` may be called; it answers with a new resourceVersion."""

    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(obj)
        return {"metadata": {"name": obj["metadata"]["name"], "resourceVersion": str(100 + len(self.applied))}}


def service(selector: str = "abc") -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": "svc", "namespace": "team"}, "spec": {"selector": {"h": selector}}}


async def apply_once(
    body: dict[str, Any], seen: ServiceSeen | None, last: AppliedServices
) -> tuple[list[dict[str, Any]], AppliedServices]:
    steps, now = RecordingSteps(), AppliedServices()
    await replicaset_mode._apply_service(cast(Steps, steps), body, seen, last, now)
    return steps.applied, now


async def test_the_same_body_onto_an_unchanged_object_is_not_applied_again() -> None:
    written, memory = await apply_once(service(), None, AppliedServices())  # absent: applied
    assert len(written) == 1
    assert memory.services["svc"][1] == "101"
    unchanged: ServiceSeen = {"resource_version": "101", "ours": True}
    written, kept = await apply_once(service(), unchanged, memory)
    assert written == []
    assert kept == memory  # remembered for the next pass too


async def test_an_edited_deleted_or_rebuilt_service_is_applied() -> None:
    _, memory = await apply_once(service(), None, AppliedServices())
    edited: ServiceSeen = {"resource_version": "250", "ours": True}  # someone wrote it since
    assert len((await apply_once(service(), edited, memory))[0]) == 1
    assert len((await apply_once(service(), None, memory))[0]) == 1  # deleted
    unchanged: ServiceSeen = {"resource_version": "101", "ours": True}
    assert len((await apply_once(service("def"), unchanged, memory))[0]) == 1  # the pass wants another body
