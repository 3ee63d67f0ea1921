"""SIGKILL of each process the operator depends on while a RestateDeployment is being deleted
(issue 14's *deleting* phase; tests/e2e/test_kills.py covers pending and draining).

v1 serves and holds an invocation; the RestateDeployment is deleted, and its finalizer waits for
the invocation (`DeletionBlocked`). Then one process is killed, left dead for a few seconds and
started again. While the invocation runs, v1 must keep its registration and its pods (the drain
watch); afterwards the invocation finished on v1, the deletion completed within a stated bound of
the invocation's end, v1 is no longer registered with Restate, and nothing of it is left in the
namespace. Shares the Restate service `Versioned`: tests run one at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from devstack import procs
from devstack.operator import Operator
from tests.e2e.chaos import record
from tests.e2e.invariants import DrainWatch
from tests.e2e.outages import TARGETS, kill_and_revive
from tests.e2e.test_kills import OUTAGE_SECONDS
from tests.e2e.test_rollout import latest_name, registered_uris, rsd
from tests.e2e.versioned import NAME, call, completed, namespace_for, pinned, wait_ready
from tests.helpers import apply, condition, get

pytestmark = pytest.mark.e2e

# From the invocation's end to the object's disappearance (a failed pass's backoff and a margin).
DELETE_BOUND_SECONDS = 120.0


@pytest.fixture
def ns(operator: Operator) -> Iterator[str]:
    with namespace_for(operator.stack, "delete-kill", timeout=120) as name:
        yield name


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "target", [pytest.param(t, marks=() if t == "services" else pytest.mark.chaos) for t in TARGETS]
)
def test_a_killed_dependency_during_deletion_loses_nothing_and_the_deletion_completes(
    operator: Operator, ns: str, target: str
) -> None:
    stack = operator.stack
    kill, revive = kill_and_revive(operator, target)
    apply(stack, rsd(ns, "v1", stack))
    ready = wait_ready(stack, ns)
    v1 = latest_name(ready)
    v1_id = next(v["deploymentId"] for v in ready["status"]["versions"] if v["name"] == v1)
    held = call(stack, "hold", 15 + OUTAGE_SECONDS, send=True).json()["invocationId"]
    procs.wait_until("the invocation is pinned to v1", lambda: pinned(stack, held), timeout=30)
    with DrainWatch(stack, ns, v1, held) as watch:
        stack.control_plane.kubectl("delete", "rsd", NAME, "-n", ns, "--wait=false")
        procs.wait_until(
            "DeletionBlocked",
            lambda: condition(get(stack, "rsd", NAME, ns), "Ready").get("reason") == "DeletionBlocked",
            timeout=60,
        )
        kill()
        time.sleep(OUTAGE_SECONDS)
        revive()
        # Its status row, not its output: the deletion deregisters v1, the service's only deployment,
        # as soon as the invocation ends, and then Restate no longer serves the output.
        done = procs.wait_until("the invocation finished", lambda: completed(stack, held) or {}, timeout=120)
        finished = time.monotonic()
        procs.wait_until(
            "the deletion completed", lambda: get(stack, "rsd", NAME, ns) is None, timeout=DELETE_BOUND_SECONDS
        )
        deleted = time.monotonic() - finished
    assert watch.violations == []
    assert (done["completion_result"], done["pinned_deployment_id"]) == ("success", v1_id), "finished on v1"
    assert not any(f"/{v1}." in uri for uri in registered_uris(stack)), "v1 deregistered"
    procs.wait_until(
        "nothing of v1 left",
        lambda: not stack.control_plane.kubectl("get", "rs,svc", "-n", ns, "-o", "name", check=False).strip(),
        timeout=60,
    )
    record({"scenario": f"SIGKILL {target} (deleting)", "window_s": OUTAGE_SECONDS, "recovery_s": round(deleted, 2)})
