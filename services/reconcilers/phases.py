"""How a RestateDeployment version advances: one pure decision per version and pass, no I/O.

The reconciler gathers what it observes (pods, endpoints, Restate's drain report, the time, the
commands people gave), asks `next_phase` for each version, then executes the returned actions in
order as journaled steps. A version's phase (`status.versions[].phase`) is the phase it is in once
those actions have succeeded; when one fails, the pass fails and nothing of the decision is kept.

    desired version (the template, or Knative tag, the spec asks for now):
      Pending ──its workload is ready (the mode's gate)──────────────────────► Latest  [Register, Annotate]
      Pending ──the same, under registrationPolicy Held──► Held ──promote────► Latest  [Register, Annotate]
      Pending/Held ──pause──► Pending (until resume)
      Latest ──Restate routes its services to it──► Latest
      Latest ──Knative in-place update changed its services──► Latest         [Register(force), Annotate]
    superseded versions (newest first):
      Latest ──while the desired version is not routed yet──► Latest (still what Restate serves)
      Latest ──► Draining ──idle for drainDelaySeconds, or forceDrain──► Drained  [Deregister, ScaleTo 0]
      Drained ──beyond revisionHistoryLimit──► deleted                              (`beyond_history`)
      any ──the spec asks for its template again (rollback)──► desired again (Pending, re-registered)

The gates: ReplicaSet mode waits for the pods, the Service's endpoints and the RestateCluster
(`replicaset_gate`); Knative mode for the Configuration, its latest Revision and the Route
(`knative_gate`). Knative scales its Revisions itself, so a drained Knative version is only
deregistered (`Superseded.scales` is false).

Guarantees: a version Restate still has work for (pinned invocations, or queued ones for services
it is latest for) is never retired unless forced; nor is one that is still the latest deployment of
a service the newer versions lack; a registered version is deregistered before it is scaled to
zero; an idle version waits `drainDelaySeconds` from when it was first seen idle (new work resets
the clock). Unknown is never drained: the reconciler only decides with a drain report in hand.
Not here: how a version is registered or scaled (the actions are executed by
`reconcilers.deployment`), nor adoption of versions the memory does not know (`rollout.adopt`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.builders import knative
from services.models.deployment import VersionPhase
from services.reconcilers.rollout import DrainReport, Rollout, Version, idle_decision

DRAIN_POLL_SECONDS = 10.0
"""How often a draining version's work is looked up again (the watcher cannot see Restate's work)."""

PENDING_RECHECK_SECONDS = 30.0
"""Fallback wake-up while a version waits for pods or endpoints; their watch events usually come first."""


# --- actions: what the reconciler executes, in order, as journaled steps ---


@dataclass(frozen=True)
class Register:
    """Register the version's URL with Restate; `force` when Restate still knows it (a rollback)."""

    force: bool


@dataclass(frozen=True)
class Annotate:
    """Record the new deployment id on the version's ReplicaSet and Service (survives a lost state)."""


@dataclass(frozen=True)
class Deregister:
    deployment_id: str


@dataclass(frozen=True)
class ScaleTo:
    replicas: int


@dataclass(frozen=True)
class ApplyAutoscaler:
    """Apply the draining version's own autoscaler, as `spec.autoscaling` says."""


@dataclass(frozen=True)
class DropAutoscaler:
    """Delete the version's autoscaler; if one existed and `restore` is set, scale back to it."""

    restore: int | None


Action = Register | Annotate | Deregister | ScaleTo | ApplyAutoscaler | DropAutoscaler


# --- observations: what one pass saw ---


@dataclass(frozen=True)
class Pods:
    """The desired version's ReplicaSet, as its status reports it."""

    desired: int
    current: int
    ready: int
    available: int
    observed: bool  # the ReplicaSet controller saw the latest spec

    @property
    def available_all(self) -> bool:
        return self.observed and self.available >= self.desired and self.ready >= self.desired

    def not_available_reason(self) -> str:
        """Upstream's reasons for a version whose pods are not all there yet, most fundamental first."""
        if not self.observed or self.current != self.desired:
            return "ReplicaSetScaling"
        if self.ready < self.desired:
            return "ReplicaSetPodNotReady"
        return "ReplicaSetPodNotAvailable"


@dataclass(frozen=True)
class Blocked:
    """Why the desired version is not serving yet: a Ready reason, its message, when to look again."""

    reason: str
    message: str
    recheck_after: float | None


@dataclass(frozen=True)
class Desired:
    """Observations for the version the spec asks for."""

    report: DrainReport
    gate: Blocked | None  # what its workload still waits for (`replicaset_gate`, `knative_gate`)
    paused: bool
    held: bool  # registrationPolicy Held, and `promote` was not called for this version
    revision: str | None = None  # Knative: the Revision the Route serves now
    services_changed: bool = False  # Knative: that Revision serves other services than Restate knows


@dataclass(frozen=True)
class Superseded:
    """Observations for an older version."""

    report: DrainReport
    now: float
    drain_delay: float
    forced: bool  # `forceDrain` was called for it
    desired_routed: bool  # Restate already routes to the desired version
    autoscaling: bool  # `spec.autoscaling` gives draining versions an autoscaler
    replicas: int  # what a version goes back to when its autoscaler is removed
    scales: bool = True  # ReplicaSet mode scales a drained version to zero; Knative scales itself


@dataclass(frozen=True)
class Transition:
    """The version's memory once `actions` have succeeded, and when to look at it again."""

    version: Version
    actions: tuple[Action, ...] = ()
    blocked: Blocked | None = None
    recheck_after: float | None = None


def serving(version: Version, report: DrainReport) -> bool:
    """Restate routes every service of this version to it."""
    if not version.deployment_id or not report.exists(version.deployment_id):
        return False
    routes = report.routes(version.deployment_id)
    return bool(routes) and set(version.services) <= set(routes)


def next_phase(version: Version, observed: Desired | Superseded) -> Transition:
    """Advance one version by what this pass observed (see the module docstring for the diagram)."""
    following = version.model_copy(deep=True)
    if isinstance(observed, Desired):
        return _desired(following, observed)
    return _superseded(following, observed)


def _desired(version: Version, seen: Desired) -> Transition:
    # A rollback: the desired version scales with the resource, not with a draining version's autoscaler.
    actions: tuple[Action, ...] = (DropAutoscaler(restore=None),) if version.autoscaled else ()
    version.autoscaled = False
    if serving(version, seen.report):
        version.phase = VersionPhase.LATEST
        if seen.gate is None and seen.revision is not None and seen.revision != version.revision:
            # Knative updated the version in place; Restate must learn of changed services (same URI: force).
            version.revision = seen.revision
            if seen.services_changed:
                return Transition(version, (*actions, Register(force=True), Annotate()))
        return Transition(version, actions)

    def wait(phase: VersionPhase, blocked: Blocked) -> Transition:
        version.phase = phase
        return Transition(version, actions, blocked=blocked, recheck_after=blocked.recheck_after)

    if seen.paused:
        return wait(VersionPhase.PENDING, Blocked("Paused", "the rollout is paused; call resume to continue", None))
    if seen.gate is not None:
        return wait(VersionPhase.PENDING, seen.gate)
    if seen.held:
        message = f"{version.name} is ready and held; call promote to register it"
        return wait(VersionPhase.HELD, Blocked("RegistrationHeld", message, None))
    version.phase, version.revision = VersionPhase.LATEST, seen.revision
    # Re-registering a URI Restate still knows needs force to become the latest revision again (rollback).
    return Transition(version, (*actions, Register(force=seen.report.exists(version.deployment_id)), Annotate()))


def replicaset_gate(name: str, pods: Pods, ready_endpoints: int | None, cluster_problem: str | None) -> Blocked | None:
    """What a ReplicaSet version waits for before it may be registered: its pods, its Service's
    endpoints (None: not counted yet), the RestateCluster it registers with."""
    if not pods.available_all:
        message = f"{pods.available}/{pods.desired} pods of {name} available"
        return Blocked(pods.not_available_reason(), message, PENDING_RECHECK_SECONDS)
    if ready_endpoints == 0 and pods.desired > 0:
        return Blocked("EndpointsNotReady", f"Service {name} has no ready endpoints yet", PENDING_RECHECK_SECONDS)
    if cluster_problem:
        return Blocked("ClusterNotReady", cluster_problem, PENDING_RECHECK_SECONDS)
    return None


def knative_gate(
    name: str, configuration: dict[str, Any], revision: dict[str, Any] | None, route: dict[str, Any]
) -> Blocked | None:
    """What a Knative version waits for before its Route URL may be registered (or counts as Ready):
    Knative saw the Configuration's generation, made a Revision, that Revision is Ready, the Route
    is Ready and sends traffic to it, and has a URL. Each gate has its own reason; the watcher
    forwards the three objects' changes, so the wake-ups are fallbacks."""
    status = configuration.get("status") or {}
    generation = configuration["metadata"].get("generation")
    if status.get("observedGeneration") != generation:
        message = f"Knative has not yet processed generation {generation} of Configuration {name}"
        return Blocked("ConfigurationNotObserved", message, 1.0)
    latest = status.get("latestCreatedRevisionName")
    if not latest:
        return Blocked("RevisionNotCreated", f"Configuration {name} has no Revision yet", 5.0)
    if revision is None:
        return Blocked("RevisionNotFound", f"Revision {latest} of Configuration {name} was not found", 1.0)
    ready = knative.condition(revision, "Ready")
    if ready is None or ready.get("status") != "True":
        why = _why(ready) if ready else "it reports no conditions yet"
        return Blocked("RevisionNotReady", f"Revision {latest} is not ready ({why})", 5.0)
    route_status = route.get("status") or {}
    route_ready = knative.condition(route, "Ready")
    if route_ready is not None and route_ready.get("status") != "True":
        return Blocked("RouteNotReady", f"Route {name} is not ready ({_why(route_ready)})", 5.0)
    if not any(t.get("revisionName") == latest for t in route_status.get("traffic") or []):
        return Blocked("TrafficNotRolledOut", f"Route {name} does not send traffic to Revision {latest} yet", 2.0)
    if not route_status.get("url"):
        return Blocked("RouteURLNotReady", f"Route {name} has no URL yet", 5.0)
    return None


def _why(condition: dict[str, Any]) -> str:
    """A Knative condition's own explanation: `Reason: message`, whichever it gives."""
    parts = [str(condition[key]) for key in ("reason", "message") if condition.get(key)]
    return ": ".join(parts) or f"{condition.get('type')} is {condition.get('status')}"


def _superseded(version: Version, seen: Superseded) -> Transition:
    if version.phase == VersionPhase.DRAINED:
        return Transition(version)
    report, deployment_id = seen.report, version.deployment_id
    registered = report.exists(deployment_id)
    # Never registered (or already gone from Restate): nothing can be pinned to it.
    forced = seen.forced or not registered
    routes = report.routes(deployment_id) if deployment_id and registered and not forced else []
    if routes and not seen.desired_routed:
        version.phase = VersionPhase.LATEST  # what Restate routes to, until the desired version takes over
        return Transition(version)
    version.superseded_at = version.superseded_at or seen.now
    work = report.work(deployment_id) if deployment_id and registered else 0
    version.active_invocations = work
    if routes:
        # Still the latest deployment of services the newer versions lack: deregistering it would
        # remove them from Restate, so it stays (with its pods) until they move or forceDrain.
        version.phase, version.idle_since = VersionPhase.DRAINING, None
        return Transition(version, _autoscaler(version, seen), recheck_after=DRAIN_POLL_SECONDS)
    retire, remaining = idle_decision(version, work, seen.now, seen.drain_delay, forced)
    if not retire:
        version.phase = VersionPhase.DRAINING
        wait = DRAIN_POLL_SECONDS if remaining is None else min(DRAIN_POLL_SECONDS, max(1.0, remaining))
        return Transition(version, _autoscaler(version, seen), recheck_after=wait)
    actions: list[Action] = []
    if version.autoscaled:  # before the scale-down, so its minReplicas cannot fight it
        actions.append(DropAutoscaler(restore=None))
    if deployment_id and registered:
        actions.append(Deregister(deployment_id))
    if seen.scales:
        actions.append(ScaleTo(0))
    version.phase, version.deployment_id, version.autoscaled = VersionPhase.DRAINED, None, False
    return Transition(version, tuple(actions))


def _autoscaler(version: Version, seen: Superseded) -> tuple[Action, ...]:
    """Keep a draining version's autoscaler as `spec.autoscaling` says; removing it restores the replicas."""
    if seen.autoscaling:
        version.autoscaled = True
        return (ApplyAutoscaler(),)
    if version.autoscaled:
        version.autoscaled = False
        return (DropAutoscaler(restore=seen.replicas),)
    return ()


def beyond_history(rollout: Rollout, limit: int) -> list[Version]:
    """Drained versions past `revisionHistoryLimit` (the oldest): their ReplicaSet and Service go."""
    drained = [v for v in rollout.versions if v.phase == VersionPhase.DRAINED]
    return drained[limit:]


def settle(rollout: Rollout) -> None:
    """Forget commands that are done: a promotion once its version is Latest, a forced drain once
    its version is Drained or gone."""
    if rollout.promoted and (promoted := rollout.version(rollout.promoted)) and promoted.phase == VersionPhase.LATEST:
        rollout.promoted = None
    rollout.force_drain = [
        hash_
        for hash_ in rollout.force_drain
        if (forced := rollout.version(hash_)) is not None and forced.phase != VersionPhase.DRAINED
    ]


def deletion_blockers(rollout: Rollout, report: DrainReport) -> list[tuple[Version, int]]:
    """(version, unfinished invocations) for every registered version with work that was not force-drained."""
    return [
        (v, report.work(v.deployment_id))
        for v in rollout.versions
        if v.deployment_id
        and report.exists(v.deployment_id)
        and report.work(v.deployment_id) > 0
        and v.hash not in rollout.force_drain
    ]
