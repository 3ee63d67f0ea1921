"""RestateDeployment in ReplicaSet mode: one ReplicaSet and Service per version, drained safely.

One pass, decide then act (how a version advances is `phases`, pure; this module gathers and executes):

    gather   our ReplicaSets and Restate's drain report; adopt versions the memory does not know
             (upstream's, or after a lost state)
    ensure   the desired version's ReplicaSet (created once) and its Service
    desired  observe pods, endpoints, the RestateCluster ─► phases.next_phase ─► Register, Annotate
    older    phases.next_phase with Restate's work per version ─► autoscaler, Deregister, ScaleTo 0
    finish   the stable Service, history beyond revisionHistoryLimit deleted, status from the models

Guarantees: a version is registered only once its pods are available and its Service has ready
endpoints; a ReplicaSet's pod template is written once, when it is created: afterwards only its
replicas and annotations change, so taking over from the upstream operator restarts no pod.
Objects the resource does not control (a user's Service named like it) are never written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, TypedDict

from pydantic import BaseModel

from services import status as conditions
from services.builders import deployment as build
from services.builders.cloud import InProcessTunnel
from services.clients.kube import Obj
from services.kinds import RESOURCES
from services.models.deployment import RestateDeploymentSpec, RestateDeploymentStatus, VersionPhase
from services.reconcilers import phases, versions
from services.reconcilers.engine import Outcome
from services.reconcilers.rollout import (
    DrainReport,
    ReplicaSetView,
    Rollout,
    Version,
    adopt,
    replica_set_view,
    to_ask,
)
from services.reconcilers.steps import Steps
from services.reconcilers.targets import Target

AVAILABLE_RECHECK_SECONDS = 5.0
RS = RESOURCES["ReplicaSet"]
SCALE_MANAGER = "restate-operator/scale"
ANNOTATION_MANAGER = "restate-operator/deployment-id"
PROPAGATE_MANAGER = "restate-operator/propagate-annotations"  # upstream's manager for the same annotations
SERVICE_CONFLICT = "StableServiceConflict"
APPLIED = "appliedServices"


class AppliedServices(BaseModel):
    """What this resource's Services were last applied as (state key `APPLIED`), so a pass that would
    apply the same body onto an object nobody changed since skips the write: name -> [digest of the
    body, the resourceVersion our apply left]. Holds only the Services the last pass wrote or kept."""

    services: dict[str, list[str]] = {}


class ServiceSeen(TypedDict):
    """A Service as a pass finds it (journaled, so plain JSON)."""

    resource_version: str
    ours: bool  # controlled by this resource: we may write it


# --- journaled actions (their bodies call clients; results stay small) ---


async def ready_endpoints(steps: Steps, namespace: str, service: str) -> int:
    slices = await (await steps.kube()).list(
        RESOURCES["EndpointSlice"], namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return sum(conditions.ready_endpoints(s) for s in slices["items"])


async def replica_sets(steps: Steps, owner: Obj, desired: str | None) -> dict[str, ReplicaSetView]:
    """name -> view of every ReplicaSet the resource with metadata `owner` owns (as upstream finds
    them: our labels naming it, an ownerReference to its uid), plus whatever ReplicaSet holds the
    desired version's name (it may belong to someone else)."""
    kube = await steps.kube()
    namespace, owner_uid = owner["namespace"], owner["uid"]
    listed = await kube.list(RS, namespace, label_selector=build.children_selector(owner["name"]))
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


async def services_seen(steps: Steps, rsd: Obj, names: list[str]) -> dict[str, ServiceSeen]:
    """Those of the Services `names` that exist: their resourceVersion, and whether `rsd` controls them."""
    kube, namespace = await steps.kube(), rsd["metadata"]["namespace"]
    found: dict[str, ServiceSeen] = {}
    for name in names:
        current = await kube.get(RESOURCES["Service"], name, namespace)
        if current is not None:
            found[name] = {
                "resource_version": str(current["metadata"]["resourceVersion"]),
                "ours": build.controlled_by(current, rsd),
            }
    return found


def _digest(body: Obj) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


async def _apply_service(
    steps: Steps, body: Obj, seen: ServiceSeen | None, last: AppliedServices, now: AppliedServices
) -> None:
    """Apply a Service of ours unless the last apply was of the same body and nobody wrote it since
    (same resourceVersion): server-side apply would change nothing. Absent, edited or rebuilt: applied."""
    name, digest = body["metadata"]["name"], _digest(body)
    if seen is not None and last.services.get(name) == [digest, seen["resource_version"]]:
        now.services[name] = last.services[name]
        return
    applied = await steps.apply(body)
    now.services[name] = [digest, str(applied["metadata"]["resourceVersion"])]


# --- the pass ---


async def converge(steps: Steps, rsd: Obj, spec: RestateDeploymentSpec, target: Target) -> Outcome:
    ctx, meta = steps.ctx, rsd["metadata"]
    namespace = meta["namespace"]
    admin = target.admin
    in_process = build.in_process_tunnel(rsd, target.environment)
    rollout = await versions.load(ctx)
    now = await ctx.time()
    collisions: int | None = (rsd.get("status") or {}).get("collisionCount")  # None until a collision
    spec_hash = build.version_hash(rsd, collisions, in_process)
    hash_ = rollout.desired_hash(spec_hash)
    pinned = hash_ != spec_hash
    desired_name = build.version_name(rsd, hash_)

    found = await steps.run("list ReplicaSets", replica_sets, steps, meta, desired_name)
    existing = found.get(desired_name)
    if pinned and (existing is None or not existing["owned"]):
        return versions.target_gone(ctx, rollout, desired_name, "ReplicaSet")
    if existing and not pinned and (not existing["owned"] or existing["template"] != build.template_json(rsd)):
        return Outcome(
            ready=False,
            reason="HashCollision",
            message=f"ReplicaSet {desired_name} exists with another template; trying the next name",
            requeue_after=1.0,
            status={"collisionCount": (collisions or 0) + 1},
        )
    report = await versions.drain_report(steps, admin, to_ask(rollout, found.values(), hash_))
    drain_delay = float(spec.restate.drain_delay_seconds)
    adopt(rollout, found.values(), report, drain_delay, now)
    versions.make_desired(rollout, rsd, desired_name, hash_, now, pinned=pinned)
    replica_set_uid = await _ensure_replica_set(steps, rsd, hash_, existing, spec.replicas, in_process)
    services = await steps.run("check Services", services_seen, steps, rsd, [desired_name, meta["name"]])
    last, applied = await ctx.get(APPLIED, type_hint=AppliedServices) or AppliedServices(), AppliedServices()
    version_service = build.version_service(rsd, hash_, replica_set_uid)
    await _apply_service(steps, version_service, services.get(desired_name), last, applied)
    pods = _pods(existing, spec.replicas)

    await _restore_lost(steps, rsd, rollout, found, spec.replicas, in_process)
    seen = await _observe_desired(steps, rsd, spec, rollout, pods, report)
    desired = phases.next_phase(rollout.versions[0], seen)
    latest = await _act(steps, rsd, spec, rollout, desired, target, found)
    if latest.deployment_id and any(isinstance(a, phases.Register) for a in desired.actions):
        report.registered(latest.deployment_id, latest.services)
    routed = versions.routed(rollout)

    async def act(transition: phases.Transition) -> Version:
        return await _act(steps, rsd, spec, rollout, transition, target, found)

    next_wakeup = await versions.advance_superseded(
        rollout,
        report,
        act,
        now=now,
        drain_delay=drain_delay,
        autoscaling=lambda version: build.version_autoscaler(rsd, version.hash) is not None,
        replicas=spec.replicas,
        scales=True,
    )
    stable_hash = hash_ if routed else _serving_hash(rollout, hash_)
    conflict = await _stable_service(steps, rsd, stable_hash, services.get(meta["name"]), last, applied)
    ctx.set(APPLIED, applied)

    async def delete(version: Version) -> None:
        await steps.run(f"delete {version.name}", delete_version, steps, namespace, version.name)

    await versions.trim_history(steps, rsd, rollout, spec.revision_history_limit, delete)
    phases.settle(rollout)
    _count_pods(rollout, latest, found, pods)
    versions.save(ctx, rollout)
    outcome = _outcome(rsd, spec, rollout, latest, desired, pods, report, hash_, collisions, next_wakeup, conflict)
    outcome.wake_on = versions.awaited(rollout.versions, report)
    return outcome


async def _restore_lost(
    steps: Steps,
    rsd: Obj,
    rollout: Rollout,
    found: Mapping[str, ReplicaSetView],
    replicas: int,
    in_process: InProcessTunnel | None,
) -> None:
    """A draining version whose ReplicaSet someone deleted while Restate still has work for it: its
    invocations could never finish. Re-create it (and its Service) from the template it was created
    with, and say so; without a remembered template, say what is lost and how to end it."""
    for version in rollout.versions[1:]:
        work = version.active_invocations or 0
        if version.phase != VersionPhase.DRAINING or version.name in found or not work:
            continue
        if version.template is None:
            await steps.event(
                rsd,
                "Warning",
                "VersionLost",
                f"ReplicaSet {version.name} was deleted while {work} invocation(s) still need it, and its template is "
                "not known to re-create it: restore it, or `forceDrain` the version to give up on that work",
                "Reconcile",
                step=f"event VersionLost {version.name}",
            )
            continue
        shaped = {**rsd, "spec": {**rsd["spec"], "template": json.loads(version.template)}}
        created = await steps.apply(build.replica_set(shaped, version.hash, replicas=replicas, in_process=in_process))
        await steps.apply(build.version_service(shaped, version.hash, str(created["metadata"]["uid"])))
        await steps.event(
            rsd,
            "Warning",
            "VersionRecreated",
            f"ReplicaSet {version.name} was deleted while {work} invocation(s) still need it; re-created it from "
            "its template so they can finish",
            "Reconcile",
            step=f"event VersionRecreated {version.name}",
        )


def _pods(existing: ReplicaSetView | None, replicas: int) -> phases.Pods:
    if existing is None:
        return phases.Pods(desired=replicas, current=0, ready=0, available=0, observed=False)
    return phases.Pods(
        desired=replicas,
        current=existing["current"],
        ready=existing["ready"],
        available=existing["available"],
        observed=existing["observed"],
    )


async def _observe_desired(
    steps: Steps, rsd: Obj, spec: RestateDeploymentSpec, rollout: Rollout, pods: phases.Pods, report: DrainReport
) -> phases.Desired:
    """What the desired version waits for; endpoints and the RestateCluster are looked up only while they matter."""
    version, namespace = rollout.versions[0], rsd["metadata"]["namespace"]
    looking = not phases.serving(version, report) and not rollout.paused and pods.available_all
    endpoints: int | None = None
    problem: str | None = None
    if looking:
        endpoints = await steps.run(
            f"count endpoints of {version.name}", ready_endpoints, steps, namespace, version.name
        )
    if looking and (endpoints or pods.desired == 0) and (cluster := spec.restate.register_to.cluster):
        problem = await steps.run(f"check RestateCluster {cluster}", cluster_ready, steps, cluster)
    return phases.Desired(
        report=report,
        gate=phases.replicaset_gate(version.name, pods, endpoints, problem),
        paused=rollout.paused,
        held=spec.restate.registration_policy == "Held" and rollout.promoted != version.hash,
    )


async def _act(
    steps: Steps,
    rsd: Obj,
    spec: RestateDeploymentSpec,
    rollout: Rollout,
    transition: phases.Transition,
    target: Target,
    found: Mapping[str, ReplicaSetView],
) -> Version:
    """Execute a transition's actions as journaled steps, then keep its version in the memory."""
    version, namespace = transition.version, rsd["metadata"]["namespace"]
    name = version.name
    admin = target.admin
    for action in transition.actions:
        match action:
            case phases.Register(force=force):
                created = found.get(name)
                tunnel = created["annotations"].get(build.TUNNEL_NAME_ANNOTATION, "") if created else ""
                url = build.service_url(rsd, version.hash, steps.settings, target.environment, tunnel)
                await versions.register_version(
                    steps, version, admin, url, force=force, use_http_11=spec.restate.use_http11
                )
            case phases.Annotate():
                deployment_id = version.deployment_id or ""
                await steps.run(f"annotate {name}", annotate, steps, namespace, name, deployment_id)
            case phases.Deregister(deployment_id=deployment_id):
                await versions.deregister_version(steps, admin, name, deployment_id)
            case phases.ScaleTo(replicas=replicas):
                await steps.run(f"scale {name} to {replicas}", scale, steps, namespace, name, replicas)
            case phases.ApplyAutoscaler():
                autoscaler = build.version_autoscaler(rsd, version.hash)
                if autoscaler is not None:
                    await steps.apply(autoscaler)
            case phases.DropAutoscaler(restore=restore):
                existed = await steps.run(f"delete autoscaler {name}", delete_autoscaler, steps, namespace, name)
                if existed and restore is not None:  # an adopted version may never have had one
                    await steps.run(f"restore {name}", scale, steps, namespace, name, restore)
    previous = rollout.version(version.hash)
    await versions.announce(steps, rsd, previous.phase if previous else None, transition, scaled=True)
    return versions.keep(rollout, version)


def _count_pods(rollout: Rollout, latest: Version, found: Mapping[str, ReplicaSetView], pods: phases.Pods) -> None:
    for version in rollout.versions:
        if version is latest:
            version.replicas, version.ready_replicas = pods.desired, pods.ready
            continue
        counts = found.get(version.name)
        version.replicas = counts["replicas"] if counts and version.phase != VersionPhase.DRAINED else 0
        version.ready_replicas = counts["ready"] if counts else 0


def _outcome(
    rsd: Obj,
    spec: RestateDeploymentSpec,
    rollout: Rollout,
    latest: Version,
    desired: phases.Transition,
    pods: phases.Pods,
    report: DrainReport,
    hash_: str,
    collisions: int | None,
    next_wakeup: float | None,
    conflict: dict[str, Any] | None,
) -> Outcome:
    """Ready means Restate routes new invocations to the desired version and its pods are available."""
    status = _status(rsd, spec, rollout, latest, pods, hash_, collisions)
    extra = [conflict] if conflict else []
    if (blocked := desired.blocked) is not None:
        return Outcome(
            ready=False,
            reason=blocked.reason,
            message=blocked.message,
            requeue_after=versions.min_of(blocked.recheck_after, next_wakeup),
            status=status,
            conditions=extra,
        )
    if not (pods.observed and pods.available >= pods.desired):
        return Outcome(
            ready=False,
            reason=pods.not_available_reason(),
            message=f"{pods.available}/{pods.desired} pods of {latest.name} available",
            requeue_after=versions.min_of(AVAILABLE_RECHECK_SECONDS, next_wakeup),
            status=status,
            conditions=extra,
        )
    message = f"{latest.name} is the latest version in Restate ({latest.deployment_id})"
    message += versions.pin_note(rollout, latest)
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


async def _ensure_replica_set(
    steps: Steps,
    rsd: Obj,
    hash_: str,
    existing: ReplicaSetView | None,
    replicas: int,
    in_process: InProcessTunnel | None,
) -> str:
    """The desired version's ReplicaSet uid. Created once; afterwards only its replicas and the
    resource's annotations follow the resource: its spec is never applied again, so the pod template
    stays as created (by us or by upstream), with no pod restart."""
    if existing is None:
        created = await steps.apply(build.replica_set(rsd, hash_, replicas=replicas, in_process=in_process))
        return str(created["metadata"]["uid"])
    namespace, name = rsd["metadata"]["namespace"], existing["name"]
    if existing["replicas"] != replicas:
        await steps.run(f"scale {name} to {replicas}", scale, steps, namespace, name, replicas)
    wanted = build.propagated_annotations(rsd)
    if any(existing["annotations"].get(key) != value for key, value in wanted.items()):
        await steps.run(f"annotate {name}", propagate_annotations, steps, namespace, name, wanted)
    return existing["uid"]


async def _stable_service(
    steps: Steps, rsd: Obj, hash_: str, seen: ServiceSeen | None, last: AppliedServices, now: AppliedServices
) -> dict[str, Any] | None:
    """Apply `<rsd>` when it is absent or ours. Someone else's Service of that name is left untouched:
    returns the condition saying so (with a Warning Event the first time)."""
    meta = rsd["metadata"]
    if seen is None or seen["ours"]:
        await _apply_service(steps, build.stable_service(rsd, hash_), seen, last, now)
        return None
    message = (
        f"Service {meta['namespace']}/{meta['name']} exists and is not controlled by this RestateDeployment, so it "
        "is left untouched and there is no stable Service selecting the latest version's pods; every version's own "
        f"Service ({meta['name']}-<hash>) still works. Rename or delete that Service to get one"
    )
    if conditions.find((rsd.get("status") or {}).get("conditions"), SERVICE_CONFLICT) is None:
        await steps.event(rsd, "Warning", "ServiceNotOwned", message, "Reconcile")
    return {"type": SERVICE_CONFLICT, "status": "True", "reason": "ServiceNotOwned", "message": message}


def _serving_hash(rollout: Rollout, fallback: str) -> str:
    """Until the desired version is latest in Restate, the stable Service keeps selecting the one that is."""
    serving = next((v for v in rollout.versions[1:] if v.phase == VersionPhase.LATEST), None)
    return serving.hash if serving else fallback


def _status(
    rsd: Obj,
    spec: RestateDeploymentSpec,
    rollout: Rollout,
    latest: Version,
    pods: phases.Pods,
    hash_: str,
    collisions: int | None,
) -> dict[str, Any]:
    status = RestateDeploymentStatus(
        **versions.rollout_status(rollout, latest),
        replicas=pods.current,
        desired_replicas=spec.replicas,
        ready_replicas=pods.ready,
        available_replicas=pods.available,
        unavailable_replicas=max(0, spec.replicas - pods.available),
        paused=rollout.paused,
        versions=[versions.version_status(v) for v in rollout.versions],
        label_selector=build.label_selector(rsd, hash_),
        deployment_id=latest.deployment_id,
        collision_count=collisions,
    )
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)
