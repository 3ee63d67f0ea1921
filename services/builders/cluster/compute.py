"""The Restate nodes: ServiceAccount, config, Services, PodDisruptionBudget and the StatefulSet.

Pure: a RestateCluster (and settings) in, desired objects out. `statefulset` raises
`errors.InvalidSpec` for specs that cannot be applied (volume name or mount path collisions), with a
message that says which names collide.

The pod template is upstream's, field for field (tests/unit/services/test_cluster_builders.py
compares it with what upstream's operator wrote): a template that differs by one annotation rolls
every Restate node when the operator takes a cluster over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from services import errors
from services.builders.cluster import identity
from services.builders.cluster.common import (
    LEGACY_TEMPLATE_ANNOTATIONS,
    PORTS,
    Obj,
    config_hash,
    cr_annotations,
    mandatory_labels,
    metadata,
    namespace_of,
)
from services.builders.common import RESTRICTED_POD_SECURITY
from services.models import cluster as models
from services.settings import Settings

STORAGE = "storage"
SIGNING_SECRET_VOLUME = "request-signing-private-key-secret"
SIGNING_PROVIDER_VOLUME = "request-signing-private-key-secret-provider"
SIGNING_PROVIDER_CLASS = "request-signing-key-v1"
H2C = "kubernetes.io/h2c"
# Upstream's pod security context: ours minus runAsNonRoot, which runAsUser 1000 makes redundant
# and which would change (and so roll) every pod template taken over from upstream.
POD_SECURITY: Obj = {k: v for k, v in RESTRICTED_POD_SECURITY.items() if k != "runAsNonRoot"}


def namespace(rsc: Obj) -> Obj:
    meta = metadata(rsc, namespace_of(rsc), namespaced=False)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def service_account(rsc: Obj) -> Obj:
    extra = ((rsc["spec"].get("security") or {}).get("serviceAccountAnnotations")) or {}
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(rsc, "restate", annotations=extra)}


def config_map_name(rsc: Obj) -> str:
    return f"restate-config-{config_hash(rsc['spec'].get('config') or '')}"


def config_map(rsc: Obj) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(rsc, config_map_name(rsc)),
        "data": {"config.toml": rsc["spec"].get("config") or ""},
    }


def service(rsc: Obj) -> Obj:
    extra = ((rsc["spec"].get("security") or {}).get("serviceAnnotations")) or {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(rsc, "restate", annotations=extra),
        "spec": {
            "selector": mandatory_labels(rsc),
            "ports": [
                {"name": name, "port": port, "targetPort": port, "protocol": "TCP", "appProtocol": H2C}
                for name, port in PORTS.items()
            ],
        },
    }


def headless_service(rsc: Obj) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(rsc, "restate-cluster"),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": mandatory_labels(rsc),
            "ports": [{"name": "node", "port": 5122, "targetPort": 5122, "protocol": "TCP", "appProtocol": H2C}],
        },
    }


def pod_disruption_budget(rsc: Obj) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(rsc, "restate"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": mandatory_labels(rsc)}},
    }


def secret_provider_class(rsc: Obj) -> Obj | None:
    key = ((rsc["spec"].get("security") or {}).get("requestSigningPrivateKey")) or {}
    provider = key.get("secretProvider")
    if not provider:
        return None
    spec: Obj = {"provider": provider.get("provider") or ""}
    if provider.get("parameters"):
        spec["parameters"] = provider["parameters"]
    return {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": metadata(rsc, SIGNING_PROVIDER_CLASS),
        "spec": spec,
    }


def _signing(rsc: Obj, missing_crds: frozenset[str]) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """(volumes, mounts, env) for the request-signing key; none from a provider whose CRD is not served
    (as upstream: the pods would never start with a volume no CSI driver can mount)."""
    key = ((rsc["spec"].get("security") or {}).get("requestSigningPrivateKey")) or {}
    if secret := key.get("secret"):
        volume = {
            "name": SIGNING_SECRET_VOLUME,
            # The mode on the item, as upstream (defaultMode would change the pod template).
            "secret": {
                "secretName": secret["secretName"],
                "items": [{"key": secret["key"], "path": "private.pem", "mode": 0o400}],
            },
        }
        path = "/signing-key/private.pem"
        name = SIGNING_SECRET_VOLUME
    elif (provider := key.get("secretProvider")) and "SecretProviderClass" not in missing_crds:
        volume = {
            "name": SIGNING_PROVIDER_VOLUME,
            "csi": {
                "driver": "secrets-store.csi.k8s.io",
                "readOnly": True,
                "volumeAttributes": {"secretProviderClass": SIGNING_PROVIDER_CLASS},
            },
        }
        path = f"/signing-key/{provider['path'].lstrip('/')}"
        name = SIGNING_PROVIDER_VOLUME
    else:
        return [], [], []
    mount = {"name": name, "mountPath": "/signing-key", "readOnly": True}
    env = {"name": "RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE", "value": path}
    return [volume], [mount], [env]


def _trusted_cas(rsc: Obj, settings: Settings) -> tuple[list[Obj], list[Obj], list[Obj], list[Obj], str | None]:
    """(volumes, restate mounts, env, init containers, reference hash) for extra CA certificates."""
    cas = ((rsc["spec"].get("security") or {}).get("trustedCaCerts")) or []
    if not cas:
        return [], [], [], [], None
    volumes: list[Obj] = [
        {
            "name": f"trusted-ca-{i}",
            "secret": {"secretName": ca["secretName"], "items": [{"key": ca["key"], "path": "ca.pem", "mode": 0o444}]},
        }
        for i, ca in enumerate(cas)
    ]
    volumes.append({"name": "combined-ca-certs", "emptyDir": {}})
    sources = " ".join(f"/trusted-ca-{i}/ca.pem" for i in range(len(cas)))
    init = {
        "name": "combine-ca-certs",
        "image": settings.canary_image,
        "command": [
            "sh",
            "-c",
            f"cat /etc/ssl/certs/ca-certificates.crt {sources} > /combined-certs/ca-certificates.crt",
        ],
        "securityContext": {"allowPrivilegeEscalation": False},
        "volumeMounts": [
            *({"name": f"trusted-ca-{i}", "mountPath": f"/trusted-ca-{i}", "readOnly": True} for i in range(len(cas))),
            {"name": "combined-ca-certs", "mountPath": "/combined-certs"},
        ],
    }
    mounts = [{"name": "combined-ca-certs", "mountPath": "/combined-certs", "readOnly": True}]
    env = [{"name": "SSL_CERT_FILE", "value": "/combined-certs/ca-certificates.crt"}]
    reference = hashlib.sha256("".join(f"{ca['secretName']}:{ca['key']}," for ca in cas).encode()).hexdigest()
    return volumes, mounts, env, [init], reference


def _env(rsc: Obj) -> list[Obj]:
    """Downward-API values, operator defaults (a user entry of the same name replaces one), user env."""
    spec = rsc["spec"]
    user = spec["compute"].get("env") or []
    user_names = {e["name"] for e in user}
    defaults = {
        "RESTATE_LOG_FORMAT": "json",
        "RESTATE_CLUSTER_NAME": spec.get("clusterName") or rsc["metadata"]["name"],
        "RESTATE_BASE_DIR": "/restate-data",
        "RUST_BACKTRACE": "1",
        "RUST_LIB_BACKTRACE": "0",
        "RESTATE_CONFIG": "/config/config.toml",
        "RESTATE_ADVERTISED_ADDRESS": "http://$(POD_NAME).restate-cluster:5122",
        "RESTATE_NODE_NAME": "$(POD_NAME)",
    }
    downward = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "POD_ZONE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['topology.kubernetes.io/zone']"}},
        },
        {
            "name": "POD_REGION",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['topology.kubernetes.io/region']"}},
        },
    ]
    return [
        *downward,
        *({"name": k, "value": v} for k, v in defaults.items() if k not in user_names),
        *user,
    ]


def _check_unique(kind: str, values: list[str]) -> None:
    seen, dupes = set(), []
    for value in values:
        if value in seen:
            dupes.append(value)
        seen.add(value)
    if dupes:
        raise errors.InvalidSpec(
            f"spec.compute: {kind} {', '.join(sorted(set(dupes)))} used more than once; rename the extra one(s)"
        )


def statefulset(
    rsc: Obj,
    settings: Settings,
    *,
    replicas: int,
    missing_crds: frozenset[str] = frozenset(),
    legacy_annotations: Mapping[str, str] | None = None,
) -> Obj:
    """The Restate nodes.

    `replicas` is passed in: the reconciler decides whether a scale-down may happen.
    `missing_crds`: third-party kinds the apiserver does not serve; what depends on them is left out.
    `legacy_annotations`: LEGACY_TEMPLATE_ANNOTATIONS found on the current pod template, kept as they
    are. Upstream copies kubectl's last-applied-configuration onto the pod template, so every
    `kubectl apply` (even of replicas) rolls the nodes; we never add it, but keep a value upstream
    wrote, frozen, so that taking over does not roll the nodes either.
    """
    spec, compute = rsc["spec"], rsc["spec"]["compute"]
    storage = spec["storage"]
    sign_volumes, sign_mounts, sign_env = _signing(rsc, missing_crds)
    ca_volumes, ca_mounts, ca_env, ca_init, ca_reference = _trusted_cas(rsc, settings)
    volumes = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "config", "configMap": {"name": config_map_name(rsc)}},
        *sign_volumes,
        *ca_volumes,
        *(compute.get("extraVolumes") or []),
    ]
    mounts = [
        {"name": STORAGE, "mountPath": "/restate-data"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "config", "mountPath": "/config", "readOnly": True},
        *sign_mounts,
        *ca_mounts,
        *(compute.get("extraVolumeMounts") or []),
    ]
    _check_unique("volume name(s)", [STORAGE, *(v["name"] for v in volumes)])
    _check_unique("mount path(s)", [m["mountPath"] for m in mounts])
    container: Obj = {
        "name": "restate",
        "image": compute["image"],
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in PORTS.items()],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 9070}, "initialDelaySeconds": 30},
        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
        "env": [*_env(rsc), *sign_env, *ca_env],
        "volumeMounts": mounts,
    }
    for field in ("imagePullPolicy", "command", "args", "lifecycle", "resources"):
        if compute.get(field) is not None:
            container[field] = compute[field]
    sidecars = [{**c, "restartPolicy": "Always"} for c in compute.get("sidecars") or []]
    pod: Obj = {
        "serviceAccountName": "restate",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": models.Compute.model_validate(compute).termination_grace_period_seconds,
        "securityContext": dict(POD_SECURITY),
        "containers": [container],
        "volumes": volumes,
    }
    if ca_init or sidecars:
        pod["initContainers"] = [*ca_init, *sidecars]
    passthrough = {
        "affinity": "affinity",
        "dnsPolicy": "dnsPolicy",
        "dnsConfig": "dnsConfig",
        "imagePullSecrets": "imagePullSecrets",
        "tolerations": "tolerations",
        "nodeSelector": "nodeSelector",
        "topologySpreadConstraints": "topologySpreadConstraints",
        "priorityClassName": "priorityClassName",
    }
    for source, target in passthrough.items():
        if compute.get(source) is not None:
            pod[target] = compute[source]
    meta = metadata(rsc, "restate")
    internal = identity.pod_annotations(rsc, settings, missing_crds)
    if ca_reference:
        internal["restate.dev/trusted-ca-certs"] = ca_reference
    claim: Obj = {
        "metadata": {"name": STORAGE, "labels": mandatory_labels(rsc)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": str(storage["storageRequestBytes"])}},
        },
    }
    if storage.get("storageClassName"):
        claim["spec"]["storageClassName"] = storage["storageClassName"]
    if storage.get("volumeAttributesClassName"):
        claim["spec"]["volumeAttributesClassName"] = storage["volumeAttributesClassName"]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta,
        "spec": {
            "serviceName": "restate-cluster",
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": mandatory_labels(rsc)},
            "template": {
                "metadata": {
                    # Upstream's: the user's, then the CR's labels and ours (no managed-by: pods are not
                    # children the watcher selects by it).
                    "labels": {
                        **(compute.get("labels") or {}),
                        **(rsc["metadata"].get("labels") or {}),
                        **mandatory_labels(rsc),
                    },
                    "annotations": {
                        **(compute.get("annotations") or {}),
                        **cr_annotations(rsc),
                        **{k: v for k, v in (legacy_annotations or {}).items() if k in LEGACY_TEMPLATE_ANNOTATIONS},
                        **internal,
                    },
                },
                "spec": pod,
            },
            "volumeClaimTemplates": [claim],
        },
    }
