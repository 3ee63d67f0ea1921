"""What both modes of a RestateDeployment share: its spec, its rollout memory, and its calls to Restate.

ReplicaSet mode (`replicaset_mode`) and Knative mode (`knative_mode`) differ in the workload they
create and in what a version waits for; they keep the same rollout memory (`rollout.Rollout`,
under one state key), decide with the same state machine (`phases`), register, drain and
deregister through the same journaled calls here, and report versions in the same status shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import restate

from services import errors, metrics
from services.builders import deployment as build
from services.builders.deployment import AdminEndpoint
from services.clients.connections import Connections
from services.clients.kube import Obj
from services.contract import split_key
from services.models.deployment import RestateDeploymentSpec, VersionPhase, VersionStatus
from services.reconcilers import phases
from services.reconcilers.admin import admin
from services.reconcilers.engine import Outcome, rfc3339
from services.reconcilers.rollout import Asked, DrainReport, Rollout, Version, awaited_query, drain_query
from services.reconcilers.steps import Steps

ROLLOUT = "rollout"
logger = restate.getLogger(__name__)  # type: ignore[no-untyped-call]  # silent during replay


def parse_spec(rsd: Obj) -> RestateDeploymentSpec:
    """The spec as its model reads it (defaults included): the one source of every default."""
    try:
        return RestateDeploymentSpec.model_validate(rsd["spec"])
    except ValueError as exc:
        raise errors.InvalidSpec(f"spec: {exc}") from exc


async def load(ctx: restate.ObjectContext) -> Rollout:
    return await ctx.get(ROLLOUT, type_hint=Rollout) or Rollout()


def save(ctx: restate.ObjectContext, rollout: Rollout) -> None:
    """Keep the memory, and show it in the rollout gauges."""
    ctx.set(ROLLOUT, rollout)
    namespace, name = split_key(ctx.key())
    counts: dict[str, int] = {}
    for version in rollout.versions:
        counts[version.phase.value] = counts.get(version.phase.value, 0) + 1
    draining = sum(v.active_invocations or 0 for v in rollout.versions if v.phase == VersionPhase.DRAINING)
    metrics.observe_rollout(namespace or "", name, counts, draining)


# --- journaled calls to Restate's admin API (results stay small) ---


async def query_drain(connections: Connections, endpoint: AdminEndpoint, sql: str) -> list[dict[str, Any]]:
    async with admin(connections, endpoint) as client:
        return await client.query(sql)


async def register(
    connections: Connections, endpoint: AdminEndpoint, uri: str, force: bool, use_http_11: bool | None
) -> dict[str, Any]:
    async with admin(connections, endpoint) as client:
        registered = await client.register(uri, force=force, use_http_11=use_http_11)
    services = registered.get("services") or []
    return {
        "id": registered["id"],
        "services": sorted(s["name"] for s in services),
        "discovery": fingerprint(services),
    }


async def deregister(connections: Connections, endpoint: AdminEndpoint, deployment_id: str) -> bool:
    async with admin(connections, endpoint) as client:
        return await client.deregister(deployment_id)


async def discover(connections: Connections, endpoint: AdminEndpoint, uri: str, use_http_11: bool | None) -> str:
    """A fingerprint of the services and handlers `uri` serves now, from a dry-run registration."""
    async with admin(connections, endpoint) as client:
        found = await client.register(uri, force=True, use_http_11=use_http_11, dry_run=True)
    return fingerprint(found.get("services") or [])


def fingerprint(services: list[dict[str, Any]]) -> str:
    """Service names, types and handler names: what a re-registration would change."""
    parts = []
    for service in sorted(services, key=lambda s: str(s.get("name"))):
        handlers = ",".join(sorted(str(h.get("name")) for h in service.get("handlers") or []))
        parts.append(f"{service.get('name')}:{service.get('ty')}:{handlers}")
    return ";".join(parts)


async def drain_report(steps: Steps, endpoint: AdminEndpoint, asked: Asked) -> DrainReport:
    """What Restate knows of these deployments; nothing to ask (a first pass) costs no step."""
    sql = drain_query(asked)
    if sql is None:
        return DrainReport()
    report = DrainReport.parse(
        await steps.run("query Restate deployments", query_drain, steps.connections, endpoint, sql)
    )
    awaited = awaited_query(report)
    if awaited is not None:
        report.note_awaited(
            await steps.run("query pinned invocations", query_drain, steps.connections, endpoint, awaited)
        )
    return report


def awaited(versions: Iterable[Version], report: DrainReport) -> list[str]:
    """The invocations pinned to these versions while they drain: a pass once they have finished
    (`awaiting`) retires a version without waiting for the next drain poll."""
    return sorted(
        invocation
        for version in versions
        if version.phase == VersionPhase.DRAINING and version.deployment_id
        for invocation in report.awaited.get(version.deployment_id, [])
    )


async def register_version(
    steps: Steps, version: Version, endpoint: AdminEndpoint, url: str, *, force: bool, use_http_11: bool | None
) -> None:
    """Register `url` for `version` and remember what Restate answered."""
    registered = await steps.run(
        f"register {version.name}", register, steps.connections, endpoint, url, force, use_http_11
    )
    version.deployment_id, version.services = registered["id"], registered["services"]
    version.discovery = registered["discovery"]
    version.registered_at = await steps.ctx.time()


async def deregister_version(steps: Steps, endpoint: AdminEndpoint, name: str, deployment_id: str) -> bool:
    return await steps.run(f"deregister {name}", deregister, steps.connections, endpoint, deployment_id)


def keep(rollout: Rollout, version: Version) -> Version:
    """Put a version's new memory (a transition's result) in place of its old one."""
    index = next(i for i, v in enumerate(rollout.versions) if v.hash == version.hash)
    rollout.versions[index] = version
    return version


def min_of(a: float | None, b: float | None) -> float | None:
    values = [x for x in (a, b) if x is not None]
    return min(values) if values else None


def version_status(version: Version, *, tag: str | None = None) -> VersionStatus:
    draining = version.phase in (VersionPhase.DRAINING, VersionPhase.DRAINED)
    return VersionStatus(
        name=version.name,
        tag=tag,
        hash=version.hash,
        phase=version.phase,
        replicas=version.replicas,
        ready_replicas=version.ready_replicas,
        deployment_id=version.deployment_id,
        registered_at=rfc3339(version.registered_at) if version.registered_at else None,
        draining_since=rfc3339(version.superseded_at) if version.superseded_at and draining else None,
        active_invocations=version.active_invocations if version.phase == VersionPhase.DRAINING else None,
    )


def routed(rollout: Rollout) -> bool:
    """Restate routes to the desired version (the first), registered this pass or before."""
    desired = rollout.versions[0]
    return desired.deployment_id is not None and desired.phase == VersionPhase.LATEST


async def advance_superseded(
    rollout: Rollout,
    report: DrainReport,
    act: Callable[[phases.Transition], Awaitable[Version]],
    *,
    now: float,
    drain_delay: float,
    autoscaling: Callable[[Version], bool],
    replicas: int,
    scales: bool,
) -> float | None:
    """Advance every version but the desired one, newest first; returns when to look at them again."""
    next_wakeup: float | None = None
    desired_routed = routed(rollout)
    for version in rollout.versions[1:]:
        seen = phases.Superseded(
            report=report,
            now=now,
            drain_delay=drain_delay,
            forced=version.hash in rollout.force_drain,
            desired_routed=desired_routed,
            autoscaling=autoscaling(version),
            replicas=replicas,
            scales=scales,
        )
        transition = phases.next_phase(version, seen)
        await act(transition)
        next_wakeup = min_of(next_wakeup, transition.recheck_after)
    return next_wakeup


def rollout_status(rollout: Rollout, latest: Version) -> dict[str, Any]:
    """The status fields a person scans first (printer columns), the same in both modes."""
    draining = [v for v in rollout.versions if v.phase == VersionPhase.DRAINING]
    return {
        "latest_version": latest.name if latest.phase == VersionPhase.LATEST else None,
        "draining_versions": len(draining),
        "draining_invocations": sum(v.active_invocations or 0 for v in draining),
        "pinned_version": latest.name if rollout.pinned == latest.hash else None,
    }


def make_desired(rollout: Rollout, rsd: Obj, name: str, hash_: str, now: float, *, pinned: bool) -> Version:
    """Move the version to serve to the front, remembering why it is there and what it runs."""
    cause = "" if pinned else f"spec generation {rsd['metadata'].get('generation')}"
    version = rollout.make_latest(name, hash_, now, cause=cause)
    if not version.images and not pinned:
        containers = rsd["spec"]["template"]["spec"].get("containers") or []
        version.images = [str(c.get("image")) for c in containers]
    if not version.template and not pinned:
        version.template = build.template_json(rsd)
    return version


def target_gone(ctx: restate.ObjectContext, rollout: Rollout, name: str, kind: str) -> Outcome:
    """An abort or rollback target whose objects are gone: forget the pin, serve the spec again."""
    rollout.pinned = rollout.pinned_against = None
    save(ctx, rollout)
    return Outcome(
        ready=False,
        reason="RollbackTargetGone",
        message=f"{kind} {name} no longer exists, so it cannot be served again; rolling out the spec's version",
        requeue_after=1.0,
    )


async def announce(
    steps: Steps, rsd: Obj, before: VersionPhase | None, transition: phases.Transition, *, scaled: bool
) -> None:
    """One Normal Event on the resource per thing that happened to a version, in order, so
    `kubectl describe rsd` tells the story of a rollout (and `VERSION_TRANSITIONS` counts it)."""
    version = transition.version
    for action in transition.actions:
        match action:
            case phases.Register(force=force):
                again = " again, in place: its Revision serves other services" if before == VersionPhase.LATEST else ""
                note = f"registered {version.name} with Restate as {version.deployment_id}{again}"
                await _event(steps, rsd, "registered", note, version, force=force)
            case phases.Deregister(deployment_id=deployment_id):
                await _event(
                    steps, rsd, "deregistered", f"deregistered {version.name} ({deployment_id}) from Restate", version
                )
    if version.phase == before:
        return
    if version.phase == VersionPhase.LATEST:
        await _event(
            steps, rsd, "latest", f"{version.name} is the latest version: Restate routes new invocations to it", version
        )
    elif version.phase == VersionPhase.DRAINING:
        work = version.active_invocations or 0
        await _event(steps, rsd, "draining", f"{version.name} is draining: {work} invocation(s) still need it", version)
    elif version.phase == VersionPhase.DRAINED:
        rest = ", scaled to 0" if scaled else ""
        await _event(steps, rsd, "drained", f"{version.name} drained: no work left for it{rest}", version)


async def _event(steps: Steps, rsd: Obj, event: str, note: str, version: Version, *, force: bool = False) -> None:
    """Best effort: an Event that cannot be written is logged, never the reason a rollout stops."""
    reason = f"Version{event.capitalize()}"
    try:
        await steps.event(
            rsd,
            "Normal",
            reason,
            note,
            "Rollout",
            step=f"event {reason} {version.name}{' (force)' if force else ''}",
            published=lambda: metrics.VERSION_TRANSITIONS.labels(event=event).inc(),
        )
    except errors.OperatorError as failure:
        logger.warning("could not publish %s about %s: %s", reason, version.name, failure)


def pin_note(rollout: Rollout, latest: Version) -> str:
    """What Ready adds while an abort or rollback holds."""
    if rollout.pinned != latest.hash:
        return ""
    return (
        f"; serving {latest.name} instead of the spec's version ({latest.cause}) until the spec asks for "
        "another version; `rollback` to the spec's version resumes it"
    )


async def trim_history(
    steps: Steps, rsd: Obj, rollout: Rollout, limit: int, delete: Callable[[Version], Awaitable[None]]
) -> None:
    """Delete the drained versions beyond `limit` (`delete` removes the mode's objects), and say so."""
    for version in phases.beyond_history(rollout, limit):
        await delete(version)
        rollout.versions.remove(version)
        await _event(steps, rsd, "deleted", f"{version.name} deleted: beyond revisionHistoryLimit", version)
