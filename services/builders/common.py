"""Metadata every child object shares: owner references and the labels the watcher selects on."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
MANAGED_BY = {"app.kubernetes.io/managed-by": "restate-operator"}
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


# Pods the operator runs itself: non-root with fixed ids, default seccomp.
RESTRICTED_POD_SECURITY: Obj = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 3000,
    "fsGroup": 2000,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}


def owner_reference(owner: Obj) -> Obj:
    """A controller owner reference: children are garbage-collected with their owner."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def user_annotations(owner: Obj) -> dict[str, str]:
    """The owner's annotations minus kubectl's bookkeeping, which must not spread to children."""
    annotations = dict(owner["metadata"].get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    return annotations
