"""What a RestateDeployment creates, per version, and where it registers.

A version is identified by a hash of everything that changes what Restate would be talking to:
the pod template, the register target cluster, the service path, HTTP/1.1 mode and, with an
in-process tunnel, the Restate Cloud environment's identity (plus the collision count). The hash
is computed exactly as restate-operator 2.8.1 computes it, so a cluster taken over from it keeps
its ReplicaSets, Services and pods: same names, same labels.
Each version gets a ReplicaSet and a ClusterIP Service named `<rsd>-<hash>`, the Service owned by
its ReplicaSet (Kubernetes removes it with the ReplicaSet); one stable Service `<rsd>` (ours
only) selects the latest version's pods.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from services import errors
from services.builders import cloud
from services.builders.common import MANAGED_BY, Obj, owner_reference, user_annotations
from services.settings import Settings

HASH_LABEL = "pod-template-hash"
OWNED_BY = "restate.dev/owned-by"
TEMPLATE_ANNOTATION = "restate.dev/pod-template"
DEPLOYMENT_ID_ANNOTATION = "restate.dev/deployment-id"
REMOVE_AT_ANNOTATION = "restate.dev/remove-version-at"  # written by upstream on idle old versions; we read it
TUNNEL_NAME_ANNOTATION = "restate.dev/tunnel-name"
SERVICE_PORT = 9080
MAX_TEMPLATE_BYTES = 250 * 1024  # under the 256 KiB all of an object's annotations may take
_DIGITS = "456789bcdf"  # upstream's safe_encode_u32: decimal digit d is written as _DIGITS[d]


def template_json(rsd: Obj) -> str:
    """The pod template as upstream serialises it; stored on each ReplicaSet (`restate.dev/pod-template`).

    Compact JSON with keys sorted at every depth and non-ASCII written as-is; `metadata` keeps only
    `annotations` and `labels` (each left out when unset) and is `null` when absent; `spec` is left
    out when absent. The template is hashed as the API server returns it, without defaults added.
    Caveat: a float is written the Python way (`1e+21`), upstream writes `1e21`; pod specs rarely hold one.
    """
    template = rsd["spec"]["template"]
    metadata = template.get("metadata")
    doc: dict[str, Any] = {
        "metadata": None
        if metadata is None
        else {key: metadata[key] for key in ("annotations", "labels") if metadata.get(key) is not None}
    }
    if template.get("spec") is not None:
        doc["spec"] = template["spec"]
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _fnv1a_64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _encode(value: int) -> str:
    """Decimal digits, least significant first, each mapped through `_DIGITS` (no vowels: no words)."""
    encoded = ""
    while True:
        value, digit = divmod(value, 10)
        encoded += _DIGITS[digit]
        if not value:
            return encoded  # 0 gives "4" (upstream: an empty string, which could not name anything)


def version_hash(rsd: Obj, collision_count: int | None = None, in_process: cloud.InProcessTunnel | None = None) -> str:
    """The version's name suffix: upstream's pod-template hash, byte for byte.

    64-bit FNV-1a over the template JSON followed, with no separators, by the register cluster,
    the servicePath, `use_http11` when useHttp11 is true, the in-process tunnel's values, and the
    collision count as 4 big-endian bytes when it is set (0 included); the upper 32 bits are
    encoded by `_encode`.
    """
    restate = rsd["spec"]["restate"]
    data = template_json(rsd).encode()
    if (cluster := restate["register"].get("cluster")) is not None:
        data += str(cluster).encode()
    if (path := restate.get("servicePath")) is not None:
        data += str(path).encode()
    if restate.get("useHttp11") is True:
        data += b"use_http11"
    if in_process is not None:
        data += in_process.hash_input()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "big")
    return _encode(_fnv1a_64(data) >> 32)


def version_name(rsd: Obj, hash_: str) -> str:
    return f"{rsd['metadata']['name']}-{hash_}"


def _match_labels(rsd: Obj, hash_: str) -> dict[str, str]:
    """The version's pods: the resource's selector labels plus the hash (only the hash without a selector)."""
    selector = rsd["spec"].get("selector") or {}
    return {**(selector.get("matchLabels") or {}), HASH_LABEL: hash_}


def _children_labels(name: str) -> dict[str, str]:
    return {**MANAGED_BY, OWNED_BY: name}


def _common_labels(rsd: Obj) -> dict[str, str]:
    return _children_labels(rsd["metadata"]["name"])


def children_selector(name: str) -> str:
    """The labels every child of resource `name` carries (upstream's too): a pass lists its own
    ReplicaSets, not the namespace's, so its cost does not grow with the resources beside it."""
    return ",".join(f"{k}={v}" for k, v in _children_labels(name).items())


def propagated_annotations(rsd: Obj) -> dict[str, str]:
    """The resource's annotations as its children carry them (without kubectl's and the tunnel's)."""
    annotations = user_annotations(rsd)
    annotations.pop(TUNNEL_NAME_ANNOTATION, None)
    return annotations


def with_tunnel_environment(pod_spec: Obj, tunnel_name: str, in_process: cloud.InProcessTunnel) -> Obj:
    """A copy of `pod_spec` whose every container and init container gets the `RESTATE_INPROC_*`
    environment. A container that sets one itself is refused: its pods would hold a tunnel under
    another name than the one registered."""
    injected = in_process.environment(tunnel_name)
    spec = dict(pod_spec)
    for field in ("containers", "initContainers"):
        containers = []
        for container in spec.get(field) or []:
            env = container.get("env") or []
            if not isinstance(env, list):
                raise errors.InvalidSpec(
                    f"container {container.get('name')}: env must be a list", reason=cloud.INVALID_CONFIG
                )
            taken = sorted({str(e.get("name")) for e in env if isinstance(e, dict)} & injected.keys())
            if taken:
                raise errors.InvalidSpec(
                    f"tunnelMode: in-process sets {taken[0]} itself, but container {container.get('name')} "
                    "declares it too; remove it from the pod template",
                    reason=cloud.INVALID_CONFIG,
                )
            containers.append({**container, "env": [*env, *({"name": k, "value": v} for k, v in injected.items())]})
        if field in spec:
            spec[field] = containers
    return spec


def replica_set(rsd: Obj, hash_: str, *, replicas: int, in_process: cloud.InProcessTunnel | None = None) -> Obj:
    """The version's ReplicaSet, as created. It is never applied again: afterwards only its replicas
    and annotations change, so its pod template (and its pods) stay as they were created, whoever
    created them (this operator or upstream's). With an in-process tunnel its pods get the tunnel's
    environment, and the tunnel name they hold is kept on it (`restate.dev/tunnel-name`)."""
    template = rsd["spec"]["template"]
    name = version_name(rsd, hash_)
    pod_spec = template["spec"]
    stored = template_json(rsd)
    if len(stored.encode()) > MAX_TEMPLATE_BYTES:
        raise errors.InvalidSpec(
            f"spec.template is {len(stored.encode()) // 1024} KiB as JSON, but each version's ReplicaSet keeps it "
            f"as its {TEMPLATE_ANNOTATION} annotation (as upstream's), and Kubernetes limits an object's "
            "annotations to 256 KiB: make the template smaller, e.g. move large values into a ConfigMap"
        )
    annotations = {**propagated_annotations(rsd), TEMPLATE_ANNOTATION: stored}
    if in_process is not None:
        pod_spec = with_tunnel_environment(pod_spec, name, in_process)
        annotations[TUNNEL_NAME_ANNOTATION] = name
    template_meta = template.get("metadata") or {}
    pod_labels = {**(template_meta.get("labels") or {}), HASH_LABEL: hash_}
    if cluster := rsd["spec"]["restate"]["register"].get("cluster"):
        pod_labels[f"allow.restate.dev/{cluster}"] = "true"
    selector: Obj = {"matchLabels": _match_labels(rsd, hash_)}
    if expressions := (rsd["spec"].get("selector") or {}).get("matchExpressions"):
        selector["matchExpressions"] = expressions
    spec: Obj = {
        "replicas": replicas,
        "selector": selector,
        "template": {
            "metadata": {
                "labels": pod_labels,
                **({"annotations": a} if (a := template_meta.get("annotations")) else {}),
            },
            "spec": pod_spec,
        },
    }
    if (min_ready := rsd["spec"].get("minReadySeconds")) is not None:
        spec["minReadySeconds"] = min_ready
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": rsd["metadata"]["namespace"],
            "labels": {**pod_labels, **_common_labels(rsd)},
            "annotations": annotations,
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


def _service(rsd: Obj, name: str, hash_: str, owner: Obj) -> Obj:
    """No appProtocol: Restate may talk HTTP/1.1 (useHttp11) or HTTP/2, and claiming h2c for an
    HTTP/1.1 server would mislead meshes and gateways; upstream declares none either."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": rsd["metadata"]["namespace"],
            "labels": {**(rsd["metadata"].get("labels") or {}), **_common_labels(rsd)},
            "annotations": propagated_annotations(rsd),
            "ownerReferences": [owner],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": _match_labels(rsd, hash_),
            "ports": [
                {
                    "name": "restate",
                    "port": SERVICE_PORT,
                    "protocol": "TCP",
                    "targetPort": target_port(rsd["spec"]["template"]["spec"]),
                }
            ],
        },
    }


def version_service(rsd: Obj, hash_: str, replica_set_uid: str) -> Obj:
    """The Service Restate registers: it selects exactly this version's pods and is owned by its
    ReplicaSet (as upstream's), so it goes when the ReplicaSet goes."""
    name = version_name(rsd, hash_)
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": replica_set_uid, "controller": True}
    return _service(rsd, name, hash_, owner)


def stable_service(rsd: Obj, latest_hash: str) -> Obj:
    """`<rsd>`: a Service that always selects the latest version's pods (for plain HTTP callers, dashboards)."""
    return _service(rsd, rsd["metadata"]["name"], latest_hash, owner_reference(rsd))


def controlled_by(obj: Obj, owner: Obj) -> bool:
    """Whether `owner` is `obj`'s controller: only then may the operator write `obj`."""
    uid = owner["metadata"]["uid"]
    return any(ref.get("controller") and ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def label_selector(rsd: Obj, hash_: str) -> str | None:
    """`status.labelSelector` for the scale subresource: the latest version's pods only, as upstream
    renders it (labels sorted, then expressions with sorted distinct values); None for an operator
    Kubernetes does not know."""
    terms = [f"{k}={v}" for k, v in sorted(_match_labels(rsd, hash_).items())]
    for expr in (rsd["spec"].get("selector") or {}).get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], ",".join(sorted(set(expr.get("values") or [])))
        if op == "In":
            terms.append(f"{key} in ({values})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({values})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            return None
    return ",".join(terms)


def cluster_url(rsd: Obj, hash_: str, settings: Settings) -> str:
    """The version's Service inside the cluster (with the servicePath)."""
    path = rsd["spec"]["restate"].get("servicePath") or ""
    return (
        f"http://{version_name(rsd, hash_)}.{rsd['metadata']['namespace']}.svc.{settings.cluster_dns}"
        f":{SERVICE_PORT}{path}"
    )


@dataclass(frozen=True)
class TokenSecret:
    """Where the bearer token for an admin API is kept (only the reference: the value is read when used)."""

    namespace: str
    name: str
    key: str
    owner: str  # who names it, for messages: "RestateCloudEnvironment prod"


@dataclass(frozen=True)
class AdminEndpoint:
    """An admin API to register with, and the Secret holding its token when it needs one."""

    url: str
    token: TokenSecret | None = None


def admin_endpoint(rsd: Obj, settings: Settings, environment: Obj | None = None) -> AdminEndpoint:
    """The admin API to register with; a path prefix (`register.service.path`, or in `url`) is kept.
    `register.cloud` needs its RestateCloudEnvironment (`environment`), whose Secret holds the token."""
    register: dict[str, Any] = rsd["spec"]["restate"]["register"]
    if url := register.get("url"):
        return AdminEndpoint(str(url).rstrip("/"))
    if service := register.get("service"):
        path = (service.get("path") or "").rstrip("/")
        return AdminEndpoint(
            f"http://{service['name']}.{service['namespace']}.svc.{settings.cluster_dns}:{service.get('port', 9070)}"
            f"{path}"
        )
    if cluster := register.get("cluster"):
        return AdminEndpoint(f"http://restate.{cluster}.svc.{settings.cluster_dns}:9070")
    if environment is None:
        raise errors.InvalidSpec(
            f"spec.restate.register.cloud: RestateCloudEnvironment {register.get('cloud')} is needed"
        )
    secret = environment["spec"]["authentication"]["secret"]
    owner = f"RestateCloudEnvironment {environment['metadata']['name']}"
    return AdminEndpoint(
        cloud.admin_url(environment), TokenSecret(settings.operator_namespace, secret["name"], secret["key"], owner)
    )


def in_process_tunnel(rsd: Obj, environment: Obj | None) -> cloud.InProcessTunnel | None:
    """The in-process tunnel's values when the resource asks for one (`tunnelMode: in-process`)."""
    if rsd["spec"]["restate"].get("tunnelMode") != "in-process":
        return None
    if environment is None:
        raise errors.InvalidSpec(
            "tunnelMode: in-process needs spec.restate.register.cloud (a RestateCloudEnvironment)",
            reason=cloud.INVALID_CONFIG,
        )
    return cloud.InProcessTunnel.of(environment)


def service_url(rsd: Obj, hash_: str, settings: Settings, environment: Obj | None = None, tunnel: str = "") -> str:
    """What Restate calls for this version: its Service, or with `register.cloud` the same through
    the environment's tunnel; with an in-process tunnel, the tunnel its pods hold (named `tunnel`,
    the ReplicaSet's `restate.dev/tunnel-name`, else the version's name)."""
    if in_process := in_process_tunnel(rsd, environment):
        return in_process.url(tunnel or version_name(rsd, hash_), rsd["spec"]["restate"].get("servicePath"))
    url = cluster_url(rsd, hash_, settings)
    return cloud.tunnel_url(environment, url) if environment is not None else url
