"""What a RestateDeployment creates, per version, and where it registers.

A version is identified by a hash of everything that changes what Restate would be talking to:
the pod template, the register target cluster, the service path, HTTP/1.1 mode, and the
collision count. Each version gets a ReplicaSet and a ClusterIP Service named `<rsd>-<hash>`;
one stable Service `<rsd>` always selects the latest version's pods.
"""

from __future__ import annotations

import json
from typing import Any

from services.builders.common import MANAGED_BY, Obj, owner_reference, user_annotations
from services.settings import Settings

HASH_LABEL = "pod-template-hash"
OWNED_BY = "restate.dev/owned-by"
LATEST_LABEL = "restate.dev/latest"
TEMPLATE_ANNOTATION = "restate.dev/pod-template"
DEPLOYMENT_ID_ANNOTATION = "restate.dev/deployment-id"
SERVICE_PORT = 9080
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes' rand.SafeEncodeString: no vowels, no look-alikes


def template_json(rsd: Obj) -> str:
    """The canonical JSON of the pod template (keys sorted), stored on each ReplicaSet for collision checks."""
    template = rsd["spec"]["template"]
    return json.dumps(
        {"metadata": template.get("metadata"), "spec": template.get("spec")}, sort_keys=True, separators=(",", ":")
    )


def _fnv1a_64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def version_hash(rsd: Obj, collision_count: int = 0) -> str:
    """A short, DNS-safe hash naming the version; changes whenever Restate would see a different endpoint."""
    restate = rsd["spec"]["restate"]
    parts = [template_json(rsd).encode()]
    if cluster := restate["register"].get("cluster"):
        parts.append(b"cluster=" + cluster.encode())
    if path := restate.get("servicePath"):
        parts.append(b"path=" + path.encode())
    if restate.get("useHttp11"):
        parts.append(b"use_http11")
    if collision_count:
        parts.append(collision_count.to_bytes(4, "big"))
    value = _fnv1a_64(b"\x00".join(parts)) >> 32
    encoded = ""
    while value:
        value, digit = divmod(value, len(_SAFE))
        encoded += _SAFE[digit]
    return encoded or _SAFE[0]


def version_name(rsd: Obj, hash_: str) -> str:
    return f"{rsd['metadata']['name']}-{hash_}"


def _selector_labels(rsd: Obj) -> dict[str, str]:
    selector = rsd["spec"].get("selector") or {}
    labels = selector.get("matchLabels") or ((rsd["spec"]["template"].get("metadata") or {}).get("labels") or {})
    return dict(labels)


def _common_labels(rsd: Obj) -> dict[str, str]:
    return {**MANAGED_BY, OWNED_BY: rsd["metadata"]["name"]}


def replica_set(rsd: Obj, hash_: str, *, replicas: int, latest: bool) -> Obj:
    """The version's ReplicaSet. Its pod template never changes once created (the hash names it)."""
    template = rsd["spec"]["template"]
    template_meta = template.get("metadata") or {}
    pod_labels = {**(template_meta.get("labels") or {}), HASH_LABEL: hash_}
    if cluster := rsd["spec"]["restate"]["register"].get("cluster"):
        pod_labels[f"allow.restate.dev/{cluster}"] = "true"
    selector = dict(rsd["spec"].get("selector") or {"matchLabels": _selector_labels(rsd)})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: hash_}
    spec: Obj = {
        "replicas": replicas,
        "selector": selector,
        "template": {
            "metadata": {
                "labels": pod_labels,
                **({"annotations": a} if (a := template_meta.get("annotations")) else {}),
            },
            "spec": template["spec"],
        },
    }
    if (min_ready := rsd["spec"].get("minReadySeconds")) is not None:
        spec["minReadySeconds"] = min_ready
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": version_name(rsd, hash_),
            "namespace": rsd["metadata"]["namespace"],
            "labels": {**pod_labels, **_common_labels(rsd), LATEST_LABEL: "true" if latest else "false"},
            "annotations": {**user_annotations(rsd), TEMPLATE_ANNOTATION: template_json(rsd)},
            "ownerReferences": [owner_reference(rsd)],
        },
        "spec": spec,
    }


def version_autoscaler(rsd: Obj, hash_: str) -> Obj | None:
    """The HorizontalPodAutoscaler of a draining version (`spec.autoscaling`), or None when not configured.

    Its target is forced to the version's ReplicaSet and minReplicas to at least 1, so a draining
    version's pods scale with their remaining load but never to zero while work is pinned to them.
    """
    template = rsd["spec"].get("autoscaling")
    if not isinstance(template, dict):
        return None
    name = version_name(rsd, hash_)
    spec = {**template, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name}}
    spec["minReplicas"] = max(1, int(spec.get("minReplicas") or 1))
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": name,
            "namespace": rsd["metadata"]["namespace"],
            "labels": _common_labels(rsd),
            "ownerReferences": [owner_reference(rsd)],
        },
        "spec": spec,
    }


def target_port(pod_spec: Obj) -> int | str:
    """The port Restate talks to: a container port named `restate`, else the first declared port, else 9080."""
    ports = [p for c in pod_spec.get("containers") or [] for p in c.get("ports") or []]
    for port in ports:
        if port.get("name") == "restate":
            return int(port["containerPort"])
    return int(ports[0]["containerPort"]) if ports else SERVICE_PORT


def _service(rsd: Obj, name: str, hash_: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": rsd["metadata"]["namespace"],
            "labels": {**(rsd["metadata"].get("labels") or {}), **_common_labels(rsd)},
            "annotations": user_annotations(rsd),
            "ownerReferences": [owner_reference(rsd)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {**_selector_labels(rsd), HASH_LABEL: hash_},
            "ports": [
                {
                    "name": "restate",
                    "port": SERVICE_PORT,
                    "protocol": "TCP",
                    "targetPort": target_port(rsd["spec"]["template"]["spec"]),
                    "appProtocol": "kubernetes.io/h2c",
                }
            ],
        },
    }


def version_service(rsd: Obj, hash_: str) -> Obj:
    """The Service Restate registers: it selects exactly this version's pods."""
    return _service(rsd, version_name(rsd, hash_), hash_)


def stable_service(rsd: Obj, latest_hash: str) -> Obj:
    """`<rsd>`: a Service that always selects the latest version's pods (for plain HTTP callers, dashboards)."""
    return _service(rsd, rsd["metadata"]["name"], latest_hash)


def label_selector(rsd: Obj, hash_: str) -> str:
    """`status.labelSelector` for the scale subresource: the latest version's pods only."""
    selector = rsd["spec"].get("selector") or {"matchLabels": _selector_labels(rsd)}
    terms = [f"{k}={v}" for k, v in sorted({**(selector.get("matchLabels") or {}), HASH_LABEL: hash_}.items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def service_url(rsd: Obj, hash_: str, settings: Settings) -> str:
    """What Restate calls for this version."""
    path = rsd["spec"]["restate"].get("servicePath") or ""
    return (
        f"http://{version_name(rsd, hash_)}.{rsd['metadata']['namespace']}.svc.{settings.cluster_dns}"
        f":{SERVICE_PORT}{path}"
    )


class UnsupportedTarget(ValueError):
    """A register target this operator cannot use yet."""


def admin_url(rsd: Obj, settings: Settings) -> str:
    """The admin API to register with; a path prefix (`register.service.path`, or in `url`) is kept."""
    register: dict[str, Any] = rsd["spec"]["restate"]["register"]
    if url := register.get("url"):
        return str(url).rstrip("/")
    if service := register.get("service"):
        path = (service.get("path") or "").rstrip("/")
        return (
            f"http://{service['name']}.{service['namespace']}.svc.{settings.cluster_dns}:{service.get('port', 9070)}"
            f"{path}"
        )
    if cluster := register.get("cluster"):
        return f"http://restate.{cluster}.svc.{settings.cluster_dns}:9070"
    raise UnsupportedTarget("register.cloud is not supported yet by this operator; use cluster, service or url")
