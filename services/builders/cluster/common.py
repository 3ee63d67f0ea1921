"""Names, labels and metadata every RestateCluster child shares."""

from __future__ import annotations

import hashlib
from typing import Any

from services.builders.common import LAST_APPLIED, MANAGED_BY, owner_reference, user_annotations

Obj = dict[str, Any]
# Named as upstream names them (the node port keeps its old name "metrics").
PORTS = {"ingress": 8080, "admin": 9070, "metrics": 5122}
# An instruction to the operator, not metadata: it must not spread to children (on the pod
# template it would roll every node at the very moment a scale-down is approved).
ALLOW_SCALE_DOWN = "restate.dev/allow-scale-down"
# On a pod template only when upstream's operator put it there (see compute.statefulset).
LEGACY_TEMPLATE_ANNOTATIONS = (LAST_APPLIED,)


def mandatory_labels(rsc: Obj) -> dict[str, str]:
    """What every child carries and every selector uses."""
    return {"app.kubernetes.io/name": "restate", "app.kubernetes.io/instance": rsc["metadata"]["name"]}


def namespace_of(rsc: Obj) -> str:
    return str(rsc["metadata"]["name"])


def cr_annotations(rsc: Obj) -> dict[str, str]:
    """The CR's annotations that children carry: minus kubectl's bookkeeping and our instructions."""
    return {k: v for k, v in user_annotations(rsc).items() if k != ALLOW_SCALE_DOWN}


def metadata(rsc: Obj, name: str, *, namespaced: bool = True, annotations: dict[str, str] | None = None) -> Obj:
    """CR labels and annotations (see cr_annotations), our labels, and the owner reference."""
    meta: Obj = {
        "name": name,
        "labels": {**(rsc["metadata"].get("labels") or {}), **mandatory_labels(rsc), **MANAGED_BY},
        "annotations": {**cr_annotations(rsc), **(annotations or {})},
        "ownerReferences": [owner_reference(rsc)],
    }
    if namespaced:
        meta["namespace"] = namespace_of(rsc)
    return meta


def config_hash(config: str) -> str:
    """Short content hash naming the ConfigMap, so a config change rolls the pods."""
    digest = hashlib.sha256(config.encode()).digest()
    return format(int.from_bytes(digest[:4], "little"), "x")
