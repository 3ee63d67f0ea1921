"""Every transition of a RestateDeployment version, without Restate or Kubernetes (reconcilers/phases.py).

Covered: the desired version (pods, endpoints, RestateCluster, Held, pause, rollback, services that
must all be routed), superseded versions (still latest, draining with work, the idle clock, forced,
never registered, kept for a service the newer versions lack, autoscalers), a whole life from
Pending to deleted, history trimming, settling commands, deletion blockers, and purity; Knative
mode's gates (each its own reason), in-place updates (re-registered only when services changed),
and drained Knative versions that are not scaled.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from services.models.deployment import VersionPhase
from services.reconcilers import phases
from services.reconcilers.phases import (
    Annotate,
    ApplyAutoscaler,
    Deregister,
    Desired,
    DropAutoscaler,
    Pods,
    Register,
    ScaleTo,
    Superseded,
)
from services.reconcilers.rollout import DrainReport, Rollout, Version

PENDING, HELD, LATEST = VersionPhase.PENDING, VersionPhase.HELD, VersionPhase.LATEST
DRAINING, DRAINED = VersionPhase.DRAINING, VersionPhase.DRAINED
READY = Pods(desired=1, current=1, ready=1, available=1, observed=True)
NOW = 1000.0


def report(
    deployments: tuple[str, ...] = (),
    latest: dict[str, str] | None = None,
    work: dict[str, int] | None = None,
) -> DrainReport:
    return DrainReport(deployments=set(deployments), latest=latest or {}, pinned=work or {})


def desired(
    pods: Pods = READY, ready_endpoints: int | None = 1, cluster_problem: str | None = None, **changes: Any
) -> Desired:
    """What a ReplicaSet-mode pass observes of the desired version (its gate from `replicaset_gate`)."""
    gate = phases.replicaset_gate("svc-h1", pods, ready_endpoints, cluster_problem)
    return dataclasses.replace(Desired(report=report(), gate=gate, paused=False, held=False), **changes)


def superseded(**changes: Any) -> Superseded:
    seen = Superseded(
        report=report(("dp_1",)),
        now=NOW,
        drain_delay=30.0,
        forced=False,
        desired_routed=True,
        autoscaling=False,
        replicas=2,
    )
    return dataclasses.replace(seen, **changes)


def version(**fields: Any) -> Version:
    return Version(name="svc-h1", hash="h1", **fields)


# --- the desired version ---

DESIRED = [
    pytest.param({}, desired(pods=Pods(1, 0, 0, 0, True)), PENDING, (), "ReplicaSetScaling", id="pods-scaling"),
    pytest.param({}, desired(pods=Pods(1, 1, 1, 1, False)), PENDING, (), "ReplicaSetScaling", id="rs-not-observed"),
    pytest.param({}, desired(pods=Pods(1, 1, 0, 0, True)), PENDING, (), "ReplicaSetPodNotReady", id="pod-not-ready"),
    pytest.param({}, desired(pods=Pods(1, 1, 1, 0, True)), PENDING, (), "ReplicaSetPodNotAvailable", id="unavailable"),
    pytest.param({}, desired(ready_endpoints=0), PENDING, (), "EndpointsNotReady", id="no-endpoints"),
    pytest.param(
        {},
        desired(pods=Pods(0, 0, 0, 0, True), ready_endpoints=0),
        LATEST,
        (Register(force=False), Annotate()),
        None,
        id="zero-replicas-need-no-endpoints",
    ),
    pytest.param(
        {}, desired(cluster_problem="RestateCluster prod is not ready"), PENDING, (), "ClusterNotReady", id="cluster"
    ),
    pytest.param({}, desired(held=True), HELD, (), "RegistrationHeld", id="held"),
    pytest.param({}, desired(), LATEST, (Register(force=False), Annotate()), None, id="ready-registers"),
    pytest.param({}, desired(paused=True), PENDING, (), "Paused", id="paused"),
    pytest.param(
        {"deployment_id": "dp_1", "services": ["Greeter"], "phase": LATEST},
        desired(report=report(("dp_1",), {"Greeter": "dp_1"}), paused=True),
        LATEST,
        (),
        None,
        id="serving-stays-latest-even-when-paused",
    ),
    pytest.param(
        {"deployment_id": "dp_1", "services": ["Greeter"], "phase": DRAINED},
        desired(report=report(("dp_1", "dp_2"), {"Greeter": "dp_2"})),
        LATEST,
        (Register(force=True), Annotate()),
        None,
        id="rollback-re-registers-with-force",
    ),
    pytest.param(
        {"deployment_id": "dp_1", "services": ["Greeter"], "phase": DRAINING, "autoscaled": True},
        desired(report=report(("dp_1", "dp_2"), {"Greeter": "dp_2"})),
        LATEST,
        (DropAutoscaler(restore=None), Register(force=True), Annotate()),
        None,
        id="rollback-drops-the-draining-autoscaler-first",
    ),
    pytest.param(
        {"deployment_id": "dp_1", "services": ["Greeter", "Side"], "phase": LATEST},
        desired(report=report(("dp_1", "dp_0"), {"Greeter": "dp_1", "Side": "dp_0"})),
        LATEST,
        (Register(force=True), Annotate()),
        None,
        id="serving-means-every-service-is-routed",
    ),
]


@pytest.mark.parametrize(("memory", "seen", "phase", "actions", "blocked"), DESIRED)
def test_desired_version(
    memory: dict[str, Any], seen: Desired, phase: VersionPhase, actions: tuple[Any, ...], blocked: str | None
) -> None:
    transition = phases.next_phase(version(**memory), seen)
    assert transition.version.phase == phase
    assert transition.actions == actions
    assert (transition.blocked.reason if transition.blocked else None) == blocked
    assert not transition.version.autoscaled


def test_waiting_for_pods_names_them_and_looks_again_later() -> None:
    transition = phases.next_phase(version(), desired(pods=Pods(2, 2, 1, 1, True)))
    assert transition.blocked == phases.Blocked(
        "ReplicaSetPodNotReady", "1/2 pods of svc-h1 available", phases.PENDING_RECHECK_SECONDS
    )
    assert transition.recheck_after == phases.PENDING_RECHECK_SECONDS


def test_a_person_is_waited_for_without_a_wakeup() -> None:
    for seen in (desired(held=True), desired(paused=True)):
        transition = phases.next_phase(version(), seen)
        assert transition.blocked is not None
        assert transition.recheck_after is None


# --- superseded versions ---

REGISTERED = {"deployment_id": "dp_1", "services": ["Greeter"], "phase": LATEST}
SUPERSEDED = [
    pytest.param({"phase": DRAINED}, superseded(), DRAINED, (), None, id="drained-stays"),
    pytest.param(
        REGISTERED,
        superseded(report=report(("dp_1",), {"Greeter": "dp_1"}), desired_routed=False),
        LATEST,
        (),
        None,
        id="still-served-until-the-desired-version-is-routed",
    ),
    pytest.param(
        REGISTERED, superseded(report=report(("dp_1",), work={"dp_1": 2})), DRAINING, (), 10.0, id="work-keeps-it"
    ),
    pytest.param(REGISTERED, superseded(), DRAINING, (), 10.0, id="idle-clock-starts"),
    pytest.param(REGISTERED, superseded(drain_delay=3.0), DRAINING, (), 3.0, id="short-delay-wakes-up-in-time"),
    pytest.param(
        {**REGISTERED, "superseded_at": NOW - 60, "idle_since": NOW - 31},
        superseded(),
        DRAINED,
        (Deregister("dp_1"), ScaleTo(0)),
        None,
        id="idle-past-the-delay-is-deregistered-then-scaled-down",
    ),
    pytest.param(
        REGISTERED,
        superseded(report=report(("dp_1",), work={"dp_1": 5}), forced=True),
        DRAINED,
        (Deregister("dp_1"), ScaleTo(0)),
        None,
        id="force-drain-retires-with-work",
    ),
    pytest.param({"phase": PENDING}, superseded(report=report()), DRAINED, (ScaleTo(0),), None, id="never-registered"),
    pytest.param(
        {**REGISTERED, "services": ["Greeter", "Legacy"]},
        superseded(report=report(("dp_1", "dp_2"), {"Greeter": "dp_2", "Legacy": "dp_1"})),
        DRAINING,
        (),
        10.0,
        id="kept-while-latest-for-a-service-the-newer-versions-lack",
    ),
    pytest.param(
        REGISTERED,
        superseded(report=report(("dp_1",), work={"dp_1": 1}), autoscaling=True),
        DRAINING,
        (ApplyAutoscaler(),),
        10.0,
        id="draining-autoscaler-applied",
    ),
    pytest.param(
        {**REGISTERED, "autoscaled": True},
        superseded(report=report(("dp_1",), work={"dp_1": 1})),
        DRAINING,
        (DropAutoscaler(restore=2),),
        10.0,
        id="autoscaler-removed-restores-the-replicas",
    ),
    pytest.param(
        {**REGISTERED, "autoscaled": True},
        superseded(forced=True),
        DRAINED,
        (DropAutoscaler(restore=None), Deregister("dp_1"), ScaleTo(0)),
        None,
        id="autoscaler-goes-before-the-scale-down",
    ),
]


@pytest.mark.parametrize(("memory", "seen", "phase", "actions", "recheck"), SUPERSEDED)
def test_superseded_version(
    memory: dict[str, Any], seen: Superseded, phase: VersionPhase, actions: tuple[Any, ...], recheck: float | None
) -> None:
    transition = phases.next_phase(version(**memory), seen)
    assert transition.version.phase == phase
    assert transition.actions == actions
    assert transition.recheck_after == recheck
    assert transition.blocked is None


def test_draining_shows_its_work_and_since_when() -> None:
    transition = phases.next_phase(version(**REGISTERED), superseded(report=report(("dp_1",), work={"dp_1": 3})))
    assert (transition.version.active_invocations, transition.version.superseded_at) == (3, NOW)
    assert transition.version.idle_since is None


def test_a_retired_version_forgets_its_deployment_id() -> None:
    transition = phases.next_phase(version(**REGISTERED), superseded(forced=True))
    assert transition.version.deployment_id is None


def test_next_phase_changes_nothing_it_was_given() -> None:
    before = version(**REGISTERED, autoscaled=True)
    snapshot = before.model_copy(deep=True)
    phases.next_phase(before, superseded(forced=True))
    phases.next_phase(before, desired())
    assert before == snapshot


# --- a whole life, pass after pass ---


def test_a_version_goes_from_pending_through_held_and_draining_to_deleted() -> None:
    rollout = Rollout()
    v1 = rollout.make_latest("svc-h1", "h1", now=NOW)
    life = [phases.next_phase(v1, desired(pods=Pods(1, 0, 0, 0, True))).version.phase]
    v1 = phases.next_phase(v1, desired(held=True)).version
    life.append(v1.phase)
    rollout.promoted = "h1"  # the promote handler
    registered = phases.next_phase(v1, desired(held=False))
    assert registered.actions == (Register(force=False), Annotate())
    v1 = registered.version.model_copy(update={"deployment_id": "dp_1", "services": ["Greeter"]})
    rollout.versions[0] = v1
    life.append(v1.phase)
    phases.settle(rollout)
    assert rollout.promoted is None, "a promotion is used up once its version is Latest"

    rollout.make_latest("svc-h2", "h2", now=NOW + 1)  # v2 is applied and becomes routed
    busy = report(("dp_1", "dp_2"), {"Greeter": "dp_2"}, {"dp_1": 1})
    v1 = phases.next_phase(v1, superseded(report=busy, now=NOW + 2)).version
    life.append(v1.phase)
    idle = report(("dp_1", "dp_2"), {"Greeter": "dp_2"})
    v1 = phases.next_phase(v1, superseded(report=idle, now=NOW + 3)).version
    assert v1.phase == DRAINING
    assert v1.idle_since == NOW + 3
    retired = phases.next_phase(v1, superseded(report=idle, now=NOW + 33))
    assert retired.actions == (Deregister("dp_1"), ScaleTo(0))
    life.append(retired.version.phase)
    rollout.versions[1] = retired.version

    assert life == [PENDING, HELD, LATEST, DRAINING, DRAINED]
    assert phases.beyond_history(rollout, limit=1) == []
    assert phases.beyond_history(rollout, limit=0) == [retired.version], "then it is deleted"


def test_settle_forgets_forced_drains_that_are_done() -> None:
    rollout = Rollout(versions=[version(phase=LATEST), Version(name="svc-h0", hash="h0", phase=DRAINED)])
    rollout.force_drain = ["h0", "h1", "gone"]
    phases.settle(rollout)
    assert rollout.force_drain == ["h1"]


def test_deletion_waits_for_registered_versions_with_work_unless_forced() -> None:
    busy = version(deployment_id="dp_1")
    forced = Version(name="svc-h2", hash="h2", deployment_id="dp_2")
    unknown = Version(name="svc-h3", hash="h3", deployment_id="dp_3")
    rollout = Rollout(versions=[busy, forced, unknown], force_drain=["h2"])
    seen = report(("dp_1", "dp_2"), work={"dp_1": 2, "dp_2": 1, "dp_3": 4})
    assert phases.deletion_blockers(rollout, seen) == [(busy, 2)]


# --- Knative mode ---

CONFIGURATION = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "latestCreatedRevisionName": "r-2"}}
REVISION = {"metadata": {"name": "r-2"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
ROUTE = {
    "status": {
        "conditions": [{"type": "Ready", "status": "True"}],
        "traffic": [{"revisionName": "r-2", "percent": 100}],
        "url": "http://svc-v1.team.svc.cluster.local",
    }
}


def merged(base: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {**base, "status": {**base["status"], **status}}


KNATIVE_GATES = [
    pytest.param(merged(CONFIGURATION, observedGeneration=1), REVISION, ROUTE, "ConfigurationNotObserved", id="gen"),
    pytest.param(merged(CONFIGURATION, latestCreatedRevisionName=None), None, ROUTE, "RevisionNotCreated", id="none"),
    pytest.param(CONFIGURATION, None, ROUTE, "RevisionNotFound", id="revision-missing"),
    pytest.param(CONFIGURATION, merged(REVISION, conditions=[]), ROUTE, "RevisionNotReady", id="no-conditions"),
    pytest.param(
        CONFIGURATION,
        merged(REVISION, conditions=[{"type": "Ready", "status": "False", "reason": "ExitCode1", "message": "crash"}]),
        ROUTE,
        "RevisionNotReady",
        id="revision-failed",
    ),
    pytest.param(
        CONFIGURATION,
        REVISION,
        merged(ROUTE, conditions=[{"type": "Ready", "status": "Unknown", "reason": "IngressNotConfigured"}]),
        "RouteNotReady",
        id="route",
    ),
    pytest.param(
        CONFIGURATION, REVISION, merged(ROUTE, traffic=[{"revisionName": "r-1"}]), "TrafficNotRolledOut", id="t"
    ),
    pytest.param(CONFIGURATION, REVISION, merged(ROUTE, url=None), "RouteURLNotReady", id="url"),
    pytest.param(CONFIGURATION, REVISION, merged(ROUTE, conditions=[]), None, id="route-without-conditions-is-fine"),
    pytest.param(CONFIGURATION, REVISION, ROUTE, None, id="ready"),
]


@pytest.mark.parametrize(("configuration", "revision", "route", "reason"), KNATIVE_GATES)
def test_knative_gates_each_have_their_reason(
    configuration: dict[str, Any], revision: dict[str, Any] | None, route: dict[str, Any], reason: str | None
) -> None:
    gate = phases.knative_gate("svc-v1", configuration, revision, route)
    assert (gate.reason if gate else None) == reason


def test_a_deploying_revision_says_so_without_an_empty_message() -> None:
    deploying = merged(REVISION, conditions=[{"type": "Ready", "status": "Unknown", "reason": "Deploying"}])
    gate = phases.knative_gate("svc-v1", CONFIGURATION, deploying, ROUTE)
    assert gate is not None
    assert gate.message == "Revision r-2 is not ready (Deploying)"


def test_a_failed_revision_says_why() -> None:
    failed = merged(REVISION, conditions=[{"type": "Ready", "status": "False", "reason": "ExitCode1", "message": "x"}])
    gate = phases.knative_gate("svc-v1", CONFIGURATION, failed, ROUTE)
    assert gate is not None
    assert gate.message == "Revision r-2 is not ready (ExitCode1: x)"


SERVING = {"deployment_id": "dp_1", "services": ["Greeter"], "phase": LATEST, "revision": "r-1"}
ROUTED = report(("dp_1",), {"Greeter": "dp_1"})


def test_a_knative_version_registers_its_revision() -> None:
    transition = phases.next_phase(version(), Desired(report(), None, paused=False, held=False, revision="r-1"))
    assert transition.actions == (Register(force=False), Annotate())
    assert transition.version.revision == "r-1"


def test_an_in_place_update_with_other_services_re_registers_with_force() -> None:
    seen = Desired(ROUTED, None, paused=False, held=False, revision="r-2", services_changed=True)
    transition = phases.next_phase(version(**SERVING), seen)
    assert transition.actions == (Register(force=True), Annotate())
    assert transition.version.revision == "r-2"


def test_an_in_place_update_with_the_same_services_keeps_the_registration() -> None:
    seen = Desired(ROUTED, None, paused=False, held=False, revision="r-2", services_changed=False)
    transition = phases.next_phase(version(**SERVING), seen)
    assert (transition.actions, transition.version.revision) == ((), "r-2")


def test_an_in_place_update_waits_for_its_revision_before_anything() -> None:
    gate = phases.Blocked("RevisionNotReady", "not yet", 5.0)
    seen = Desired(ROUTED, gate, paused=False, held=False, revision="r-2", services_changed=True)
    transition = phases.next_phase(version(**SERVING), seen)
    assert (transition.actions, transition.version.revision, transition.version.phase) == ((), "r-1", LATEST)


def test_a_drained_knative_version_is_only_deregistered() -> None:
    transition = phases.next_phase(version(**REGISTERED), superseded(forced=True, scales=False))
    assert transition.actions == (Deregister("dp_1"),)
    assert transition.version.phase == DRAINED
