"""SIGKILL of each process the operator depends on, mid-rollout (issue 14's process faults).

Each scenario: v1 serves and holds an invocation; v2 is applied; at the named phase one process is
killed, left dead for a few seconds and started again. Then the invariants (tests/e2e/invariants.py):
v1 kept its registration and pods while its invocation ran, the invocation finished on v1, the
resource is Ready, Restate routes to v2, and v2 was registered once. The time from the restart to
Ready-and-routed is the recovery time (`CHAOS_RESULTS=<file>` appends one JSON line per scenario).

`make test` runs the draining phase for every process; `make chaos` (marker `chaos`) adds the
pending phase and 2-minute outages. Shares the Restate service `Versioned`: tests run one at a time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from devstack import procs
from devstack.operator import Operator
from tests.e2e.invariants import DrainWatch
from tests.e2e.outages import TARGETS, kill_and_revive
from tests.e2e.test_rollout import latest_name, rsd
from tests.e2e.versioned import call, deployments, namespace_for, output, phases, pinned, wait_ready, whoami
from tests.helpers import apply

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 3.0
LONG_OUTAGE_SECONDS = 120.0
RECOVERY_BOUND_SECONDS = 120.0  # stated in docs: every resource converges within this after a restart


SCENARIOS = [pytest.param(target, "draining", OUTAGE_SECONDS, id=f"{target}-draining") for target in TARGETS] + [
    pytest.param(
        target,
        phase,
        outage,
        id=f"{target}-{phase}-{int(outage)}s",
        marks=pytest.mark.chaos,
    )
    for target in TARGETS
    for phase, outage in (("pending", OUTAGE_SECONDS), ("draining", LONG_OUTAGE_SECONDS))
]


@pytest.fixture
def ns(operator: Operator) -> Iterator[str]:
    with namespace_for(operator.stack, "kill", timeout=120) as name:
        yield name


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("target", "phase", "outage"), SCENARIOS)
def test_a_killed_dependency_loses_nothing_and_the_rollout_carries_on(
    operator: Operator, ns: str, target: str, phase: str, outage: float
) -> None:
    stack = operator.stack
    kill, revive = kill_and_revive(operator, target)
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest_name(wait_ready(stack, ns))
    held = call(stack, "hold", 10 + outage, send=True).json()["invocationId"]
    procs.wait_until("the invocation is pinned to v1", lambda: pinned(stack, held), timeout=30)
    with DrainWatch(stack, ns, v1, held) as watch:
        apply(stack, rsd(ns, "v2", stack))
        if phase == "draining":
            procs.wait_until("v1 Draining", lambda: phases(stack, ns).get(v1) == "Draining", timeout=60)
        kill()
        time.sleep(outage)
        revive()
        revived = time.monotonic()
        obj = wait_ready(stack, ns, timeout=RECOVERY_BOUND_SECONDS)
        v2 = latest_name(obj)
        procs.wait_until("Restate routes to v2", lambda: whoami(stack) == "v2", timeout=RECOVERY_BOUND_SECONDS)
        recovery = time.monotonic() - revived
        procs.wait_until("the invocation finished", lambda: output(stack, held) is not None, timeout=120)
    assert watch.violations == []
    assert output(stack, held) == "started on v1, finished on v1"
    assert v2 != v1
    assert len([d for d in deployments(stack).values() if f"/{v2}." in d["uri"]]) == 1, "registered once"
    procs.wait_until("v1 drained afterwards", lambda: phases(stack, ns).get(v1) == "Drained", timeout=90)
    result = {
        "scenario": f"SIGKILL {target} ({phase})",
        "window_s": outage,
        "recovery_s": round(recovery, 2),
        "observations": watch.observations,
    }
    print(f"chaos: {json.dumps(result)}")
    if path := os.environ.get("CHAOS_RESULTS"):  # make chaos: tests/chaos_report.py tabulates them
        with open(path, "a") as out:
            out.write(json.dumps(result) + "\n")
