"""Which child events reach a reconcile (`mapping.child_news`) and which are dropped.

Covered: the ReplicaSet and EndpointSlice sequences of a create as the apiserver and the controllers
write them (recorded from the benchmark's stack), our own applies coming back, edits by others
(also in the same second, and removal-only ones that stamp nothing), first sight after a relist,
kinds compared by their whole status, deletions, and all of it through the watcher. Not covered: the apiserver's
stamping itself (the integration and e2e tests run against a real one).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from watcher import mapping
from watcher.mapping import Forward, Seen

OURS = ("restate-operator", "Apply", None, "2026-12-01T13:09:28Z")
KCM_STATUS = ("kube-controller-manager", "Update", "status")


def writes(*entries: tuple[str, str, str | None, str]) -> list[dict[str, Any]]:
    return [
        {"manager": m, "operation": op, "time": t, **({"subresource": sub} if sub else {})} for m, op, sub, t in entries
    ]


def replica_set(status: dict[str, Any], *entries: tuple[str, str, str | None, str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "svc-abc",
            "namespace": "team",
            "uid": "rs1",
            "resourceVersion": "1",
            "generation": 1,
            "annotations": {"restate.dev/template": "{}"},
            "managedFields": writes(*entries),
            **meta,
        },
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "svc", "image": "v1"}]}}},
        "status": status,
    }


def endpoint_slice(ready: bool | None, *, address: str = "10.0.0.3") -> dict[str, Any]:
    conditions = {} if ready is None else {"conditions": {"ready": ready, "serving": ready}}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "svc-abc-x1",
            "namespace": "team",
            "uid": "es1",
            "labels": {"restate.dev/owned-by": "svc"},
            "managedFields": writes(("kube-controller-manager", "Update", None, "2026-12-01T13:09:29Z")),
        },
        "endpoints": [{"addresses": [address], **conditions}],
    }


def replay(kind: str, objects: list[dict[str, Any]]) -> list[str | None]:
    """`child_news` for each object in turn, as the watcher remembers them between events."""
    previous: Seen | None = None
    reasons = []
    for obj in objects:
        now = mapping.seen(obj)
        reasons.append(mapping.child_news(kind, previous, now))
        previous = now
    return reasons


def test_a_created_replica_set_is_news_only_when_its_pods_are_ready() -> None:
    status_at = "2026-12-01T13:09:2{}Z".format
    events = [
        replica_set({"replicas": 0}, OURS),  # our apply, coming back as ADDED
        replica_set({"replicas": 0, "observedGeneration": 1}, OURS, (*KCM_STATUS, status_at(8))),
        replica_set({"replicas": 1, "observedGeneration": 1}, OURS, (*KCM_STATUS, status_at(9))),
        replica_set(
            {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1},
            OURS,
            ("kube-controller-manager", "Update", "status", "2026-12-01T13:09:30Z"),
        ),
    ]
    annotated = copy.deepcopy(events[-1])  # our deployment-id annotation, by a manager of ours
    annotated["metadata"]["annotations"]["restate.dev/deployment-id"] = "dp_1"
    annotated["metadata"]["managedFields"] += writes(
        ("restate-operator/deployment-id", "Apply", None, "2026-12-01T13:09:32Z")
    )
    assert replay("ReplicaSet", [*events, annotated]) == [None, None, None, "state", None]


def test_edits_by_others_are_news_even_in_the_same_second_or_when_they_only_remove() -> None:
    base = replica_set({"readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1}, OURS)
    edited = copy.deepcopy(base)
    edited["metadata"]["annotations"]["note"] = "1"
    edited["metadata"]["managedFields"] += writes(("kubectl", "Update", None, "2026-12-01T13:10:00Z"))
    again = copy.deepcopy(edited)  # kubectl once more within the same second: its stamp does not move
    again["metadata"]["annotations"]["note"] = "2"
    removed = copy.deepcopy(again)  # someone removed an annotation of ours: nobody's stamp moves
    del removed["metadata"]["annotations"]["restate.dev/template"]
    reasons = replay("ReplicaSet", [base, edited, again, removed])
    assert reasons[1:] == [
        "edited by kubectl",
        "edited by someone (no stamp moved)",
        "edited by someone (no stamp moved)",
    ]


def test_our_write_in_the_same_event_as_anothers_stamp_is_news() -> None:
    base = replica_set({}, OURS)
    both = copy.deepcopy(base)
    both["metadata"]["labels"] = {"a": "b"}
    both["metadata"]["managedFields"] = writes(
        ("restate-operator", "Apply", None, "2026-12-01T13:11:00Z"), ("helm", "Update", None, "2026-12-01T13:11:00Z")
    )
    assert replay("ReplicaSet", [base, both])[1] == "edited by helm"


def test_a_scale_down_that_settles_without_new_ready_pods_is_news() -> None:
    """3 wanted, 1 ready; scaled to 1: the controller catching up makes the version available."""
    wanting = replica_set(
        {"replicas": 3, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1}, OURS, generation=1
    )
    wanting["spec"]["replicas"] = 3
    scaled = replica_set(
        {"replicas": 3, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1}, OURS, generation=2
    )
    caught_up = replica_set(
        {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 2}, OURS, generation=2
    )
    assert replay("ReplicaSet", [wanting, scaled, caught_up])[2] == "state"


def test_endpoint_slices_are_news_when_they_start_serving() -> None:
    """Registration waits for a ready endpoint; losing them is the ReplicaSet's news (or nobody's)."""
    events = [
        endpoint_slice(False),
        endpoint_slice(True),
        endpoint_slice(True, address="10.0.0.4"),  # another ready pod
        endpoint_slice(False),  # its pods going
        endpoint_slice(True),  # serving again
    ]
    assert replay("EndpointSlice", events) == [None, "state", None, None, "state"]
    assert replay("EndpointSlice", [endpoint_slice(None)]) == ["state"]  # no conditions: ready, as Kubernetes reads it


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(replica_set({}, OURS), None, id="our-apply"),
        pytest.param(
            replica_set({"readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1}, OURS),
            "state",
            id="relisted-with-ready-pods",
        ),
        pytest.param(
            replica_set({}, ("someone", "Update", None, "2026-12-01T13:09:28Z")),
            "first seen, written by someone",
            id="someone-elses",
        ),
        pytest.param(replica_set({}), "first seen, written by ", id="no-managed-fields"),
    ],
)
def test_first_sight(obj: dict[str, Any], expected: str | None) -> None:
    assert replay("ReplicaSet", [obj]) == [expected]


def test_other_kinds_are_compared_by_their_whole_status() -> None:
    created = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "tunnel", "namespace": "ops", "uid": "d1", "managedFields": writes(OURS)},
        "spec": {"replicas": 1},
    }
    progressing = {**created, "status": {"replicas": 1}}
    assert replay("Deployment", [created, progressing]) == [None, "state"]


def test_the_watcher_forwards_deletions_and_news_and_says_why() -> None:
    from watcher.settings import WatcherSettings
    from watcher.supervisor import Watcher

    submitted: list[Forward] = []

    class Recorder:
        def submit(self, forward: Forward) -> None:
            submitted.append(forward)

    watcher = Watcher(WatcherSettings(kinds=("RestateDeployment",)), Recorder())
    owner = [{"apiVersion": "restate.dev/v1beta1", "kind": "RestateDeployment", "name": "svc", "controller": True}]
    created = replica_set({}, OURS, ownerReferences=owner)
    ready = replica_set(
        {"readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1}, OURS, ownerReferences=owner
    )
    watcher.on_child("ADDED", created)
    watcher.on_child("MODIFIED", ready)
    watcher.on_child("DELETED", ready)
    assert [f.trigger for f in submitted] == [
        "MODIFIED ReplicaSet/team/svc-abc@1 (state)",
        "DELETED ReplicaSet/team/svc-abc@1 (deleted)",
    ]
    assert watcher.children == {}


def test_deletions_are_news_unless_nothing_a_reconcile_reads_went() -> None:
    serving = replica_set({"readyReplicas": 1}, OURS)
    drained = copy.deepcopy(serving)
    drained["spec"]["replicas"] = 0  # what the history trim deletes
    assert mapping.deleted_news(serving) == "deleted"
    assert mapping.deleted_news(drained) is None
    assert mapping.deleted_news(endpoint_slice(True)) == "deleted with ready endpoints"
    assert mapping.deleted_news(endpoint_slice(False)) is None
    service = {"kind": "Service", "metadata": {"name": "svc", "namespace": "team"}, "spec": {}}
    assert mapping.deleted_news(service) == "deleted"  # a hand deletion the reconcile repairs


def test_a_drained_replica_set_winding_down_is_not_news_but_losing_wanted_pods_is() -> None:
    serving = replica_set({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1}, OURS)
    scaled_down = copy.deepcopy(serving)  # our scale to zero coming back, its pod still there
    scaled_down["metadata"]["generation"] = 2
    scaled_down["spec"]["replicas"] = 0
    scaled_down["metadata"]["managedFields"] += writes(
        ("restate-operator/scale", "Apply", None, "2026-12-01T13:09:50Z")
    )
    gone = copy.deepcopy(scaled_down)
    gone["status"] = {"replicas": 0, "observedGeneration": 2}
    assert replay("ReplicaSet", [serving, scaled_down, gone]) == ["state", None, None]
    assert replay("ReplicaSet", [gone]) == [None], "a relisted drained version"

    scaled_up = copy.deepcopy(gone)  # someone revives it
    scaled_up["spec"]["replicas"] = 2
    scaled_up["metadata"]["managedFields"] += writes(("kubectl", "Update", "scale", "2026-12-01T13:10:00Z"))
    assert replay("ReplicaSet", [gone, scaled_up]) == [None, "state"], "wanting pods again"

    lost = copy.deepcopy(serving)  # a version that should serve loses its pod
    lost["status"] = {"replicas": 1, "observedGeneration": 1}
    assert replay("ReplicaSet", [serving, lost]) == ["state", "state"]
