"""RestateCloudEnvironment: keep the tunnel Deployment and Service applied; Ready when its API token
can be used and every tunnel replica is available. The status shows the environment's URLs."""

from __future__ import annotations

from services import kinds
from services.builders import cloud as build
from services.builders.deployment import TokenSecret
from services.clients.kube import Obj
from services.models import cloud as models
from services.reconcilers.admin import token_problem
from services.reconcilers.engine import Outcome, Reconciler
from services.reconcilers.steps import Steps

NOT_READY_RECHECK_SECONDS = 60.0


async def converge(steps: Steps, rce: Obj) -> Outcome:
    settings = steps.settings
    deployment = await steps.apply(build.tunnel_deployment(rce, settings))
    await steps.apply(build.tunnel_service(rce, settings))
    status = {
        "adminUrl": build.admin_url(rce),
        "ingressUrl": build.ingress_url(rce),
        "tunnelName": rce["metadata"]["uid"],
    }
    secret_ref = rce["spec"]["authentication"]["secret"]
    secret = TokenSecret(
        settings.operator_namespace,
        secret_ref["name"],
        secret_ref["key"],
        f"RestateCloudEnvironment {rce['metadata']['name']}",
    )
    # The Secret is watched: its creation or rotation reconciles again, the re-check is a fallback.
    problem = await steps.run(
        f"check Secret {secret.namespace}/{secret.name}", token_problem, steps.connections, secret
    )
    if problem is not None:
        reason, message = problem
        return Outcome(
            ready=False, reason=reason, message=message, requeue_after=NOT_READY_RECHECK_SECONDS, status=status
        )
    tunnel = models.RestateCloudEnvironmentSpec.model_validate(rce["spec"]).tunnel or models.Tunnel()
    return tunnel_readiness(deployment, tunnel.replicas).model_copy(update={"status": status})


def tunnel_readiness(deployment: Obj, desired: int) -> Outcome:
    """Ready once the Deployment controller saw our spec and every replica is available."""
    status = deployment["status"]
    generation = deployment["metadata"].get("generation")
    available = status.get("availableReplicas", 0)
    if status.get("observedGeneration", 0) < (generation or 0):
        return Outcome(
            ready=False,
            reason="TunnelNotReady",
            message=f"the tunnel Deployment is rolling out generation {generation}",
            requeue_after=NOT_READY_RECHECK_SECONDS,
        )
    if available < desired:
        return Outcome(
            ready=False,
            reason="TunnelNotReady",
            message=f"{available}/{desired} tunnel replicas available",
            requeue_after=NOT_READY_RECHECK_SECONDS,
        )
    return Outcome(ready=True, reason="TunnelReady", message=f"{available}/{desired} tunnel replicas available")


async def finalize(steps: Steps, rce: Obj) -> Outcome:
    """Nothing to undo: the tunnel objects are owned by the resource and garbage-collected with it."""
    return Outcome(ready=True, reason="Deleted", message="tunnel objects are garbage-collected")


RECONCILER = Reconciler(kind=kinds.CLOUD_ENVIRONMENT, converge=converge, finalize=finalize)
