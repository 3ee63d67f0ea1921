"""Pure helpers for status conditions (Ready, Progressing, Degraded) with observedGeneration.

`lastTransitionTime` moves only when a condition's status changes, as Kubernetes conventions ask.
"""

from __future__ import annotations

from typing import Any

READY, PROGRESSING, DEGRADED = "Ready", "Progressing", "Degraded"
Condition = dict[str, Any]


def condition(type_: str, status: bool | None, reason: str, message: str, generation: int | None) -> Condition:
    value = "Unknown" if status is None else ("True" if status else "False")
    cond: Condition = {"type": type_, "status": value, "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def merge(previous: list[Condition] | None, current: list[Condition], now: str) -> list[Condition]:
    """`current` with lastTransitionTime kept from `previous` where the status did not change."""
    before = {c["type"]: c for c in previous or []}
    merged = []
    for cond in current:
        old = before.get(cond["type"])
        keep = old is not None and old.get("status") == cond["status"] and old.get("lastTransitionTime")
        merged.append({**cond, "lastTransitionTime": old["lastTransitionTime"] if keep and old else now})
    return merged


def find(conditions: list[Condition] | None, type_: str) -> Condition | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def ready_endpoints(endpoint_slice: dict[str, Any]) -> int:
    """Endpoints of one EndpointSlice that are ready (an endpoint without conditions counts as ready, as
    Kubernetes reads it). Both what a version's registration waits for and what the watcher compares."""
    return sum(1 for e in endpoint_slice.get("endpoints") or [] if (e.get("conditions") or {}).get("ready", True))
