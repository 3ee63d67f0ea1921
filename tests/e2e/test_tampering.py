"""Someone changes our children by hand: the operator repairs what it owns, and never loses a
draining version's work (issue 14's tampering faults).

Shares the Restate service `Versioned` with the other e2e modules: tests run one after another.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from devstack import procs
from devstack.operator import Operator
from tests.e2e.test_rollout import latest_name, rsd
from tests.e2e.versioned import NAME, call, deployments, namespace_for, output, phases, pinned, wait_ready, whoami
from tests.helpers import apply, get

pytestmark = pytest.mark.e2e


@pytest.fixture
def ns(operator: Operator) -> Iterator[str]:
    with namespace_for(operator.stack, "tamper") as name:
        yield name


def test_hand_edits_of_the_latest_versions_objects_are_repaired(operator: Operator, ns: str) -> None:
    stack = operator.stack
    kubectl = stack.control_plane.kubectl
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest_name(wait_ready(stack, ns))

    kubectl("scale", "rs", v1, "-n", ns, "--replicas=3")
    procs.wait_until("replicas restored", lambda: (get(stack, "rs", v1, ns) or {})["spec"]["replicas"] == 1, timeout=30)

    for service in (v1, NAME):  # the version's Service (Restate calls it) and the stable one
        kubectl("delete", "service", service, "-n", ns, "--wait=true")

        def recreated(name: str = service) -> bool:
            return get(stack, "service", name, ns) is not None

        procs.wait_until(f"Service {service} recreated", recreated, timeout=30)
    assert whoami(stack) == "v1"

    kubectl(
        "patch",
        "rsd",
        NAME,
        "-n",
        ns,
        "--type=json",
        "-p",
        json.dumps([{"op": "remove", "path": "/metadata/finalizers"}]),
    )
    procs.wait_until(
        "finalizer re-added",
        lambda: "deployments.restate.dev" in ((get(stack, "rsd", NAME, ns) or {})["metadata"].get("finalizers") or []),
        timeout=30,
    )


def test_a_draining_versions_replicaset_deleted_by_hand_does_not_lose_its_work(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest_name(wait_ready(stack, ns))
    held = call(stack, "hold", 15, send=True).json()["invocationId"]
    procs.wait_until("the invocation is pinned to v1", lambda: pinned(stack, held), timeout=30)
    apply(stack, rsd(ns, "v2", stack))
    wait_ready(stack, ns)
    procs.wait_until("v1 Draining", lambda: phases(stack, ns).get(v1) == "Draining", timeout=30)

    stack.control_plane.kubectl("delete", "rs", v1, "-n", ns, "--wait=true")
    procs.wait_until("v1 re-created", lambda: get(stack, "rs", v1, ns) is not None, timeout=30)
    procs.wait_until("the invocation finished", lambda: output(stack, held) is not None, timeout=90)
    assert output(stack, held) == "started on v1, finished on v1", "its work was not lost"
    events = stack.control_plane.kubectl(
        "get", "events.events.k8s.io", "-n", ns, "-o", "json", "--field-selector=reason=VersionRecreated"
    )
    (event,) = json.loads(events)["items"]
    assert f"ReplicaSet {v1} was deleted while 1 invocation(s) still need it" in event["note"]
    procs.wait_until("v1 drains as usual afterwards", lambda: phases(stack, ns).get(v1) == "Drained", timeout=60)


def test_deleting_the_namespace_of_a_resource_completes(operator: Operator) -> None:
    """Regression: in a namespace being deleted Kubernetes refuses new Events; the deletion waited for
    its DeleteRequested Event, failed for good, and held the namespace in Terminating forever."""
    stack = operator.stack
    namespace = f"gone-{uuid.uuid4().hex[:6]}"
    stack.control_plane.kubectl("create", "namespace", namespace)
    apply(stack, rsd(namespace, "v1", stack))
    v1 = latest_name(wait_ready(stack, namespace))
    stack.control_plane.kubectl("delete", "namespace", namespace, "--wait=false")
    procs.wait_until("the namespace is gone", lambda: get(stack, "namespace", namespace) is None, timeout=120)
    assert not any(f"/{v1}." in d["uri"] for d in deployments(stack).values()), "deregistered on the way"
