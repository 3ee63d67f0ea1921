"""What the benchmarks share: a throwaway stack with the operator, readiness polling, percentiles."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack.operator import Operator
from devstack.stack import Stack


@contextmanager
def running_operator() -> Iterator[Stack]:
    """A fresh stack (control plane, restate-server, pod runner) with services and watcher; stopped after."""
    with tempfile.TemporaryDirectory() as work:
        stack = Stack(Path(work))
        operator = Operator(stack)
        try:
            stack.start()
            operator.start()
            yield stack
        finally:
            operator.stop()
            stack.stop()


def ready_generation(stack: Stack, kind: str, name: str, namespace: str | None = None) -> int | None:
    """The generation the resource is Ready for, or None while it is not Ready."""
    scope = ["-n", namespace] if namespace else []
    obj = json.loads(stack.control_plane.kubectl("get", kind, name, *scope, "-o", "json"))
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready: dict[str, Any] = next((c for c in conditions if c["type"] == "Ready"), {})
    return int(ready["observedGeneration"]) if ready.get("status") == "True" else None


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(label: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{label} over {len(ms)} runs (ms): p50 {percentile(ms, 0.5):.0f}  p95 {percentile(ms, 0.95):.0f}  "
        f"min {min(ms):.0f}  max {max(ms):.0f}"
    )
