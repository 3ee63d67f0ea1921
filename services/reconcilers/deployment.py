"""RestateDeployment: versioned rollouts with safe draining (ReplicaSet mode).

One pass, at most a few journaled steps per version:

    ReplicaSets of ours ─► versions not in memory are adopted (upstream's, or after a lost state)
    desired version ─► ReplicaSet created once, Service applied ─► ready? endpoints? target ready? ─► register
    older versions  ─► Restate says work remains? ─► Draining ─► idle for drainDelaySeconds
                    ─► deregister ─► scale to 0 (Drained) ─► beyond revisionHistoryLimit: deleted

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
written. Knative mode is not supported yet: such a resource is Degraded and gets nothing.
Caveats: waiting is a phase plus a wake-up, never a sleep; the watcher's events usually come first.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import restate

from services import status as conditions
from services.builders import deployment as build
from services.builders.common import MANAGED_BY
from services.clients.kube import RESOURCES, Obj
from services.clients.restate_admin import RestateAdmin
from services.models.deployment import VersionPhase
from services.reconcilers.framework import CommandRequest, Kind, Outcome, StepFailed, Steps, rfc3339
from services.reconcilers.rollout import (
    DRAIN_QUERY,
    DrainReport,
    ReplicaSetView,
    Rollout,
    Version,
    adopt,
    idle_decision,
    replica_set_view,
)

FINALIZER = "deployments.restate.dev"
ROLLOUT = "rollout"
DRAIN_POLL_SECONDS = 10.0
PENDING_RECHECK_SECONDS = 5.0
RS = RESOURCES["ReplicaSet"]
_MANAGED_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
SCALE_MANAGER = "restate-operator/scale"
ANNOTATION_MANAGER = "restate-operator/deployment-id"
PROPAGATE_MANAGER = "restate-operator/propagate-annotations"  # upstream's manager for the same annotations
SERVICE_CONFLICT = "StableServiceConflict"


class KnativeNotSupported(StepFailed):
    """`deploymentMode: knative`: a permanent failure with its own reason, until Knative mode exists."""

    def __init__(self) -> None:
        super().__init__(
            "spec.deploymentMode",
            "Knative mode is not supported yet; this operator created nothing for this RestateDeployment. "
            "Use deploymentMode: replicaset (the mode cannot change: create a new RestateDeployment), or run "
            "Knative deployments with an operator that supports them",
            permanent=True,
        )

    @property
    def reason(self) -> str:
        return "KnativeNotSupported"


def _knative(rsd: Obj) -> bool:
    return bool(rsd["spec"].get("deploymentMode") == "knative")


async def load(ctx: restate.ObjectContext) -> Rollout:
    return await ctx.get(ROLLOUT, type_hint=Rollout) or Rollout()


# --- journaled actions (their bodies call clients; results stay small) ---


async def query_drain(admin_url: str) -> list[dict[str, Any]]:
    async with RestateAdmin(admin_url) as admin:
        return await admin.query(DRAIN_QUERY)


async def register(admin_url: str, uri: str, force: bool, use_http_11: bool | None) -> dict[str, Any]:
    async with RestateAdmin(admin_url) as admin:
        registered = await admin.register(uri, force=force, use_http_11=use_http_11)
    return {"id": registered["id"], "services": sorted(s["name"] for s in registered.get("services", []))}


async def deregister(admin_url: str, deployment_id: str) -> bool:
    async with RestateAdmin(admin_url) as admin:
        return await admin.deregister(deployment_id)


async def ready_endpoints(steps: Steps, namespace: str, service: str) -> int:
    slices = await (await steps.kube()).list(
        RESOURCES["EndpointSlice"], namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return sum(
        1 for s in slices["items"] for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready", True)
    )


async def replica_sets(steps: Steps, namespace: str, owner_uid: str, desired: str | None) -> dict[str, ReplicaSetView]:
    """name -> view of every ReplicaSet this resource owns (as upstream finds them: managed by the
    operator, with an ownerReference to this resource's uid), plus whatever ReplicaSet holds the
    desired version's name (it may belong to someone else)."""
    kube = await steps.kube()
    listed = await kube.list(RS, namespace, label_selector=_MANAGED_SELECTOR)
    found = {rs["metadata"]["name"]: replica_set_view(rs, owner_uid) for rs in listed["items"]}
    found = {name: view for name, view in found.items() if view["owned"]}
    if desired and desired not in found and (squatter := await kube.get(RS, desired, namespace)) is not None:
        found[desired] = replica_set_view(squatter, owner_uid)
    return found


async def cluster_ready(steps: Steps, name: str) -> str | None:
    """None when the RestateCluster is Ready, else why not."""
    cluster = await (await steps.kube()).get(RESOURCES["RestateCluster"], name)
    if cluster is None:
        return f"RestateCluster {name} does not exist"
    ready = next((c for c in (cluster.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)
    if not ready or ready.get("status") != "True":
        return f"RestateCluster {name} is not ready"
    return None


async def delete_autoscaler(steps: Steps, namespace: str, name: str) -> bool:
    return await (await steps.kube()).delete(RESOURCES["HorizontalPodAutoscaler"], name, namespace)


async def delete_version(steps: Steps, namespace: str, name: str) -> None:
    kube = await steps.kube()
    await kube.delete(RESOURCES["Service"], name, namespace)
    await kube.delete(RS, name, namespace)


def _partial(kind: str, api_version: str, name: str, namespace: str, **fields: Any) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}, **fields}


async def scale(steps: Steps, namespace: str, name: str, replicas: int) -> None:
    obj = _partial("ReplicaSet", "apps/v1", name, namespace, spec={"replicas": replicas})
    await (await steps.kube()).apply(obj, field_manager=SCALE_MANAGER)


async def annotate(steps: Steps, namespace: str, name: str, deployment_id: str) -> None:
    kube = await steps.kube()
    annotations = {"annotations": {build.DEPLOYMENT_ID_ANNOTATION: deployment_id}}
    for kind, api_version in (("ReplicaSet", "apps/v1"), ("Service", "v1")):
        obj = _partial(kind, api_version, name, namespace)
        obj["metadata"].update(annotations)
        await kube.apply(obj, field_manager=ANNOTATION_MANAGER)


async def propagate_annotations(steps: Steps, namespace: str, name: str, annotations: dict[str, str]) -> None:
    obj = _partial("ReplicaSet", "apps/v1", name, namespace)
    obj["metadata"]["annotations"] = annotations
    await (await steps.kube()).apply(obj, field_manager=PROPAGATE_MANAGER)


async def service_is_ours(steps: Steps, rsd: Obj) -> bool:
    """Whether the Service named like the resource is absent or controlled by it (so we may write it)."""
    meta = rsd["metadata"]
    current = await (await steps.kube()).get(RESOURCES["Service"], meta["name"], meta["namespace"])
    return current is None or build.controlled_by(current, rsd)


async def warn(steps: Steps, rsd: Obj, reason: str, note: str) -> None:
    await (await steps.kube()).event(
        rsd,
        type_="Warning",
        reason=reason,
        note=note,
        action="Reconcile",
        reporting_instance=steps.deps.settings.pod_name,
    )


def not_available_reason(rs: Obj, replicas: int) -> str:
    """Upstream's reasons for a version whose pods are not all there yet, most fundamental first."""
    if not rs["observed"] or rs["current"] != replicas:
        return "ReplicaSetScaling"
    if rs["ready"] < replicas:
        return "ReplicaSetPodNotReady"
    return "ReplicaSetPodNotAvailable"


# --- the pass ---


def _admin_url(rsd: Obj, steps: Steps) -> str:
    try:
        return build.admin_url(rsd, steps.deps.settings)
    except build.UnsupportedTarget as exc:
        raise StepFailed("resolve register target", str(exc), permanent=True) from exc


async def converge(steps: Steps, rsd: Obj) -> Outcome:
    if _knative(rsd):
        raise KnativeNotSupported()
    ctx = steps.ctx
    spec, meta = rsd["spec"], rsd["metadata"]
    namespace = meta["namespace"]
    rollout = await load(ctx)
    now = await ctx.time()
    admin = _admin_url(rsd, steps)
    collisions: int | None = (rsd.get("status") or {}).get("collisionCount")  # None until a collision
    hash_ = build.version_hash(rsd, collisions)
    desired_name = build.version_name(rsd, hash_)

    found = await steps.run("list ReplicaSets", replica_sets, steps, namespace, meta["uid"], desired_name)
    existing = found.get(desired_name)
    if existing and (not existing["owned"] or existing["template"] != build.template_json(rsd)):
        return Outcome(
            ready=False,
            reason="HashCollision",
            message=f"ReplicaSet {desired_name} exists with another template; trying the next name",
            requeue_after=1.0,
            status={"collisionCount": (collisions or 0) + 1},
        )
    report = DrainReport.parse(await steps.run("query Restate deployments", query_drain, admin))
    adopt(rollout, found.values(), report, _drain_delay(rsd), now)
    latest = rollout.make_latest(desired_name, hash_, now)
    if latest.autoscaled:  # a rollback: the latest version scales with the resource, not its own autoscaler
        await steps.run(f"delete autoscaler {latest.name}", delete_autoscaler, steps, meta["namespace"], latest.name)
        latest.autoscaled = False
    replicas = spec.get("replicas", 1)
    replica_set_uid = await _ensure_replica_set(steps, rsd, hash_, existing, replicas)
    await steps.apply(build.version_service(rsd, hash_, replica_set_uid))
    rs: dict[str, Any] = dict(existing) if existing else {"current": 0, "ready": 0, "available": 0, "observed": False}

    waiting_for = await _promote(steps, rsd, rollout, latest, report, rs, admin)
    routed = latest.deployment_id is not None and latest.phase == VersionPhase.LATEST
    next_wakeup = await _retire_old(steps, rsd, rollout, latest, report, admin, now, routed)
    conflict = await _stable_service(steps, rsd, hash_ if routed else _serving_hash(rollout, hash_))
    await _trim_history(steps, rsd, rollout, namespace)

    for version in rollout.versions:
        counts: Mapping[str, Any] | None = found.get(version.name)
        if version is latest:
            counts = {**rs, "replicas": replicas}
        version.replicas = counts["replicas"] if counts and version.phase != VersionPhase.DRAINED else 0
        version.ready_replicas = counts["ready"] if counts else 0
    ctx.set(ROLLOUT, rollout)

    status = _status(rsd, rollout, latest, rs, hash_, collisions)
    extra = [conflict] if conflict else []
    available = rs["available"] >= replicas and rs["observed"]
    if waiting_for is not None:
        reason, message, wakeup = waiting_for
        return Outcome(
            ready=False,
            reason=reason,
            message=message,
            requeue_after=_min(wakeup, next_wakeup),
            status=status,
            conditions=extra,
        )
    if not available:
        message = f"{rs['available']}/{replicas} pods of {desired_name} available"
        return Outcome(
            ready=False,
            reason=not_available_reason(rs, replicas),
            message=message,
            requeue_after=_min(PENDING_RECHECK_SECONDS, next_wakeup),
            status=status,
            conditions=extra,
        )
    message = f"{desired_name} is the latest version in Restate ({latest.deployment_id})"
    for version in rollout.versions:
        if version is latest or version.phase != VersionPhase.DRAINING:
            continue
        kept_for = report.routes(version.deployment_id or "")
        if kept_for:
            message += f"; {version.name} stays: it is still the latest deployment of {', '.join(kept_for)}"
        else:
            message += f"; draining {version.name}"
    return Outcome(
        ready=True, reason="Deployed", message=message, requeue_after=next_wakeup, status=status, conditions=extra
    )


def _drain_delay(rsd: Obj) -> float:
    return float(rsd["spec"]["restate"].get("drainDelaySeconds", 300))


async def _ensure_replica_set(
    steps: Steps, rsd: Obj, hash_: str, existing: ReplicaSetView | None, replicas: int
) -> str:
    """The desired version's ReplicaSet uid. Created once; afterwards only its replicas and the
    resource's annotations follow the resource: its spec is never applied again, so the pod template
    stays as created (by us or by upstream), with no pod restart."""
    if existing is None:
        created = await steps.apply(build.replica_set(rsd, hash_, replicas=replicas))
        return str(created["metadata"]["uid"])
    namespace, name = rsd["metadata"]["namespace"], existing["name"]
    if existing["replicas"] != replicas:
        await steps.run(f"scale {name} to {replicas}", scale, steps, namespace, name, replicas)
    wanted = build.propagated_annotations(rsd)
    if any(existing["annotations"].get(key) != value for key, value in wanted.items()):
        await steps.run(f"annotate {name}", propagate_annotations, steps, namespace, name, wanted)
    return existing["uid"]


async def _stable_service(steps: Steps, rsd: Obj, hash_: str) -> dict[str, Any] | None:
    """Apply `<rsd>` when it is absent or ours. Someone else's Service of that name is left untouched:
    returns the condition saying so (with a Warning Event the first time)."""
    meta = rsd["metadata"]
    if await steps.run(f"check Service {meta['name']}", service_is_ours, steps, rsd):
        await steps.apply(build.stable_service(rsd, hash_))
        return None
    message = (
        f"Service {meta['namespace']}/{meta['name']} exists and is not controlled by this RestateDeployment, so it "
        "is left untouched and there is no stable Service selecting the latest version's pods; every version's own "
        f"Service ({meta['name']}-<hash>) still works. Rename or delete that Service to get one"
    )
    if conditions.find((rsd.get("status") or {}).get("conditions"), SERVICE_CONFLICT) is None:
        await steps.run("event ServiceNotOwned", warn, steps, rsd, "ServiceNotOwned", message)
    return {"type": SERVICE_CONFLICT, "status": "True", "reason": "ServiceNotOwned", "message": message}


def _min(a: float | None, b: float | None) -> float | None:
    values = [x for x in (a, b) if x is not None]
    return min(values) if values else None


def _serving_hash(rollout: Rollout, fallback: str) -> str:
    """Until the desired version is latest in Restate, the stable Service keeps selecting the one that is."""
    serving = next((v for v in rollout.versions[1:] if v.phase == VersionPhase.LATEST), None)
    return serving.hash if serving else fallback


async def _promote(
    steps: Steps, rsd: Obj, rollout: Rollout, latest: Version, report: DrainReport, rs: dict[str, Any], admin: str
) -> tuple[str, str, float | None] | None:
    """Make the desired version the one Restate routes to. Returns (reason, message, wake-up) while waiting."""
    restate_spec, namespace = rsd["spec"]["restate"], rsd["metadata"]["namespace"]
    if latest.deployment_id and report.exists(latest.deployment_id):
        serving = report.routes(latest.deployment_id)
        if serving and set(latest.services) <= set(serving):
            latest.phase = VersionPhase.LATEST
            return None
    if rollout.paused:
        return "Paused", "the rollout is paused; call resume to continue", None
    replicas = rsd["spec"].get("replicas", 1)
    if not (rs["observed"] and rs["available"] >= replicas and rs["ready"] >= replicas):
        latest.phase = VersionPhase.PENDING
        # The ReplicaSet's own events usually come first; the wake-up is the fallback.
        message = f"{rs['available']}/{replicas} pods of {latest.name} available"
        return not_available_reason(rs, replicas), message, 30.0
    endpoints = await steps.run(f"count endpoints of {latest.name}", ready_endpoints, steps, namespace, latest.name)
    if endpoints == 0 and replicas > 0:
        latest.phase = VersionPhase.PENDING
        # The watcher forwards the version's EndpointSlice changes; the wake-up is the fallback.
        return "EndpointsNotReady", f"Service {latest.name} has no ready endpoints yet", 30.0
    if cluster := restate_spec["register"].get("cluster"):
        problem = await steps.run(f"check RestateCluster {cluster}", cluster_ready, steps, cluster)
        if problem:
            latest.phase = VersionPhase.PENDING
            return "ClusterNotReady", problem, 30.0
    if restate_spec.get("registrationPolicy") == "Held" and rollout.promoted != latest.hash:
        latest.phase = VersionPhase.HELD
        return "RegistrationHeld", f"{latest.name} is ready and held; call promote to register it", None
    latest.phase = VersionPhase.REGISTERING
    # Re-registering a URI Restate still knows needs force to become the latest revision again (rollback).
    force = report.exists(latest.deployment_id)
    url = build.service_url(rsd, latest.hash, steps.deps.settings)
    registered = await steps.run(f"register {latest.name}", register, admin, url, force, restate_spec.get("useHttp11"))
    latest.deployment_id, latest.services = registered["id"], registered["services"]
    latest.registered_at = await steps.ctx.time()
    latest.phase = VersionPhase.LATEST
    await steps.run(f"annotate {latest.name}", annotate, steps, namespace, latest.name, latest.deployment_id)
    if rollout.promoted == latest.hash:
        rollout.promoted = None
    return None


async def _retire_old(
    steps: Steps,
    rsd: Obj,
    rollout: Rollout,
    latest: Version,
    report: DrainReport,
    admin: str,
    now: float,
    routed: bool,
) -> float | None:
    """Drain, deregister and scale down superseded versions; returns when to look again."""
    namespace = rsd["metadata"]["namespace"]
    delay = _drain_delay(rsd)
    next_wakeup: float | None = None
    for version in rollout.versions:
        if version is latest or version.phase == VersionPhase.DRAINED:
            continue
        registered = report.exists(version.deployment_id)
        # Never registered (or already gone from Restate): nothing can be pinned to it.
        forced = version.hash in rollout.force_drain or not registered
        serving = report.routes(version.deployment_id or "") if registered and not forced else []
        if serving and not routed:
            version.phase = VersionPhase.LATEST  # what Restate routes to, until the new version takes over
            continue
        version.superseded_at = version.superseded_at or now
        work = report.work(version.deployment_id) if registered and version.deployment_id else 0
        version.active_invocations = work
        if serving:
            # Still the latest deployment of services the newer versions lack: deregistering it would
            # remove them from Restate, so it stays (with its pods) until they move or forceDrain.
            version.phase, version.idle_since = VersionPhase.DRAINING, None
            await _autoscale(steps, rsd, version)
            next_wakeup = _min(next_wakeup, DRAIN_POLL_SECONDS)
            continue
        retire, remaining = idle_decision(version, work, now, delay, forced)
        if not retire:
            version.phase = VersionPhase.DRAINING
            await _autoscale(steps, rsd, version)
            wait = DRAIN_POLL_SECONDS if remaining is None else min(DRAIN_POLL_SECONDS, max(1.0, remaining))
            next_wakeup = _min(next_wakeup, wait)
            continue
        if version.autoscaled:  # before the scale-down, so its minReplicas cannot fight it
            await steps.run(f"delete autoscaler {version.name}", delete_autoscaler, steps, namespace, version.name)
            version.autoscaled = False
        if registered and version.deployment_id:
            await steps.run(f"deregister {version.name}", deregister, admin, version.deployment_id)
        await steps.run(f"scale {version.name} to 0", scale, steps, namespace, version.name, 0)
        version.phase = VersionPhase.DRAINED
        version.deployment_id = None
        if version.hash in rollout.force_drain:
            rollout.force_drain.remove(version.hash)
    return next_wakeup


async def _autoscale(steps: Steps, rsd: Obj, version: Version) -> None:
    """Keep a draining version's autoscaler as `spec.autoscaling` says; removing it restores the replicas."""
    autoscaler = build.version_autoscaler(rsd, version.hash)
    if autoscaler is not None:
        await steps.apply(autoscaler)
        version.autoscaled = True
    elif version.autoscaled:
        namespace = rsd["metadata"]["namespace"]
        existed = await steps.run(
            f"delete autoscaler {version.name}", delete_autoscaler, steps, namespace, version.name
        )
        if existed:  # an adopted version may never have had one
            await steps.run(
                f"restore {version.name}", scale, steps, namespace, version.name, rsd["spec"].get("replicas", 1)
            )
        version.autoscaled = False


async def _trim_history(steps: Steps, rsd: Obj, rollout: Rollout, namespace: str) -> None:
    limit = rsd["spec"].get("revisionHistoryLimit", 10)
    drained = [v for v in rollout.versions if v.phase == VersionPhase.DRAINED]
    for version in drained[limit:]:
        await steps.run(f"delete {version.name}", delete_version, steps, namespace, version.name)
        rollout.versions.remove(version)


def _status(
    rsd: Obj, rollout: Rollout, latest: Version, rs: dict[str, Any], hash_: str, collisions: int | None
) -> dict[str, Any]:
    replicas = rsd["spec"].get("replicas", 1)
    status: dict[str, Any] = {
        "replicas": rs["current"],
        "desiredReplicas": replicas,
        "readyReplicas": rs["ready"],
        "availableReplicas": rs["available"],
        "unavailableReplicas": max(0, replicas - rs["available"]),
        "paused": rollout.paused,
        "versions": [_version_status(v) for v in rollout.versions],
    }
    if (selector := build.label_selector(rsd, hash_)) is not None:
        status["labelSelector"] = selector
    if latest.deployment_id:
        status["deploymentId"] = latest.deployment_id
    if collisions is not None:
        status["collisionCount"] = collisions
    return status


def _version_status(version: Version) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": version.name,
        "hash": version.hash,
        "phase": version.phase.value,
        "replicas": version.replicas,
        "readyReplicas": version.ready_replicas,
    }
    if version.deployment_id:
        entry["deploymentId"] = version.deployment_id
    if version.registered_at:
        entry["registeredAt"] = rfc3339(version.registered_at)
    if version.superseded_at and version.phase in (VersionPhase.DRAINING, VersionPhase.DRAINED):
        entry["drainingSince"] = rfc3339(version.superseded_at)
    if version.active_invocations is not None and version.phase == VersionPhase.DRAINING:
        entry["activeInvocations"] = version.active_invocations
    return entry


async def finalize(steps: Steps, rsd: Obj) -> Outcome:
    """Deletion waits until no version has work in Restate, then deregisters every version, those
    only the ReplicaSets know of (upstream's) included."""
    if _knative(rsd):
        return Outcome(ready=True, reason="NothingRegistered", message="Knative mode: this operator created nothing")
    rollout = await load(steps.ctx)
    register_to = rsd["spec"]["restate"]["register"]
    if cluster := register_to.get("cluster"):
        gone = await steps.get(RESOURCES["RestateCluster"], cluster)
        if gone is None:
            return Outcome(ready=True, reason="ClusterGone", message=f"RestateCluster {cluster} no longer exists")
    admin = _admin_url(rsd, steps)
    report = DrainReport.parse(await steps.run("query Restate deployments", query_drain, admin))
    meta = rsd["metadata"]
    found = await steps.run("list ReplicaSets", replica_sets, steps, meta["namespace"], meta["uid"], None)
    adopt(rollout, found.values(), report, _drain_delay(rsd), await steps.ctx.time())
    blocking = [
        (v, report.work(v.deployment_id))
        for v in rollout.versions
        if v.deployment_id
        and report.exists(v.deployment_id)
        and report.work(v.deployment_id) > 0
        and v.hash not in rollout.force_drain
    ]
    if blocking:
        key = urllib.parse.quote(f"{rsd['metadata']['namespace']}/{rsd['metadata']['name']}", safe="")
        waits = ", ".join(f"{v.name} has {n} unfinished invocation(s)" for v, n in blocking)
        hint = (
            f"deletion waits for them to finish; to delete anyway: curl -X POST "
            f"\"$RESTATE_INGRESS_URL/DeploymentReconciler/{key}/forceDrain\" -H 'content-type: application/json' "
            f'-d \'{{"version": "{blocking[0][0].name}"}}\''
        )
        for version, n in blocking:
            version.phase, version.active_invocations = VersionPhase.DRAINING, n
        steps.ctx.set(ROLLOUT, rollout)
        return Outcome(
            ready=False, reason="DeletionBlocked", message=f"{waits}; {hint}", requeue_after=DRAIN_POLL_SECONDS
        )
    for version in rollout.versions:
        if version.deployment_id and report.exists(version.deployment_id):
            await steps.run(f"deregister {version.name}", deregister, admin, version.deployment_id)
    return Outcome(ready=True, reason="Deregistered", message="every version was deregistered from Restate")


# --- manual commands ---


def _find(rollout: Rollout, request: CommandRequest) -> Version:
    wanted = request.version
    for version in rollout.versions:
        if wanted in (version.name, version.hash):
            return version
    raise restate.TerminalError(f"no version {wanted!r}; known: {[v.name for v in rollout.versions]}", 404)


async def promote(ctx: restate.ObjectContext, request: CommandRequest) -> None:
    """Release a held version (default: the newest) for registration."""
    rollout = await load(ctx)
    if not rollout.versions:
        raise restate.TerminalError("nothing to promote yet", 404)
    rollout.promoted = (_find(rollout, request) if request.version else rollout.versions[0]).hash
    ctx.set(ROLLOUT, rollout)


async def pause(ctx: restate.ObjectContext, request: CommandRequest) -> None:
    """Stop registering new versions; draining and status continue."""
    rollout = await load(ctx)
    rollout.paused = True
    ctx.set(ROLLOUT, rollout)


async def resume(ctx: restate.ObjectContext, request: CommandRequest) -> None:
    rollout = await load(ctx)
    rollout.paused = False
    ctx.set(ROLLOUT, rollout)


async def force_drain(ctx: restate.ObjectContext, request: CommandRequest) -> None:
    """Retire a superseded version now, even with invocations in flight (they will fail or be retried)."""
    rollout = await load(ctx)
    version = _find(rollout, request)
    if version.hash not in rollout.force_drain:
        rollout.force_drain.append(version.hash)
    ctx.set(ROLLOUT, rollout)


KIND = Kind(
    resource=RESOURCES["RestateDeployment"],
    controller="restatedeployment",
    finalizer=FINALIZER,
    converge=converge,
    finalize=finalize,
    commands={"promote": promote, "pause": pause, "resume": resume, "forceDrain": force_drain},
)
