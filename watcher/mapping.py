"""Pure: which watch events are worth forwarding, and to which reconciler key.

Own custom resources are forwarded when something a reconcile reads changed (generation, labels,
annotations, finalizers, deletion), never for status-only updates, which would loop on our own
writes. Children are mapped to their controlling owner of one of our kinds and always forwarded:
their status is what a reconcile waits for. Pods, claims and EndpointSlices, which a reconcile also
waits for but which carry no ownerReference of ours, are mapped by the labels we give them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from services import contract, kinds

Obj = dict[str, Any]
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=restate-operator"
# A RestateCluster's pods and claims live in the namespace named after it and carry its name.
CLUSTER_MEMBER_SELECTOR = "app.kubernetes.io/name=restate,app.kubernetes.io/instance"
# EndpointSlices copy their Service's labels, so a version's slices name the RestateDeployment.
VERSION_ENDPOINTS_SELECTOR = "app.kubernetes.io/managed-by=restate-operator,restate.dev/owned-by"
Reason = Literal["spec", "child", "resync"]  # the watcher's share of `contract.Reason`
STRENGTH: dict[Reason, int] = {"spec": 0, "resync": 1, "child": 2}


@dataclass(frozen=True)
class Target:
    """One reconciler key: the `<Kind>Reconciler` virtual object of one resource."""

    kind: str
    key: str

    @property
    def service(self) -> str:
        return contract.service_name(self.kind)


@dataclass(frozen=True)
class Forward:
    target: Target
    reason: Reason
    trigger: str
    idempotency_key: str


def primary_target(obj: Obj) -> Target:
    meta = obj["metadata"]
    return Target(obj["kind"], contract.object_key(meta.get("namespace"), meta["name"]))


def fingerprint(obj: Obj) -> tuple[Any, ...]:
    """What a reconcile of our own resource depends on, besides its status."""
    meta = obj["metadata"]
    return (
        meta.get("generation"),
        tuple(sorted((meta.get("labels") or {}).items())),
        tuple(sorted((meta.get("annotations") or {}).items())),
        tuple(meta.get("finalizers") or ()),
        meta.get("deletionTimestamp"),
    )


def owner_target(obj: Obj, watched: tuple[str, ...]) -> Target | None:
    """The controlling owner of a child, when it is one of the watched kinds."""
    meta = obj["metadata"]
    for ref in meta.get("ownerReferences") or []:
        owner = kinds.BY_KIND.get(ref["kind"])
        if (
            ref.get("controller")
            and owner
            and ref["kind"] in watched
            and ref["apiVersion"].startswith(f"{owner.group}/")
        ):
            namespace = meta.get("namespace") if owner.namespaced else None
            return Target(ref["kind"], contract.object_key(namespace, ref["name"]))
    return None


def cluster_member_target(obj: Obj) -> Target | None:
    """A RestateCluster's pod or claim (PVC resize, pod start) -> that RestateCluster."""
    meta = obj["metadata"]
    instance = (meta.get("labels") or {}).get("app.kubernetes.io/instance")
    return Target("RestateCluster", instance) if instance and instance == meta.get("namespace") else None


def version_endpoints_target(obj: Obj) -> Target | None:
    """A version Service's EndpointSlice (endpoints became ready) -> its RestateDeployment."""
    meta = obj["metadata"]
    owner = (meta.get("labels") or {}).get("restate.dev/owned-by")
    return Target("RestateDeployment", contract.object_key(meta.get("namespace"), owner)) if owner else None


def knative_target(obj: Obj) -> Target | None:
    """A Knative Configuration, Route or Revision of ours -> the RestateDeployment its
    `restate.dev/deployment` annotation names (Routes and Revisions are owned by a Configuration)."""
    meta = obj["metadata"]
    owner = (meta.get("annotations") or {}).get("restate.dev/deployment")
    return Target("RestateDeployment", contract.object_key(meta.get("namespace"), owner)) if owner else None


LABELLED: dict[str, tuple[str, Callable[[Obj], Target | None]]] = {
    "Pod": (CLUSTER_MEMBER_SELECTOR, cluster_member_target),
    "PersistentVolumeClaim": (CLUSTER_MEMBER_SELECTOR, cluster_member_target),
    "EndpointSlice": (VERSION_ENDPOINTS_SELECTOR, version_endpoints_target),
}


# --- references: a resource that names another is reconciled when that one changes ---

Ref = tuple[str, str]  # kind, name: the objects a resource names (RestateCluster, RestateCloudEnvironment, Secret)


def references(obj: Obj) -> frozenset[Ref]:
    """What a resource of ours names by spec: a RestateDeployment its register target, a
    RestateCloudEnvironment the Secret holding its token (in the operator's namespace)."""
    spec = obj.get("spec") or {}
    if obj["kind"] == "RestateDeployment":
        register = (spec.get("restate") or {}).get("register") or {}
        named = (("RestateCluster", register.get("cluster")), ("RestateCloudEnvironment", register.get("cloud")))
        return frozenset((kind, str(name)) for kind, name in named if name)
    if obj["kind"] == "RestateCloudEnvironment":
        secret = ((spec.get("authentication") or {}).get("secret") or {}).get("name")
        return frozenset({("Secret", str(secret))}) if secret else frozenset()
    return frozenset()


def dependants(refs: dict[Target, frozenset[Ref]], changed: Ref) -> set[Target]:
    """Every resource that names `changed`, directly or through one it names (a Secret -> the
    RestateCloudEnvironments using it -> the RestateDeployments registering through those)."""
    direct = {target for target, named in refs.items() if changed in named}
    through = {
        target
        for target, named in refs.items()
        for owner in direct
        if owner.kind != "RestateDeployment" and (owner.kind, owner.key) in named
    }
    return direct | through


def ready_of(obj: Obj) -> str | None:
    """The Ready condition's status: dependants care when it flips, not about every status write."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c.get("status") for c in conditions if c.get("type") == "Ready"), None)


def trigger_of(obj: Obj) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
    return f"{obj.get('kind', '?')}/{where}@{meta.get('resourceVersion')}"


def event_key(obj: Obj, reason: Reason) -> str:
    """Same event seen twice (or by two replicas) -> same key; any new version -> a new key."""
    meta = obj["metadata"]
    return f"{reason}:{meta.get('uid')}:{meta.get('resourceVersion')}"


def resync_key(now: float, period: float) -> str:
    """Every replica resyncing within one period agrees on the key, so Restate runs it once."""
    return f"resync:{int(now // period)}"


def merge(current: Forward | None, new: Forward) -> Forward:
    """Coalesce two pending forwards for one target: the stronger reason wins, the newest trigger is kept.

    The merged idempotency key is derived from both keys: a merge that contains any event not
    forwarded before must get a fresh key. (Keeping the newer key alone would let an old child
    event, replayed by a relist, swallow a real spec change merged into it.)
    """
    if current is None or current.idempotency_key == new.idempotency_key:
        return new
    reason = current.reason if STRENGTH[current.reason] > STRENGTH[new.reason] else new.reason
    digest = hashlib.sha256(f"{current.idempotency_key}|{new.idempotency_key}".encode()).hexdigest()[:32]
    return Forward(new.target, reason, new.trigger, f"{reason}:merged:{digest}")
