"""RestateDeployment: versioned rollouts with safe draining, in ReplicaSet or Knative mode.

The pass of each mode is its own module (`replicaset_mode`, `knative_mode`); both decide with
`phases` (pure) and share `versions`. This module is the reconciler: it picks the mode, finalizes
(deletion waits for every version's work, then deregisters them all) and serves the commands
people call (promote, pause, resume, forceDrain), which change the rollout memory only.

Guarantees: a version is registered only once its pods are available and its Service has ready
endpoints; it is deregistered before it is scaled to zero (no registrations pointing at nothing);
a version with invocations pinned to it (or queued for services it is latest for) is never retired
unless someone calls `forceDrain`, nor is one that is still the latest deployment of a service the
newer versions no longer have (retiring it would remove that service from Restate); when Restate
cannot be asked, nothing is retired (unknown is never drained). A ReplicaSet's pod template is
written once, when it is created: afterwards only its replicas and annotations change, so taking
over from the upstream operator restarts no pod. A rollback to an earlier template re-registers
that version so Restate routes to it again, and Ready means Restate routes new invocations to the
desired version. Objects the resource does not control (a user's Service named like it) are never
written.
Caveats: waiting is a phase plus a wake-up, never a sleep; the watcher's events usually come first.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import restate

from services import errors, kinds, metrics
from services.clients.kube import Obj
from services.models.deployment import RestateDeploymentSpec, VersionPhase
from services.reconcilers import knative_mode, phases, targets, versions
from services.reconcilers import replicaset_mode as replica_set_mode
from services.reconcilers.engine import CommandRequest, Outcome, Reconciler, rfc3339
from services.reconcilers.rollout import Rollout, Version, adopt, to_ask
from services.reconcilers.steps import Steps


async def converge(steps: Steps, rsd: Obj) -> Outcome:
    spec = versions.parse_spec(rsd)
    target = await targets.resolve(steps, rsd, spec)
    if isinstance(target, Outcome):
        return target
    if spec.deployment_mode == "knative":
        return await knative_mode.converge(steps, rsd, spec, target)
    return await replica_set_mode.converge(steps, rsd, spec, target)


async def finalize(steps: Steps, rsd: Obj) -> Outcome:
    """Deletion waits until no version has work in Restate, then deregisters every version, those
    only the ReplicaSets know of (upstream's) included."""
    spec = versions.parse_spec(rsd)
    rollout = await versions.load(steps.ctx)
    target = await targets.resolve(steps, rsd, spec)
    if isinstance(target, Outcome):
        metrics.forget_rollout(rsd["metadata"]["namespace"], rsd["metadata"]["name"])
        return _target_gone(spec)
    admin = target.admin
    meta = rsd["metadata"]
    if spec.deployment_mode == "knative":
        try:
            found = await knative_mode.owned_versions(steps, rsd)
        except errors.NotFound:
            found = {}  # Knative Serving is not installed: nothing was created, only what memory knows remains
    else:
        found = await steps.run("list ReplicaSets", replica_set_mode.replica_sets, steps, meta, None)
    report = await versions.drain_report(steps, admin, to_ask(rollout, found.values(), None))
    adopt(rollout, found.values(), report, float(spec.restate.drain_delay_seconds), await steps.ctx.time())
    blocking = phases.deletion_blockers(rollout, report)
    if blocking:
        key = urllib.parse.quote(f"{meta['namespace']}/{meta['name']}", safe="")
        waits = ", ".join(f"{v.name} has {n} unfinished invocation(s)" for v, n in blocking)
        hint = (
            f"deletion waits for them to finish; to delete anyway: curl -X POST "
            f'"$RESTATE_INGRESS_URL/{kinds.DEPLOYMENT.service_name}/{key}/forceDrain" '
            f"-H 'content-type: application/json' -d '{{\"version\": \"{blocking[0][0].name}\"}}'"
        )
        for version, n in blocking:
            version.phase, version.active_invocations = VersionPhase.DRAINING, n
        versions.save(steps.ctx, rollout)
        return Outcome(
            ready=False,
            reason="DeletionBlocked",
            message=f"{waits}; {hint}",
            requeue_after=phases.DRAIN_POLL_SECONDS,
            wake_on=versions.awaited((v for v, _ in blocking), report),
        )
    for version in rollout.versions:
        if version.deployment_id and report.exists(version.deployment_id):
            await versions.deregister_version(steps, admin, version.name, version.deployment_id)
    metrics.forget_rollout(meta["namespace"], meta["name"])
    return Outcome(ready=True, reason="Deregistered", message="every version was deregistered from Restate")


def _target_gone(spec: RestateDeploymentSpec) -> Outcome:
    """Deletion goes on when what it registered with is gone: nobody is left to ask."""
    if cluster := spec.restate.register_to.cluster:
        return Outcome(ready=True, reason="ClusterGone", message=f"RestateCluster {cluster} no longer exists")
    cloud = spec.restate.register_to.cloud
    return Outcome(
        ready=True,
        reason="CloudEnvironmentGone",
        message=(
            f"RestateCloudEnvironment {cloud} no longer exists, so its versions could not be deregistered: "
            "they stay registered in the Restate Cloud environment (remove them there with `restate deployments`)"
        ),
    )


# --- manual commands ---


def _find(rollout: Rollout, request: CommandRequest) -> Version:
    wanted = request.version
    for version in rollout.versions:
        if wanted in (version.name, version.hash):
            return version
    known = ", ".join(v.name for v in rollout.versions) or "none yet"
    raise errors.NotFound(f"no version {wanted} in this RestateDeployment; known versions: {known}")


async def promote(ctx: restate.ObjectContext, request: CommandRequest) -> None:
    """Release a held version (default: the newest) for registration."""
    rollout = await versions.load(ctx)
    if not rollout.versions:
        raise errors.NotFound("nothing to promote yet: this RestateDeployment has no version")
    rollout.promoted = (_find(rollout, request) if request.version else rollout.versions[0]).hash
    versions.save(ctx, rollout)


async def pause(ctx: restate.ObjectContext, request: CommandRequest) -> None:
    """Stop registering new versions; draining and status continue."""
    rollout = await versions.load(ctx)
    rollout.paused = True
    versions.save(ctx, rollout)


async def resume(ctx: restate.ObjectContext, request: CommandRequest) -> None:
    rollout = await versions.load(ctx)
    rollout.paused = False
    versions.save(ctx, rollout)


async def force_drain(ctx: restate.ObjectContext, request: CommandRequest) -> None:
    """Retire a superseded version now, even with invocations in flight (they will fail or be retried)."""
    rollout = await versions.load(ctx)
    version = _find(rollout, request)
    if version.hash not in rollout.force_drain:
        rollout.force_drain.append(version.hash)
    versions.save(ctx, rollout)


async def abort(ctx: restate.ObjectContext, request: CommandRequest) -> None:
    """Stop the current rollout: the previous serving version becomes the latest again (registered
    again if it was drained), and the new one drains and is kept, at zero replicas, for inspection.
    The abort holds until the spec asks for another version (or `rollback` names one)."""
    rollout = await versions.load(ctx)
    if len(rollout.versions) < 2:
        raise errors.NotFound("nothing to abort: this RestateDeployment has no earlier version to go back to")
    current, older = rollout.versions[0], rollout.versions[1:]
    previous = next((v for v in older if v.deployment_id or v.phase != VersionPhase.DRAINED), older[0])
    _pin(rollout, previous, f"abort of {current.name}")
    versions.save(ctx, rollout)


async def rollback(ctx: restate.ObjectContext, request: CommandRequest) -> None:
    """Serve a named version from the history again (registered again if it was drained); the one it
    replaces drains as in any rollout. Holds until the spec asks for another version."""
    if not request.version:
        raise errors.InvalidSpec('rollback needs a version: {"version": "<name or hash from history>"}')
    rollout = await versions.load(ctx)
    target = _find(rollout, request)
    if target is rollout.versions[0]:
        return  # already served
    if target.hash == rollout.pinned_against:
        rollout.pinned = rollout.pinned_against = None  # back to what the spec asks for
        target.cause = "rollback to the spec's version"
    else:
        _pin(rollout, target, f"rollback from {rollout.versions[0].name}")
    versions.save(ctx, rollout)


def _pin(rollout: Rollout, target: Version, cause: str) -> None:
    spec_hash = rollout.pinned_against or rollout.versions[0].hash  # what the spec asks for now
    rollout.pin(target.hash, spec_hash)
    target.cause = cause


async def history(ctx: restate.ObjectSharedContext) -> list[dict[str, Any]]:
    """Every version the resource remembers, newest first: phase, hash, images, Restate deployment id,
    when it was registered and superseded, and what made it the desired version."""
    rollout = await ctx.get(versions.ROLLOUT, type_hint=Rollout) or Rollout()
    return [
        {
            **versions.version_status(v).model_dump(mode="json", by_alias=True, exclude_none=True),
            "images": v.images,
            "cause": v.cause,
            "createdAt": rfc3339(v.created_at),
            "pinned": v.hash == rollout.pinned,
        }
        for v in rollout.versions
    ]


RECONCILER = Reconciler(
    kind=kinds.DEPLOYMENT,
    converge=converge,
    finalize=finalize,
    commands={
        "promote": promote,
        "pause": pause,
        "resume": resume,
        "forceDrain": force_drain,
        "abort": abort,
        "rollback": rollback,
    },
    queries={"history": history},
)
