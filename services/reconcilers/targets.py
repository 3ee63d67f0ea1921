"""Where a RestateDeployment registers, checked cheapest first: does the object it names exist?

A RestateCluster or RestateCloudEnvironment that is missing is said so by name before anything
asks Restate (an admin URL built from a missing cluster only fails as an unreadable DNS error).
The token of a cloud environment is never read here: only its Secret's name travels, and the
admin calls read the value inside their own step (`versions.admin`), so it is never journaled.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.builders import deployment as build
from services.clients.kube import Obj
from services.kinds import RESOURCES
from services.models.deployment import RestateDeploymentSpec
from services.reconcilers.engine import Outcome
from services.reconcilers.steps import Steps

MISSING_RECHECK_SECONDS = 30.0  # the watcher forwards the object's creation sooner


@dataclass(frozen=True)
class Target:
    """The admin API to call, and the cloud environment whose tunnel service URLs go through."""

    admin: build.AdminEndpoint
    environment: Obj | None = None


async def resolve(steps: Steps, rsd: Obj, spec: RestateDeploymentSpec) -> Target | Outcome:
    """The target, or the not-Ready outcome naming the missing object and the fix."""
    register = spec.restate.register_to
    cluster = register.cluster
    if (
        cluster
        and await steps.run(f"find RestateCluster {cluster}", _find, steps, "RestateCluster", cluster, False) is None
    ):
        return _missing(rsd, "RestateCluster", cluster, "cluster", "RestateClusterNotFound")
    environment = None
    if cloud := register.cloud:
        environment = await steps.run(
            f"find RestateCloudEnvironment {cloud}", _find, steps, "RestateCloudEnvironment", cloud, True
        )
        if environment is None:
            return _missing(rsd, "RestateCloudEnvironment", cloud, "cloud", "RestateCloudEnvironmentNotFound")
    return Target(build.admin_endpoint(rsd, steps.settings, environment), environment)


async def _find(steps: Steps, kind: str, name: str, with_spec: bool) -> Obj | None:
    """Identity (and the spec when asked): what the journal keeps of it stays small."""
    found = await (await steps.kube()).get(RESOURCES[kind], name)
    if found is None:
        return None
    meta = found["metadata"]
    return {"metadata": {"name": meta["name"], "uid": meta["uid"]}, **({"spec": found["spec"]} if with_spec else {})}


def _missing(rsd: Obj, kind: str, name: str, field: str, reason: str) -> Outcome:
    meta = rsd["metadata"]
    return Outcome(
        ready=False,
        reason=reason,
        message=(
            f"{kind} {name} not found: RestateDeployment {meta['namespace']}/{meta['name']} registers with it "
            f"(spec.restate.register.{field}); create it, or change the spec to name an existing one"
        ),
        requeue_after=MISSING_RECHECK_SECONDS,
    )
