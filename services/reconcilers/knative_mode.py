"""RestateDeployment in Knative mode: a Configuration and a cluster-local Route per tag.

One pass, decide then act (the rollout advances by `phases`, as in ReplicaSet mode):

    check    the template (one container with an h2c… or http1… port), else Degraded, nothing created
    gather   our Configurations (adopting versions the memory does not know) and Restate's drain report
    ensure   the tag's Configuration, then its Route
    desired  Configuration observed, latest Revision Ready, Route Ready, traffic on that Revision, a URL
             (`phases.knative_gate`) ─► phases.next_phase ─► Register the Route URL, Annotate the Configuration;
             the same tag with a new Revision that serves other services ─► Register(force) (upstream never does)
    older    phases.next_phase (Knative scales them itself) ─► Deregister ─► Drained; beyond
             revisionHistoryLimit the Configuration is deleted in the foreground (Route and Revisions with it)
    finish   status.knative, the versions, replica counts from the latest Revision

Guarantees: as in ReplicaSet mode, a version with work in Restate is never deregistered unless
forced, and a superseded tag keeps its Configuration and Route until it is deregistered. When
Knative Serving is not installed, the resource says so (`KnativeNotInstalled`), creates nothing, and
looks again every minute, so installing Knative later needs no operator restart.
"""

from __future__ import annotations

from typing import Any

from services import errors
from services.builders import cloud, knative
from services.builders import deployment as build
from services.builders.common import MANAGED_BY
from services.builders.deployment import AdminEndpoint
from services.clients.kube import Obj
from services.kinds import RESOURCES
from services.models.deployment import KnativeStatus, RestateDeploymentSpec, RestateDeploymentStatus, VersionPhase
from services.reconcilers import phases, versions
from services.reconcilers.engine import Outcome, rfc3339
from services.reconcilers.rollout import (
    DrainReport,
    ReplicaSetView,
    Rollout,
    Version,
    adopt,
    parse_rfc3339,
    to_ask,
)
from services.reconcilers.steps import Steps
from services.reconcilers.targets import Target

CONFIGURATION, ROUTE, REVISION = RESOURCES["Configuration"], RESOURCES["Route"], RESOURCES["Revision"]
REGISTRATION_MANAGER = "restate-operator/deployment-registration"  # upstream's manager for these annotations
NOT_INSTALLED_RECHECK_SECONDS = 60.0
_MANAGED_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())


# --- journaled actions ---


async def configurations(steps: Steps, namespace: str, owner_uid: str) -> dict[str, ReplicaSetView]:
    """name -> view of every Configuration of a version of this resource (a `restate.dev/tag`, our owner
    reference), in the shape adoption reads for ReplicaSets. Knative scales them, so none has replicas
    to restore: an adopted one Restate no longer knows is Drained, any other one drains."""
    listed = await (await steps.kube()).list(CONFIGURATION, namespace, label_selector=_MANAGED_SELECTOR)
    found: dict[str, ReplicaSetView] = {}
    for item in listed["items"]:
        meta = item["metadata"]
        annotations = dict(meta.get("annotations") or {})
        owned = any(ref.get("uid") == owner_uid for ref in meta.get("ownerReferences") or [])
        if not owned or knative.TAG_ANNOTATION not in annotations or meta.get("deletionTimestamp"):
            continue
        found[meta["name"]] = {
            "name": meta["name"],
            "hash": annotations[knative.TAG_ANNOTATION],
            "uid": meta.get("uid", ""),
            "owned": True,
            "replicas": 0,
            "current": 0,
            "ready": 0,
            "available": 0,
            "observed": True,
            "created": parse_rfc3339(meta.get("creationTimestamp")),
            "template": annotations.get(build.TEMPLATE_ANNOTATION),
            "annotations": annotations,
        }
    return found


async def owned_versions(steps: Steps, rsd: Obj) -> dict[str, ReplicaSetView]:
    meta = rsd["metadata"]
    return await steps.run("list Configurations", configurations, steps, meta["namespace"], meta["uid"])


async def annotate(steps: Steps, namespace: str, name: str, deployment_id: str, registered_at: str) -> None:
    patch: Obj = {
        "apiVersion": knative.API_VERSION,
        "kind": "Configuration",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {
                build.DEPLOYMENT_ID_ANNOTATION: deployment_id,
                knative.REGISTERED_AT_ANNOTATION: registered_at,
            },
        },
    }
    await (await steps.kube()).apply(patch, field_manager=REGISTRATION_MANAGER)


async def delete_configuration(steps: Steps, namespace: str, name: str) -> bool:
    """Foreground: the Configuration goes only after its Route and Revisions (and their pods) went."""
    return await (await steps.kube()).delete(CONFIGURATION, name, namespace, propagation="Foreground")


# --- the pass ---


def registered_url(route_url: str, target: Target) -> str:
    """What Restate calls for a tag: its Route, through the cloud tunnel with `register.cloud`."""
    return cloud.tunnel_url(target.environment, route_url) if target.environment is not None else route_url


async def converge(steps: Steps, rsd: Obj, spec: RestateDeploymentSpec, target: Target) -> Outcome:
    knative.validate(rsd)
    admin = target.admin
    ctx, meta = steps.ctx, rsd["metadata"]
    namespace = meta["namespace"]
    collisions: int | None = (rsd.get("status") or {}).get("collisionCount")
    rollout = await versions.load(ctx)
    spec_tag = knative.tag(rsd, collisions)
    tag = rollout.desired_hash(spec_tag)
    pinned = tag != spec_tag
    name = knative.name(rsd, tag)
    try:
        found = await owned_versions(steps, rsd)
    except errors.NotFound:
        return _not_installed()
    existing = found.get(name)
    if pinned and existing is None:
        return versions.target_gone(ctx, rollout, name, "Configuration")
    if existing is None:
        squatter = await steps.get(CONFIGURATION, name, namespace)
        if squatter is not None and not build.controlled_by(squatter, rsd):
            return _taken(rsd, name, collisions)
    elif not pinned and not knative.explicit_tag(rsd) and existing["template"] != build.template_json(rsd):
        return _taken(rsd, name, collisions)

    now = await ctx.time()
    report = await versions.drain_report(steps, admin, to_ask(rollout, found.values(), tag))
    drain_delay = float(spec.restate.drain_delay_seconds)
    adopt(rollout, found.values(), report, drain_delay, now)
    versions.make_desired(rollout, rsd, name, tag, now, pinned=pinned)
    if pinned:  # serve the tag as it is: the spec's template is not its template
        configuration = await steps.get(CONFIGURATION, name, namespace) or {"metadata": {}}
        route = await steps.get(ROUTE, name, namespace) or {}
    else:
        configuration = await steps.apply(knative.configuration(rsd, tag))
        route = await steps.apply(knative.route(rsd, tag, str(configuration["metadata"]["uid"])))
    latest_revision = (configuration.get("status") or {}).get("latestCreatedRevisionName")
    revision = await steps.get(REVISION, latest_revision, namespace) if latest_revision else None
    url: str | None = (route.get("status") or {}).get("url")

    seen = await _observe_desired(steps, rsd, spec, rollout, report, target, configuration, revision, route)
    desired = phases.next_phase(rollout.versions[0], seen)
    latest = await _act(steps, rsd, spec, rollout, desired, admin, registered_url(url, target) if url else None)
    if latest.deployment_id and any(isinstance(a, phases.Register) for a in desired.actions):
        report.registered(latest.deployment_id, latest.services)

    async def act(transition: phases.Transition) -> Version:
        return await _act(steps, rsd, spec, rollout, transition, admin, None)

    next_wakeup = await versions.advance_superseded(
        rollout,
        report,
        act,
        now=now,
        drain_delay=drain_delay,
        autoscaling=lambda _: False,  # spec.autoscaling is refused in Knative mode (CEL)
        replicas=0,
        scales=False,  # Knative scales its Revisions itself
    )

    async def delete(version: Version) -> None:
        await steps.run(f"delete Configuration {version.name}", delete_configuration, steps, namespace, version.name)

    await versions.trim_history(steps, rsd, rollout, spec.revision_history_limit, delete)
    phases.settle(rollout)
    desired_replicas, actual = _replicas(rsd, revision)
    for version in rollout.versions:
        if version is latest:
            version.replicas, version.ready_replicas = desired_replicas, actual
        elif version.phase == VersionPhase.DRAINED:
            version.replicas = version.ready_replicas = 0
    versions.save(ctx, rollout)

    status = RestateDeploymentStatus(
        **versions.rollout_status(rollout, latest),
        replicas=actual,
        desired_replicas=desired_replicas,
        ready_replicas=actual,
        available_replicas=actual,
        unavailable_replicas=max(0, desired_replicas - actual),
        paused=rollout.paused,
        versions=[versions.version_status(v, tag=v.hash) for v in rollout.versions],
        deployment_id=latest.deployment_id,
        collision_count=collisions,
        knative=KnativeStatus(configuration_name=name, route_name=name, url=url, latest_revision=latest_revision),
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    outcome = _outcome(rollout, latest, desired, seen.gate, report, url, status, next_wakeup)
    outcome.wake_on = versions.awaited(rollout.versions, report)
    return outcome


async def _observe_desired(
    steps: Steps,
    rsd: Obj,
    spec: RestateDeploymentSpec,
    rollout: Rollout,
    report: DrainReport,
    target: Target,
    configuration: Obj,
    revision: Obj | None,
    route: Obj,
) -> phases.Desired:
    """The gates; and, when Knative updated a serving version in place, whether its services changed."""
    version = rollout.versions[0]
    gate = phases.knative_gate(version.name, configuration, revision, route)
    revision_name = revision["metadata"]["name"] if revision else None
    changed = False
    in_place = version.revision is not None and revision_name != version.revision
    if gate is None and in_place and phases.serving(version, report):
        url = registered_url(route["status"]["url"], target)
        discovered = await steps.run(
            f"discover {version.name} ({revision_name})",
            versions.discover,
            steps.connections,
            target.admin,
            url,
            spec.restate.use_http11,
        )
        changed = discovered != version.discovery
    return phases.Desired(
        report=report,
        gate=gate,
        paused=rollout.paused,
        held=spec.restate.registration_policy == "Held" and rollout.promoted != version.hash,
        revision=revision_name,
        services_changed=changed,
    )


async def _act(
    steps: Steps,
    rsd: Obj,
    spec: RestateDeploymentSpec,
    rollout: Rollout,
    transition: phases.Transition,
    admin: AdminEndpoint,
    url: str | None,
) -> Version:
    version, namespace = transition.version, rsd["metadata"]["namespace"]
    for action in transition.actions:
        match action:
            case phases.Register(force=force) if url:
                await versions.register_version(
                    steps, version, admin, url, force=force, use_http_11=spec.restate.use_http11
                )
            case phases.Annotate():
                registered_at = rfc3339(version.registered_at or await steps.ctx.time())
                deployment_id = version.deployment_id or ""
                await steps.run(
                    f"annotate {version.name}", annotate, steps, namespace, version.name, deployment_id, registered_at
                )
            case phases.Deregister(deployment_id=deployment_id):
                await versions.deregister_version(steps, admin, version.name, deployment_id)
            case _:
                raise errors.InvalidSpec(f"{action} has no meaning in Knative mode (a bug: please report it)")
    previous = rollout.version(version.hash)
    await versions.announce(steps, rsd, previous.phase if previous else None, transition, scaled=False)
    return versions.keep(rollout, version)


def _replicas(rsd: Obj, revision: Obj | None) -> tuple[int, int]:
    """(desired, actual) pods of the latest Revision, as it reports them (upstream's counts)."""
    status = (revision or {}).get("status") or {}
    desired = status.get("desiredReplicas")
    return int(desired if desired is not None else knative.initial_scale(rsd)), int(status.get("actualReplicas") or 0)


def _outcome(
    rollout: Rollout,
    latest: Version,
    desired: phases.Transition,
    gate: phases.Blocked | None,
    report: DrainReport,
    url: str | None,
    status: dict[str, Any],
    next_wakeup: float | None,
) -> Outcome:
    """Ready means Restate routes new invocations to the tag's Route, and that Route serves its latest Revision."""
    blocked = desired.blocked or gate  # a serving tag updated in place is not Ready until its new Revision is
    if blocked is not None:
        return Outcome(
            ready=False,
            reason=blocked.reason,
            message=blocked.message,
            requeue_after=versions.min_of(blocked.recheck_after, next_wakeup),
            status=status,
        )
    message = f"{latest.name} is the latest version in Restate ({latest.deployment_id}), served at {url}"
    message += versions.pin_note(rollout, latest)
    for version in rollout.versions:
        if version is not latest and version.phase == VersionPhase.DRAINING:
            kept_for = report.routes(version.deployment_id or "")
            message += (
                f"; {version.name} stays: it is still the latest deployment of {', '.join(kept_for)}"
                if kept_for
                else f"; draining {version.name}"
            )
    return Outcome(ready=True, reason="Deployed", message=message, requeue_after=next_wakeup, status=status)


def _not_installed() -> Outcome:
    return Outcome(
        ready=False,
        reason="KnativeNotInstalled",
        message=(
            "Knative Serving is not installed in this cluster (serving.knative.dev/v1 Configurations are not "
            "served), so nothing was created: install Knative Serving (its CRDs and controller), and this "
            f"RestateDeployment proceeds by itself within {NOT_INSTALLED_RECHECK_SECONDS:.0f} s"
        ),
        requeue_after=NOT_INSTALLED_RECHECK_SECONDS,
    )


def _taken(rsd: Obj, name: str, collisions: int | None) -> Outcome:
    """The tag's name is held by a Configuration that is not this template's: a hash moves on to the
    next name, an explicit tag cannot."""
    if knative.explicit_tag(rsd):
        raise errors.InvalidSpec(
            f"spec.knative.tag: Configuration {rsd['metadata']['namespace']}/{name} exists and is not this "
            "RestateDeployment's; choose another tag, or delete that Configuration",
            reason=knative.INVALID,
        )
    return Outcome(
        ready=False,
        reason="HashCollision",
        message=f"Configuration {name} exists with another template; trying the next name",
        requeue_after=1.0,
        status={"collisionCount": (collisions or 0) + 1},
    )
