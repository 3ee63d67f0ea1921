"""The drain report, the idle/retire decision, and adopting versions from their ReplicaSets."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from services.models.deployment import VersionPhase
from services.reconcilers import versions
from services.reconcilers.rollout import (
    Asked,
    DrainReport,
    Rollout,
    Version,
    adopt,
    awaited_query,
    drain_query,
    idle_decision,
    parse_rfc3339,
    replica_set_view,
    to_ask,
)

ROWS = [
    {"kind": "deployment", "id": "dp_old"},
    {"kind": "deployment", "id": "dp_new"},
    {"kind": "latest", "id": "dp_new", "service": "Greeter"},
    {"kind": "latest", "id": "dp_old", "service": "Legacy"},
    {"kind": "pinned", "id": "dp_old", "n": 2},
    {"kind": "waiting", "id": "dp_new", "service": "Greeter", "n": 3},
    {"kind": "pinned", "n": 9},  # NULL id (absent column): ignored
]


def test_report_counts_pinned_and_waiting_work_per_deployment() -> None:
    report = DrainReport.parse(ROWS)
    assert report.deployments == {"dp_old", "dp_new"}
    assert report.work("dp_old") == 2
    assert report.work("dp_new") == 3
    assert report.routes("dp_old") == ["Legacy"]
    assert report.exists("dp_new")
    assert not report.exists("dp_gone")
    assert not report.exists(None)


def test_version_with_work_waits_and_new_work_resets_the_idle_clock() -> None:
    version = Version(name="v1", hash="h1")
    assert idle_decision(version, 1, now=100, drain_delay=30, forced=False) == (False, None)
    assert idle_decision(version, 0, now=110, drain_delay=30, forced=False) == (False, 30)
    assert idle_decision(version, 0, now=130, drain_delay=30, forced=False) == (False, 10)
    assert idle_decision(version, 1, now=135, drain_delay=30, forced=False) == (False, None)
    assert version.idle_since is None
    assert idle_decision(version, 0, now=140, drain_delay=30, forced=False) == (False, 30)
    assert idle_decision(version, 0, now=170, drain_delay=30, forced=False) == (True, 0)


def test_force_retires_even_with_work() -> None:
    assert idle_decision(Version(name="v", hash="h"), 5, now=0, drain_delay=300, forced=True) == (True, None)


def test_rollback_revives_an_older_version_at_the_front() -> None:
    rollout = Rollout()
    v1 = rollout.make_latest("svc-h1", "h1", now=1)
    v2 = rollout.make_latest("svc-h2", "h2", now=2)
    v1.phase, v1.superseded_at, v1.idle_since = VersionPhase.DRAINED, 2, 3
    rollout.force_drain.append("h1")
    revived = rollout.make_latest("svc-h1", "h1", now=3)
    assert revived is v1
    assert [v.hash for v in rollout.versions] == ["h1", "h2"]
    assert (revived.superseded_at, revived.idle_since, rollout.force_drain) == (None, None, [])
    assert rollout.version("h2") is v2


# --- adoption: versions only the ReplicaSets know of (upstream's, or after a lost state) ---

UID = "6009e180-1be9-4884-83a1-6adab9c484a7"
CREATED = datetime.datetime(2026, 11, 30, 0, 45, 46, tzinfo=datetime.UTC).timestamp()
REMOVE_AT_S = datetime.datetime(2026, 11, 30, 0, 55, 52, tzinfo=datetime.UTC).timestamp()
REMOVE_AT = REMOVE_AT_S + 0.220866
NOW = CREATED + 60


def upstream_replica_set(
    name: str, *, replicas: int = 1, created: str, annotations: dict[str, str] | None = None, owner: str = UID
) -> dict[str, Any]:
    """A ReplicaSet as upstream-fixtures/restatedeployments-mid-drain.yaml shows them."""
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": created,
            "labels": {
                "app": "greeter",
                "app.kubernetes.io/managed-by": "restate-operator",
                "pod-template-hash": name.rsplit("-", 1)[1],
                "restate.dev/owned-by": "greeter",
            },
            "annotations": {"restate.dev/pod-template": "{}", **(annotations or {})},
            "ownerReferences": [
                {"apiVersion": "restate.dev/v1beta1", "kind": "RestateDeployment", "name": "greeter", "uid": owner}
            ],
        },
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "observedGeneration": 1,
        },
    }


def test_upstream_removal_time_parses_with_nanoseconds_and_offset() -> None:
    assert parse_rfc3339("2026-11-30T00:55:52.220866106+00:00") == pytest.approx(REMOVE_AT)
    assert parse_rfc3339("2026-11-30T00:55:52Z") == REMOVE_AT_S
    assert parse_rfc3339("2026-11-30t01:55:52+01:00") == REMOVE_AT_S
    assert parse_rfc3339("2026-11-30T00:55:52") is None, "no offset: not RFC 3339"
    assert parse_rfc3339("soon") is None
    assert parse_rfc3339(None) is None


def test_view_of_an_upstream_replica_set() -> None:
    rs = upstream_replica_set(
        "greeter-479f58c8d7", created="2026-11-30T00:45:46Z", annotations={"restate.dev/deployment-id": "dp_old"}
    )
    view = replica_set_view(rs, UID)
    assert (view["name"], view["hash"], view["uid"], view["owned"]) == (
        "greeter-479f58c8d7",
        "479f58c8d7",
        "uid-greeter-479f58c8d7",
        True,
    )
    assert (view["replicas"], view["ready"], view["available"], view["observed"]) == (1, 1, 1, True)
    assert view["created"] == CREATED
    assert view["annotations"]["restate.dev/deployment-id"] == "dp_old"
    assert replica_set_view(rs, "someone-else")["owned"] is False


def test_adoption_continues_an_upstream_drain() -> None:
    """The mid-drain fixture: a new version, an old one with work, an idle one whose removal time is
    stamped, a historic one at 0 replicas (still registered), and one Restate no longer knows."""
    now = NOW
    found = [
        upstream_replica_set(
            "greeter-479f58c8d7", created="2026-11-30T00:45:46Z", annotations={"restate.dev/deployment-id": "dp_old"}
        ),
        upstream_replica_set(
            "greeter-558cd58fb5", created="2026-11-30T00:45:48Z", annotations={"restate.dev/deployment-id": "dp_new"}
        ),
        upstream_replica_set(
            "greeter-9547b4f8f6",
            created="2026-11-30T00:45:47Z",
            annotations={
                "restate.dev/deployment-id": "dp_idle",
                "restate.dev/remove-version-at": "2026-11-30T00:55:52.220866106+00:00",
            },
        ),
        upstream_replica_set(
            "greeter-bb4", replicas=0, created="2026-11-30T00:40:00Z", annotations={"restate.dev/deployment-id": "dp_h"}
        ),
        upstream_replica_set(
            "greeter-cc4", replicas=0, created="2026-11-30T00:30:00Z", annotations={"restate.dev/deployment-id": "dp_x"}
        ),
        upstream_replica_set("greeter-dd4", created="2026-11-30T00:20:00Z", owner="another-uid"),
    ]
    report = DrainReport.parse(
        [
            *({"kind": "deployment", "id": d} for d in ("dp_old", "dp_new", "dp_idle", "dp_h")),
            {"kind": "latest", "id": "dp_new", "service": "Versioned"},
            {"kind": "pinned", "id": "dp_old", "n": 1},
        ]
    )
    rollout = Rollout()
    adopted = adopt(rollout, [replica_set_view(rs, UID) for rs in found], report, drain_delay=600, now=now)
    assert [v.name for v in adopted] == [
        "greeter-558cd58fb5",
        "greeter-9547b4f8f6",
        "greeter-479f58c8d7",
        "greeter-bb4",
        "greeter-cc4",
    ], "newest first; another resource's ReplicaSet is not ours"
    new, idle, old, historic, forgotten = adopted
    assert (new.deployment_id, old.deployment_id, historic.deployment_id) == ("dp_new", "dp_old", "dp_h")
    assert old.phase == VersionPhase.DRAINING
    assert idle_decision(old, report.work("dp_old"), now, 600, forced=False) == (False, None)
    assert idle.idle_since == pytest.approx(REMOVE_AT - 600)
    retire, remaining = idle_decision(idle, 0, now, 600, forced=False)
    assert not retire
    assert remaining == pytest.approx(REMOVE_AT - now), "upstream's removal time, not a fresh delay"
    assert idle_decision(idle, 0, REMOVE_AT + 1, 600, forced=False)[0]
    assert historic.phase == VersionPhase.DRAINING, "still registered: it is deregistered, then counts as Drained"
    assert not historic.autoscaled
    assert (forgotten.phase, forgotten.deployment_id) == (VersionPhase.DRAINED, None)
    assert old.autoscaled, "upstream may have given a draining version an autoscaler"
    assert old.template == "{}", "its template is remembered: a deleted ReplicaSet can be re-created"

    latest = rollout.make_latest("greeter-558cd58fb5", "558cd58fb5", now)
    assert latest is new
    assert latest.deployment_id == "dp_new", "the registration is reused, not made again"
    assert adopt(rollout, [replica_set_view(rs, UID) for rs in found], report, 600, now) == []


# --- abort and rollback: a pinned version is served until the spec asks for another ---


def test_a_pinned_version_is_served_while_the_spec_is_unchanged() -> None:
    rollout = Rollout()
    rollout.make_latest("svc-h1", "h1", now=1)
    rollout.make_latest("svc-h2", "h2", now=2)
    rollout.pin("h1", "h2")
    assert rollout.desired_hash("h2") == "h1"
    assert rollout.pinned == "h1"


def test_a_new_spec_forgets_the_pin() -> None:
    rollout = Rollout()
    rollout.make_latest("svc-h1", "h1", now=1)
    rollout.pin("h1", "h2")
    assert rollout.desired_hash("h3") == "h3"
    assert (rollout.pinned, rollout.pinned_against) == (None, None)


def test_a_pin_to_a_forgotten_version_is_dropped() -> None:
    rollout = Rollout()
    rollout.pin("gone", "h2")
    assert rollout.desired_hash("h2") == "h2"
    assert rollout.pinned is None


def test_making_a_version_desired_records_why_once() -> None:
    rollout = Rollout()
    v1 = rollout.make_latest("svc-h1", "h1", now=1, cause="spec generation 1")
    rollout.make_latest("svc-h2", "h2", now=2, cause="spec generation 2")
    rollout.make_latest("svc-h1", "h1", now=3, cause="spec generation 3")
    assert v1.cause == "spec generation 3", "a version brought back by the spec says so"
    rollout.make_latest("svc-h1", "h1", now=4, cause="spec generation 4")
    assert v1.cause == "spec generation 3", "staying the desired version changes nothing"


def test_a_registration_in_the_pass_makes_the_new_deployment_latest_for_its_services_only() -> None:
    report = DrainReport(deployments={"dp_v1"}, latest={"Versioned": "dp_v1", "VersionedSide": "dp_v1"})
    report.registered("dp_v2", ["Versioned"])
    assert report.routes("dp_v1") == ["VersionedSide"]
    assert report.routes("dp_v2") == ["Versioned"]
    assert report.exists("dp_v2")


def test_drain_query_asks_only_about_known_ids_and_counts_work_only_where_asked() -> None:
    assert drain_query(Asked(frozenset(), frozenset())) is None
    known = drain_query(Asked(frozenset({"dp_b", "dp_a"}), frozenset()))
    assert known is not None
    assert known.count("IN ('dp_a', 'dp_b')") == 2  # deployments and routes
    assert "sys_invocation_status" not in known, "no version drains: no scan of every invocation"
    both = drain_query(Asked(frozenset({"dp_b", "dp_a"}), frozenset({"dp_a"})))
    assert both is not None
    assert both.count("IN ('dp_a')") == 2  # pinned and waiting work
    assert "IN ('it''s')" in (drain_query(Asked(frozenset({"it's"}), frozenset())) or "")


def test_the_invocations_to_await_are_asked_only_for_deployments_with_pinned_work() -> None:
    report = DrainReport.parse(ROWS)
    sql = awaited_query(report)
    assert sql is not None
    assert "IN ('dp_old')" in sql, "dp_new has waiting work only: nothing pinned to attach to yet"
    assert "LIMIT 20" in sql
    assert awaited_query(DrainReport.parse([{"kind": "deployment", "id": "dp_idle"}])) is None
    report.note_awaited([{"id": "inv_1", "pinned_deployment_id": "dp_old"}, {"id": "inv_2"}])
    assert report.awaited == {"dp_old": ["inv_1"]}


def test_only_draining_versions_wait_for_their_invocations() -> None:
    report = DrainReport(awaited={"dp_a": ["inv_2", "inv_1"], "dp_b": ["inv_3"], "dp_c": ["inv_4"]})
    draining = Version(name="a", hash="a", phase=VersionPhase.DRAINING, deployment_id="dp_a")
    latest = Version(name="b", hash="b", phase=VersionPhase.LATEST, deployment_id="dp_b")
    drained = Version(name="c", hash="c", phase=VersionPhase.DRAINED, deployment_id=None)
    assert versions.awaited([draining, latest, drained], report) == ["inv_1", "inv_2"]


def test_what_a_pass_asks_of_its_versions_and_workloads() -> None:
    rollout = Rollout(
        versions=[
            Version(name="v3", hash="h3", deployment_id="dp_3"),  # desired: its work is not counted
            Version(name="v2", hash="h2", deployment_id="dp_2", phase=VersionPhase.DRAINING),
            Version(name="v1", hash="h1", phase=VersionPhase.DRAINED),
        ]
    )
    found = [
        replica_set_view(
            upstream_replica_set(
                "greeter-h0", created="2026-11-30T00:45:46Z", annotations={"restate.dev/deployment-id": "dp_0"}
            ),
            UID,
        ),
        replica_set_view(
            upstream_replica_set(
                "greeter-h1", created="2026-11-30T00:45:47Z", annotations={"restate.dev/deployment-id": "dp_1"}
            ),
            UID,
        ),
        replica_set_view(upstream_replica_set("greeter-h3", created="2026-11-30T00:45:48Z"), UID),
    ]
    asked = to_ask(rollout, found, "h3")
    assert asked.ids == {"dp_0", "dp_1", "dp_2", "dp_3"}
    assert asked.work == {"dp_0", "dp_2"}, "the one to adopt and the draining one; not the drained, not the desired"
    assert to_ask(rollout, found, None).work == {"dp_0", "dp_2", "dp_3"}, "deleting: every version that is not drained"
