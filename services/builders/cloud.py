"""What a RestateCloudEnvironment creates: the tunnel client Deployment and Service.

Both live in the operator's namespace, are named `tunnel-<name>`, and are owned by the resource.
The tunnel identifies itself to Restate Cloud by the resource's uid.
"""

from __future__ import annotations

from typing import Any

from services.builders.common import MANAGED_BY, Obj, owner_reference, user_annotations
from services.models.cloud import RestateCloudEnvironment
from services.settings import Settings

TOKEN_PATH = "/restate-bearer-token"
DEFAULT_RESOURCES = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
# Upstream's tunnel pod security, exactly: a pod template that differs from the one upstream wrote
# would restart the tunnel when this operator takes over (so no runAsNonRoot, no capabilities drop;
# runAsUser 1000 already keeps the process off root).
POD_SECURITY: Obj = {
    "runAsUser": 1000,
    "runAsGroup": 3000,
    "fsGroup": 2000,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY: Obj = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}


def tunnel_name(rce: Obj) -> str:
    return f"tunnel-{rce['metadata']['name']}"


def selector_labels(rce: Obj) -> dict[str, str]:
    return {"app.kubernetes.io/name": "restate-cloud-tunnel-client", "app.kubernetes.io/instance": tunnel_name(rce)}


def _labels(rce: Obj) -> dict[str, str]:
    """The resource's labels with the selector labels on top: what upstream puts on the pods too."""
    return {**(rce["metadata"].get("labels") or {}), **selector_labels(rce)}


def _metadata(rce: Obj, settings: Settings) -> Obj:
    return {
        "name": tunnel_name(rce),
        "namespace": settings.operator_namespace,
        # managed-by only on the objects (the watcher selects them by it), not on the pod template.
        "labels": {**_labels(rce), **MANAGED_BY},
        "annotations": user_annotations(rce),
        "ownerReferences": [owner_reference(rce)],
    }


def _env(rce: Obj, spec: RestateCloudEnvironment) -> list[dict[str, str]]:
    tunnel = spec.spec.tunnel
    defaults = {
        "RESTATE_TUNNEL_NAME": rce["metadata"]["uid"],
        "RESTATE_SIGNING_PUBLIC_KEY": spec.spec.signing_public_key,
        "RESTATE_ENVIRONMENT_ID": spec.spec.environment_id,
        "RESTATE_CLOUD_REGION": spec.spec.region,
        "RESTATE_BEARER_TOKEN_FILE": TOKEN_PATH,
        "RESTATE_REMOTE_PROXY": "true" if tunnel and tunnel.remote_proxy else "false",
        "RUST_BACKTRACE": "1",
        "RUST_LIB_BACKTRACE": "0",
        "RUST_LOG": "info",
    }
    # Upstream's order: the defaults the user does not override, then the user's entries as given.
    custom: list[Any] = list((tunnel.env if tunnel else None) or [])
    overridden = {e["name"] for e in custom}
    return [{"name": k, "value": v} for k, v in defaults.items() if k not in overridden] + custom


def _ports(remote_proxy: bool) -> list[tuple[str, int]]:
    """Upstream's order: the proxy ports (if any) first, then health."""
    return ([("ingress", 8080), ("admin", 9070)] if remote_proxy else []) + [("health", 9090)]


def tunnel_deployment(rce: Obj, settings: Settings) -> Obj:
    model = RestateCloudEnvironment.model_validate(rce)
    tunnel = model.spec.tunnel
    auth = model.spec.authentication.secret
    metadata = _metadata(rce, settings)
    container: Obj = {
        "name": "restate-cloud-tunnel-client",
        "image": (tunnel.image if tunnel and tunnel.image else settings.tunnel_client_default_image),
        "env": _env(rce, model),
        "ports": [
            {"name": n, "containerPort": p, "protocol": "TCP"} for n, p in _ports(bool(tunnel and tunnel.remote_proxy))
        ],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 9090}},
        "resources": (tunnel.resources if tunnel and tunnel.resources else DEFAULT_RESOURCES),
        "securityContext": dict(CONTAINER_SECURITY),
        "volumeMounts": [
            {"name": "bearer-token", "mountPath": TOKEN_PATH, "subPath": "bearer-token", "readOnly": True}
        ],
    }
    if tunnel and tunnel.image_pull_policy:
        container["imagePullPolicy"] = tunnel.image_pull_policy
    pod_spec: Obj = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 310,
        "securityContext": dict(POD_SECURITY),
        "containers": [container],
        "volumes": [
            {
                "name": "bearer-token",
                "secret": {"secretName": auth.name, "items": [{"key": auth.key, "path": "bearer-token"}]},
            }
        ],
    }
    if tunnel:
        optional = {
            "affinity": tunnel.affinity,
            "dnsConfig": tunnel.dns_config,
            "dnsPolicy": tunnel.dns_policy,
            "tolerations": tunnel.tolerations,
            "nodeSelector": tunnel.node_selector,
        }
        pod_spec.update({k: v for k, v in optional.items() if v is not None})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": tunnel.replicas if tunnel else 1,
            "selector": {"matchLabels": selector_labels(rce)},
            "template": {
                "metadata": {"labels": _labels(rce), "annotations": metadata["annotations"]},
                "spec": pod_spec,
            },
        },
    }


def tunnel_service(rce: Obj, settings: Settings) -> Obj:
    tunnel = RestateCloudEnvironment.model_validate(rce).spec.tunnel
    ports: list[Obj] = [
        {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}
        for name, port in _ports(bool(tunnel and tunnel.remote_proxy))
    ]
    for port in ports:
        if port["name"] != "health":
            port["appProtocol"] = "kubernetes.io/h2c"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(rce, settings),
        "spec": {"selector": selector_labels(rce), "ports": ports},
    }
