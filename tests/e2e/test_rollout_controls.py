"""Operating RestateDeployment rollouts through Restate like Argo Rollouts: abort, rollback, history,
the Events that tell a rollout's story, and the columns `kubectl get rsd` shows.

Real SDK services (examples/versioned) behind kwok pods, the real restate-server and the operator's
processes; every handler is called the way the README documents, through the bootstrap ingress.
The Restate service `Versioned` is shared with the other rollout tests: they run one after another.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack import procs
from devstack.operator import Operator
from devstack.stack import Stack
from tests.e2e.test_rollout import rsd
from tests.e2e.versioned import (
    NAME,
    call,
    deployments,
    namespace_for,
    output,
    phases,
    pinned,
    reconciler_url,
    wait_ready,
    whoami,
)
from tests.helpers import apply, condition, get

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]


@pytest.fixture
def ns(operator: Operator) -> Iterator[str]:
    with namespace_for(operator.stack, "controls") as name:
        yield name


def command(stack: Stack, ns: str, handler: str, body: Obj | None = None) -> httpx.Response:
    return httpx.post(reconciler_url(stack, ns, handler), json=body or {}, timeout=60)


def history(stack: Stack, ns: str) -> list[Obj]:
    response = httpx.post(reconciler_url(stack, ns, "history"), json=None, timeout=60)
    assert response.status_code == 200, response.text
    entries: list[Obj] = response.json()
    return entries


def latest(obj: Obj) -> str:
    return str(obj["status"]["latestVersion"])


def held_invocation(stack: Stack, seconds: float) -> str:
    invocation: str = call(stack, "hold", seconds, send=True).json()["invocationId"]
    procs.wait_until("the invocation is pinned", lambda: pinned(stack, invocation), timeout=30)
    return invocation


def rollout_events(stack: Stack, ns: str) -> list[Obj]:
    listed = stack.control_plane.kubectl(
        "get", "events.events.k8s.io", "-n", ns, "-o", "json", f"--field-selector=regarding.name={NAME}"
    )
    events = [e for e in json.loads(listed)["items"] if e["reason"].startswith("Version")]
    return sorted(events, key=lambda e: (e.get("eventTime") or "", e["metadata"]["creationTimestamp"]))


def test_abort_serves_the_previous_version_again_and_keeps_the_new_one(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest(wait_ready(stack, ns))
    apply(stack, rsd(ns, "v2", stack))
    v2 = latest(wait_ready(stack, ns))
    held = held_invocation(stack, 6)  # on v2, the version being aborted

    response = command(stack, ns, "abort")
    assert response.status_code == 200, response.text
    obj = wait_ready(stack, ns)
    assert latest(obj) == v1
    assert obj["status"]["pinnedVersion"] == v1
    assert whoami(stack) == "v1", "Ready means Restate routes new invocations to the restored version"
    assert "until the spec asks for another version" in condition(obj, "Ready")["message"]
    procs.wait_until("v2 Draining", lambda: phases(stack, ns).get(v2) == "Draining", timeout=30)
    v2_id = history(stack, ns)[1]["deploymentId"]
    assert v2_id in deployments(stack), "not deregistered while its invocation runs"

    procs.wait_until("the held invocation finished", lambda: output(stack, held) is not None, timeout=60)
    assert output(stack, held) == "started on v2, finished on v2", "nothing lost: v2 finished its own work"
    procs.wait_until("v2 Drained", lambda: phases(stack, ns).get(v2) == "Drained", timeout=60)
    assert get(stack, "rs", v2, ns) is not None, "the aborted version is kept for inspection"
    entries = {e["name"]: e for e in history(stack, ns)}
    assert entries[v1]["cause"] == f"abort of {v2}"
    assert entries[v1]["pinned"] is True

    # A new spec is a new intent: the abort no longer holds.
    apply(stack, rsd(ns, "v1-side", stack))
    obj = wait_ready(stack, ns)
    assert "pinnedVersion" not in obj["status"]
    assert whoami(stack) == "v1-side"


def test_rollback_to_a_named_version_and_history_tells_what_ran(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest(wait_ready(stack, ns))
    apply(stack, rsd(ns, "v2", stack))
    v2 = latest(wait_ready(stack, ns))
    procs.wait_until("v1 Drained", lambda: phases(stack, ns).get(v1) == "Drained", timeout=60)
    assert not any(v1 in d["uri"] for d in deployments(stack).values())

    unknown = command(stack, ns, "rollback", {"version": "nope"})
    assert unknown.status_code == 404
    assert "no version nope" in unknown.text
    assert command(stack, ns, "rollback", {}).status_code == 400

    held = held_invocation(stack, 4)  # on v2, which the rollback replaces
    v2_id = wait_ready(stack, ns)["status"]["deploymentId"]
    assert command(stack, ns, "rollback", {"version": v1}).status_code == 200
    obj = wait_ready(stack, ns)
    assert latest(obj) == v1
    assert whoami(stack) == "v1", "the drained version was registered again"
    assert v2_id in deployments(stack), "v2 stays registered while its invocation runs"
    procs.wait_until("the held invocation finished", lambda: output(stack, held) is not None, timeout=60)
    assert output(stack, held) == "started on v2, finished on v2"

    entries = history(stack, ns)
    assert [e["name"] for e in entries] == [v1, v2]
    first, second = entries
    assert first["images"] == ["restate-operator.local/examples/versioned:v1"]
    assert first["cause"] == f"rollback from {v2}"
    assert second["cause"] == "spec generation 2"
    assert first["deploymentId"] in deployments(stack)
    assert {"registeredAt", "createdAt", "hash", "phase"} <= set(first)

    columns = stack.control_plane.kubectl("get", "rsd", NAME, "-n", ns)
    header, row = columns.strip().splitlines()
    assert header.split()[5:10] == ["AGE", "LATEST", "DRAINING", "INVOCATIONS", "PAUSED"]
    assert row.split()[6] == v1


def test_describe_tells_the_story_of_a_rollout_in_order(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest(wait_ready(stack, ns))
    held = held_invocation(stack, 8)  # outlives v2's start: its pod is Ready only once its process answers
    apply(stack, rsd(ns, "v2", stack))
    v2 = latest(wait_ready(stack, ns))
    procs.wait_until("the held invocation finished", lambda: output(stack, held) is not None, timeout=60)
    procs.wait_until("v1 Drained", lambda: phases(stack, ns).get(v1) == "Drained", timeout=60)

    events = rollout_events(stack, ns)
    story = [(e["reason"], v1 if v1 in e["note"] else v2 if v2 in e["note"] else e["note"]) for e in events]
    assert story == [
        ("VersionRegistered", v1),
        ("VersionLatest", v1),
        ("VersionRegistered", v2),
        ("VersionLatest", v2),
        ("VersionDraining", v1),
        ("VersionDeregistered", v1),
        ("VersionDrained", v1),
    ]
    draining = next(e for e in events if e["reason"] == "VersionDraining")
    assert "1 invocation(s) still need it" in draining["note"]
    described = stack.control_plane.kubectl("describe", "rsd", NAME, "-n", ns)
    assert described.index("VersionLatest") < described.index("VersionDraining") < described.index("VersionDrained")
