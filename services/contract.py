"""The contract between the watcher and the reconcilers: service names, keys and the request.

The watcher POSTs a `ReconcileRequest` to `reconcile_path(kind, key)` on the bootstrap Restate's
ingress; Restate invokes that resource's reconciler, a virtual object keyed by `object_key`. Both
sides import this module and nothing else of each other, so it stays small and free of the Restate
SDK and of the Kubernetes client: a change here is a change of the wire contract, and an operator
upgrade must keep old requests readable (add optional fields only).
"""

from __future__ import annotations

import urllib.parse
from typing import Literal

from pydantic import BaseModel, Field

Reason = Literal["spec", "child", "resync", "wakeup", "work", "manual"]
"""Why a reconcile was asked for: the watcher sends spec, child and resync; wakeup is a reconciler's
own delayed self-send; work is `InvocationWatch` saying the invocations a draining version waited
for have finished; manual is anyone else (a person with curl, a command handler)."""


class ReconcileRequest(BaseModel):
    """Why a reconcile was asked for. Identity is the object key; the state is always re-read."""

    reason: Reason = Field(default="manual", description="spec, child, resync, wakeup, work or manual (forced).")
    trigger: str | None = Field(default=None, description="What the watcher saw, e.g. Deployment/ns/name@123.")
    wakeup: str | None = Field(default=None, description="Token of a scheduled wake-up (internal).")


def service_name(kind: str) -> str:
    """`ClusterReconciler` for RestateCluster, ...: Restate reserves service names starting with "restate"."""
    return f"{kind.removeprefix('Restate')}Reconciler"


def object_key(namespace: str | None, name: str) -> str:
    """`name` for cluster-scoped resources, `namespace/name` for namespaced ones."""
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str | None, str]:
    namespace, _, name = key.rpartition("/")
    return namespace or None, name


def reconcile_path(kind: str, key: str) -> str:
    """The ingress path of a one-way reconcile request for one resource."""
    return f"/{service_name(kind)}/{urllib.parse.quote(key, safe='')}/reconcile/send"
