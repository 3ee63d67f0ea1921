"""Taking a RestateCluster over from upstream's operator (2.8.1) restarts nothing.

The objects are the ones upstream created for RestateCluster `rc1`, as recorded in
tests/fixtures/upstream/restatecluster.yaml (its spec in specs.yaml), minus what
the apiserver fills in: uid, resourceVersion, creationTimestamp, generation, managedFields, status
and the Service's allocated clusterIP. Every child there carries the same metadata
(`upstream_metadata`: the CR's annotations, kubectl's last-applied-configuration included, its labels
and ours, an owner reference without blockOwnerDeletion); the Namespace, which the recording does not
list, is built the same way, as upstream's `object_meta` does.

They are created the way upstream created them: the children by server-side apply under the field
manager `restate-operator`, which is ours too (so our apply removes whatever upstream set and we do
not declare), and the finalizer by a JSON patch without a field manager or User-Agent, which the
apiserver records as manager `unknown`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack import procs
from devstack.operator import Operator
from devstack.stack import Stack
from tests import upstream
from tests.helpers import condition, get
from tests.integration.test_cluster import wait_for

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
NAME = "rc1"
FINALIZER = "clusters.restate.dev"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
RECORDED = "restatecluster.yaml"
_RECORDED_RC1 = upstream.find(RECORDED, "RestateCluster", NAME)
# What `kubectl apply` of specs.yaml's rc1 stored; upstream copied it onto every child and the pod template.
RC1_LAST_APPLIED: str = _RECORDED_RC1["metadata"]["annotations"][LAST_APPLIED]
RC1: Obj = {
    "apiVersion": _RECORDED_RC1["apiVersion"],
    "kind": "RestateCluster",
    "metadata": {"name": NAME, "annotations": {LAST_APPLIED: RC1_LAST_APPLIED}},
    "spec": _RECORDED_RC1["spec"],
}
# Made by the apiserver and its controllers in every namespace, not by upstream's operator.
NOT_UPSTREAMS = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}


def upstream_metadata(name: str, uid: str, *, namespaced: bool = True) -> Obj:
    meta: Obj = {
        "name": name,
        "annotations": {LAST_APPLIED: RC1_LAST_APPLIED},
        "labels": {"app.kubernetes.io/instance": NAME, "app.kubernetes.io/name": "restate"},
        "ownerReferences": [
            {"apiVersion": "restate.dev/v1", "kind": "RestateCluster", "name": NAME, "uid": uid, "controller": True}
        ],
    }
    if namespaced:
        meta["namespace"] = NAME
    return meta


def upstream_children(uid: str) -> list[Obj]:
    """What upstream's operator created for rc1 (whose uid is `uid`), Namespace first."""
    children: list[Obj] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": upstream_metadata(NAME, uid, namespaced=False)}
    ]
    recorded_uid = _RECORDED_RC1["metadata"]["uid"]
    for obj in upstream.objects(RECORDED):
        if obj["kind"] == "RestateCluster" or (obj["kind"], obj["metadata"]["name"]) in NOT_UPSTREAMS:
            continue
        child = upstream.as_created(obj, owner_uid=uid, recorded_owner_uid=recorded_uid)
        spec = child.get("spec", {})
        if spec.get("clusterIP") not in (None, "None"):  # allocated by the recording's apiserver (not headless)
            del spec["clusterIP"], spec["clusterIPs"]
        children.append(child)
    return children


def remove_finalizers(stack: Stack, name: str) -> None:
    stack.control_plane.kubectl(
        "patch", "rsc", name, "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]', check=False
    )


def pod_ready(stack: Stack) -> Obj | None:
    pod = get(stack, "pod", "restate-0", NAME)
    return pod if condition(pod, "Ready").get("status") == "True" else None


def test_taking_over_from_upstream_keeps_every_pod_and_deletes_cleanly(operator: Operator) -> None:
    stack, cp = operator.stack, operator.stack.control_plane
    assert get(stack, "rsc", NAME) is None, "rc1 is this test's"
    operator.stop_watchers()  # upstream's operator runs, not ours
    try:
        cp.kubectl("create", "-f", "-", input=json.dumps(RC1))
        uid = get(stack, "rsc", NAME)["metadata"]["uid"]  # type: ignore[index]
        upstream.add_finalizer_as_upstream(stack, f"/apis/restate.dev/v1/restateclusters/{NAME}", FINALIZER)
        upstream.apply_as_upstream(stack, upstream_children(uid))
        procs.wait_until("upstream's node ready", lambda: pod_ready(stack) is not None, timeout=90)
        before = get(stack, "statefulset", "restate", NAME)
        pod = pod_ready(stack)
        assert before is not None
        assert pod is not None
        recorded = json.loads(cp.kubectl("get", "rsc", NAME, "-o", "json", "--show-managed-fields"))
        finalizer_managers = [
            m["manager"] for m in recorded["metadata"]["managedFields"] if "f:finalizers" in json.dumps(m["fieldsV1"])
        ]
        assert finalizer_managers == ["unknown"], "the finalizer is upstream's, as in the recording"
    finally:
        operator.start_watcher()

    try:
        wait_for(stack, NAME, "Ready", "True", timeout=90)
        after = get(stack, "statefulset", "restate", NAME)
        assert after is not None
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["metadata"]["generation"] == before["metadata"]["generation"] == 1, "the spec did not change"
        assert after["spec"]["template"] == before["spec"]["template"]
        assert after["status"]["updateRevision"] == before["status"]["updateRevision"]
        assert get(stack, "pod", "restate-0", NAME)["metadata"]["uid"] == pod["metadata"]["uid"], "no restart"  # type: ignore[index]
        configmaps = json.loads(cp.kubectl("get", "configmap", "-n", NAME, "-o", "json"))["items"]
        assert sorted(c["metadata"]["name"] for c in configmaps) == ["kube-root-ca.crt", "restate-config-831f490d"]
        assert after["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "restate-operator", "ours now"

        cp.kubectl("delete", "rsc", NAME, "--wait=false")
        procs.wait_until("rc1 deleted", lambda: get(stack, "rsc", NAME) is None, timeout=60)
    finally:
        remove_finalizers(stack, NAME)  # whatever happened above, leave no stuck cluster behind
        cp.kubectl("delete", "rsc", NAME, "--ignore-not-found", "--wait=false")
