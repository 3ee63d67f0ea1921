"""What a RestateCloudEnvironment creates (the tunnel client Deployment and Service) and the URLs it stands for.

Both objects live in the operator's namespace, are named `tunnel-<name>`, and are owned by the
resource. The tunnel identifies itself to Restate Cloud by the resource's uid, so a service URL
registered through it names that uid. Every URL format is upstream's, byte for byte: an environment
moved between the operators keeps its registrations.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from services import errors
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


# --- the environment's URLs ---

ADMIN_PORT, INGRESS_PORT, TUNNEL_PORT = 9070, 8080, 9080
INVALID_CONFIG = "InvalidRestateConfig"  # upstream's reason for a spec the cloud cannot serve
_ENVIRONMENT_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_REGION = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*$")  # DNS labels: BYOC regions have several


def unprefixed_id(rce: Obj) -> str:
    """The environment id without `env_` (the resource may spell it either way)."""
    environment_id = str(rce["spec"]["environmentId"])
    return environment_id.removeprefix("env_")


def admin_url(rce: Obj) -> str:
    return f"https://{unprefixed_id(rce)}.env.{rce['spec']['region']}.restate.cloud:{ADMIN_PORT}"


def ingress_url(rce: Obj) -> str:
    return f"https://{unprefixed_id(rce)}.env.{rce['spec']['region']}.restate.cloud:{INGRESS_PORT}"


def _tunnel_base(region: str, environment_id: str, tunnel: str) -> str:
    return f"https://tunnel.{region}.restate.cloud:{TUNNEL_PORT}/{environment_id}/{tunnel}/"


def tunnel_url(rce: Obj, service_url: str) -> str:
    """`service_url` as Restate Cloud reaches it: through the resource's tunnel (named by its uid),
    which forwards to `<scheme>://<host>:<port>/<path>` inside the cluster; query and fragment kept."""
    parts = urllib.parse.urlsplit(service_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    base = _tunnel_base(rce["spec"]["region"], unprefixed_id(rce), rce["metadata"]["uid"])
    url = f"{base}{parts.scheme}/{parts.hostname}/{port}/{parts.path.lstrip('/')}"
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(query=parts.query, fragment=parts.fragment))


@dataclass(frozen=True)
class InProcessTunnel:
    """What a `tunnelMode: in-process` version takes from its environment: injected into its pods
    as `RESTATE_INPROC_*`, folded into its hash, and named in the URL it registers (all three must agree)."""

    environment_id: str  # env_-prefixed, as the SDK's tunnel client expects
    region: str
    signing_public_key: str

    @classmethod
    def of(cls, rce: Obj) -> InProcessTunnel:
        """Checked as strictly as the SDK's tunnel client checks them: a bad value fails here, with
        the resource named, rather than as pods that crash-loop on what was injected."""
        name, spec = rce["metadata"]["name"], rce["spec"]
        unprefixed = unprefixed_id(rce)
        problem = None
        if not _ENVIRONMENT_ID.match(unprefixed):
            problem = f"an environmentId of the form env_<letters and digits>, not {spec['environmentId']}"
        elif not _REGION.match(str(spec["region"])):
            problem = f"a lowercase DNS-style region (letters, digits, '-', '.'), not {spec['region']}"
        elif not str(spec["signingPublicKey"]).startswith("publickeyv1_"):
            problem = "a signingPublicKey starting with publickeyv1_"
        if problem:
            raise errors.InvalidSpec(
                f"tunnelMode: in-process needs RestateCloudEnvironment {name} to have {problem}", reason=INVALID_CONFIG
            )
        return cls(f"env_{unprefixed}", str(spec["region"]), str(spec["signingPublicKey"]))

    def environment(self, tunnel_name: str) -> dict[str, str]:
        return {
            "RESTATE_INPROC_TUNNEL_NAME": tunnel_name,
            "RESTATE_INPROC_ENVIRONMENT_ID": self.environment_id,
            "RESTATE_INPROC_CLOUD_REGION": self.region,
            "RESTATE_INPROC_SIGNING_PUBLIC_KEY": self.signing_public_key,
        }

    def hash_input(self) -> bytes:
        """Each value length-prefixed (8 bytes, big-endian), after a marker: as upstream hashes them."""
        data = b"tunnel_mode=in-process"
        for value in (self.environment_id, self.region, self.signing_public_key):
            encoded = value.encode()
            data += len(encoded).to_bytes(8, "big") + encoded
        return data

    def url(self, tunnel_name: str, service_path: str | None) -> str:
        """The URL a version whose pods hold their own tunnel (named `tunnel_name`) registers.

        The `/http/in-process/9080/` segment is a constant the SDK's tunnel client strips; the
        service path may only append to it (an absolute URL or `..` would change the rendezvous)."""
        base = (
            _tunnel_base(self.region, self.environment_id.removeprefix("env_"), tunnel_name) + "http/in-process/9080/"
        )
        if not service_path:
            return base
        joined = urllib.parse.urljoin(base, service_path.lstrip("/"))
        if not joined.startswith(base):
            raise errors.InvalidSpec(
                f"spec.restate.servicePath {service_path} escapes the tunnel URL: it must be a plain path to append",
                reason=INVALID_CONFIG,
            )
        return joined
