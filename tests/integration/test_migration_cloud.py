"""Taking a RestateCloudEnvironment over from upstream's operator (2.8.1) restarts no tunnel pod.

The objects are the ones upstream created for RestateCloudEnvironment `env1`, as recorded in
tests/fixtures/upstream/restatecloudenvironment.yaml (its spec in specs.yaml), minus
what the apiserver fills in: uid, resourceVersion, creationTimestamp, generation, managedFields,
status, the Deployment's revision annotation and the Service's allocated clusterIP. The tunnel
Deployment and Service carry upstream's metadata: the selector labels only, an owner reference to
the resource without blockOwnerDeletion.

They are created the way upstream created them: the resource by `kubectl apply` (client-side), the
tunnel objects by server-side apply under the field manager `restate-operator`, which is ours too
(so our apply removes whatever upstream set and we do not declare), and the finalizer by a JSON
patch without a field manager or User-Agent, which the apiserver records as manager `unknown`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack import procs
from devstack.operator import OPERATOR_NAMESPACE, Operator
from devstack.stack import Stack
from tests import upstream
from tests.helpers import get
from tests.integration.test_reconcile_core import wait_ready

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
NAME = "env1"
TUNNEL = f"tunnel-{NAME}"
FINALIZER = "cloudenvironments.restate.dev"
TOKEN_SECRET = "cloud-token"
RECORDED = "restatecloudenvironment.yaml"
# specs.yaml's env1, as `kubectl apply`-ed for the recording.
ENV1: Obj = upstream.find("specs.yaml", "RestateCloudEnvironment", NAME)


def upstream_children(uid: str) -> list[Obj]:
    """What upstream's operator created for env1 (whose uid is `uid`): its tunnel Deployment and Service."""
    recorded_uid = upstream.find(RECORDED, "RestateCloudEnvironment", NAME)["metadata"]["uid"]
    children = [
        upstream.as_created(upstream.find(RECORDED, kind, TUNNEL), owner_uid=uid, recorded_owner_uid=recorded_uid)
        for kind in ("Deployment", "Service")
    ]
    for key in ("clusterIP", "clusterIPs"):  # allocated by the recording's apiserver
        children[1]["spec"].pop(key, None)
    return children


def tunnel_pods(stack: Stack) -> list[Obj]:
    out = stack.control_plane.kubectl(
        "get", "pods", "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/instance={TUNNEL}", "-o", "json"
    )
    pods: list[Obj] = json.loads(out)["items"]
    return pods


def test_taking_over_from_upstream_keeps_the_tunnel_pod(operator: Operator) -> None:
    stack, cp = operator.stack, operator.stack.control_plane
    assert get(stack, "rce", NAME) is None, "env1 is this test's"
    operator.stop_watchers()  # upstream's operator runs, not ours
    try:
        secret: Obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": TOKEN_SECRET, "namespace": OPERATOR_NAMESPACE},
            "stringData": {"token": "t0k3n"},
        }
        cp.kubectl("apply", "-f", "-", input=json.dumps(secret))
        cp.kubectl("apply", "-f", "-", input=json.dumps(ENV1))
        uid = get(stack, "rce", NAME)["metadata"]["uid"]  # type: ignore[index]
        upstream.add_finalizer_as_upstream(
            stack, f"/apis/restate.dev/v1beta1/restatecloudenvironments/{NAME}", FINALIZER
        )
        upstream.apply_as_upstream(stack, upstream_children(uid))

        def available() -> bool:
            deployment = get(stack, "deployment", TUNNEL, OPERATOR_NAMESPACE)
            return bool(deployment and (deployment.get("status") or {}).get("availableReplicas") == 1)

        procs.wait_until("upstream's tunnel available", available, timeout=90)
        before = get(stack, "deployment", TUNNEL, OPERATOR_NAMESPACE)
        assert before is not None
        pods_before = sorted(p["metadata"]["uid"] for p in tunnel_pods(stack))
        assert len(pods_before) == 1
    finally:
        operator.start_watcher()

    try:
        wait_ready(stack, NAME, timeout=90)
        after = get(stack, "deployment", TUNNEL, OPERATOR_NAMESPACE)
        assert after is not None
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["metadata"]["generation"] == before["metadata"]["generation"] == 1, "the spec did not change"
        assert after["spec"]["template"] == before["spec"]["template"]
        assert after["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "restate-operator", "ours now"
        assert sorted(p["metadata"]["uid"] for p in tunnel_pods(stack)) == pods_before, "no restart"
        service = get(stack, "service", TUNNEL, OPERATOR_NAMESPACE)
        assert service is not None
        assert service["spec"]["ports"] == [{"name": "health", "port": 9090, "protocol": "TCP", "targetPort": 9090}]

        cp.kubectl("delete", "rce", NAME, "--wait=false")
        procs.wait_until("env1 deleted", lambda: get(stack, "rce", NAME) is None, timeout=60)
    finally:
        cp.kubectl(
            "patch", "rce", NAME, "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]', check=False
        )
        cp.kubectl("delete", "rce", NAME, "--ignore-not-found", "--wait=false")
        cp.kubectl("delete", "secret", TOKEN_SECRET, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")
