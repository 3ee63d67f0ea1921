"""Pure: which watch events are worth forwarding, and to which reconciler key.

Own custom resources are forwarded when something a reconcile reads changed (generation, labels,
annotations, deletion, our finalizer gone), never for status-only updates nor for our finalizer
appearing, which are our own writes. Children are mapped to their controlling owner of one of our
kinds; Pods, claims and EndpointSlices, which a reconcile also waits for but which carry no
ownerReference of ours, are mapped by the labels we give them. A child's event is forwarded when
it can change what a reconcile decides (`child_news`): the state its controller maintains changed
(at the precision a reconcile reads it), or someone other than us edited it. The echoes of our own
applies, and status steps nobody waits for, are dropped.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

from services import contract, kinds, status
from services.clients import kube

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
    """What a reconcile of our own resource depends on, besides its status. Of the finalizers only
    whether ours is missing: a reconcile reads them for nothing else (it adds ours)."""
    meta = obj["metadata"]
    finalizer = kinds.BY_KIND[obj["kind"]].finalizer
    return (
        meta.get("generation"),
        tuple(sorted((meta.get("labels") or {}).items())),
        tuple(sorted((meta.get("annotations") or {}).items())),
        meta.get("deletionTimestamp"),
        finalizer not in (meta.get("finalizers") or ()),
    )


def primary_news(previous: tuple[Any, ...] | None, now: tuple[Any, ...]) -> bool:
    """Whether a change of our own resource's fingerprint needs a reconcile: any change but our
    finalizer appearing alone, which is the echo of the finalizer a reconcile just added."""
    if previous is None:
        return True
    return previous != now and (*previous[:-1], False) != now


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
    """A version Service's EndpointSlice (endpoints became ready) -> its RestateDeployment. The stable
    Service's (named like the resource) maps to none: no reconcile reads its endpoints."""
    labels = obj["metadata"].get("labels") or {}
    owner = labels.get("restate.dev/owned-by")
    if not owner or labels.get("kubernetes.io/service-name") == owner:
        return None
    return Target("RestateDeployment", contract.object_key(obj["metadata"].get("namespace"), owner))


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


# --- children: which of their events can change what a reconcile decides ---

Write = tuple[str, str, str, str]  # managedFields entry: manager, operation, subresource, time


@dataclass(frozen=True)
class Seen:
    """What the watcher remembers of a child between two of its events."""

    state: Hashable  # what reconciles read of the state its controller maintains
    body: str  # digest of everything else: spec, labels, annotations, owners, deletion
    writes: frozenset[Write]


WINDING_DOWN = "no pods wanted"


def replica_set_state(rs: Obj) -> Hashable:
    """A ReplicaSet as a reconcile decides on it: ready and available pods, and whether all of them
    are (the controller saw the latest spec). Pods created but not ready yet, and the controller
    catching up with a spec nobody waits on, decide nothing; the next pass reports their counts.
    At zero replicas wanted (a drained version, or a spec of zero) its pods going decide nothing:
    the pass that scaled it down already counted it drained, and nothing waits on the last pod."""
    spec, st, meta = rs.get("spec") or {}, rs.get("status") or {}, rs["metadata"]
    wanted = spec.get("replicas", 1)
    if wanted == 0:
        return WINDING_DOWN
    ready, available = st.get("readyReplicas", 0), st.get("availableReplicas", 0)
    settled = st.get("observedGeneration", 0) >= meta.get("generation", 0) and min(ready, available) >= wanted
    return ready, available, settled


def serves(endpoint_slice: Obj) -> bool:
    """A version Service's EndpointSlice as a reconcile decides on it: whether any endpoint is ready
    (registration waits for one). Fewer ready endpoints are not news here: the ReplicaSet's ready
    count says the same of a version that should serve, and nothing waits on a drained one's."""
    return status.ready_endpoints(endpoint_slice) > 0


@dataclass(frozen=True)
class State:
    """How the watcher reads one kind's controller-maintained state."""

    of: Callable[[Obj], Hashable]
    initial: Hashable  # before its controller touched it: first sight of it is not news
    quiet: frozenset[Hashable] = frozenset()  # states whose arrival is not news either


# Other kinds: their whole status, and any event of an object someone other than us wrote is news.
STATES: dict[str, State] = {
    "ReplicaSet": State(replica_set_state, (0, 0, False), frozenset({WINDING_DOWN})),
    "EndpointSlice": State(serves, False, frozenset({False})),
}
CONTROLLER_OWNED = frozenset({"EndpointSlice"})  # written by their controller only: edits are its state
NOISE = frozenset({"resourceVersion", "managedFields", "generation"})


def ours(manager: str) -> bool:
    """Our field managers: the operator's own and its per-purpose ones (`restate-operator/scale`, ...)."""
    return manager == kube.FIELD_MANAGER or manager.startswith(kube.FIELD_MANAGER + "/")


def seen(obj: Obj) -> Seen:
    meta = obj["metadata"]
    state = STATES.get(obj["kind"])
    state_of = state.of if state else lambda o: json.dumps(o.get("status"), sort_keys=True)
    rest = {k: v for k, v in obj.items() if k != "status"}
    rest["metadata"] = {k: v for k, v in meta.items() if k not in NOISE}
    writes = frozenset(
        (m.get("manager", ""), m.get("operation", ""), m.get("subresource", ""), m.get("time", ""))
        for m in meta.get("managedFields") or []
    )
    body = hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return Seen(state_of(obj), body, writes)


def child_news(kind: str, previous: Seen | None, now: Seen) -> str | None:
    """Why a child's ADDED or MODIFIED event needs a reconcile of its owner, or None when it cannot
    change what one decides. (Deletions: `deleted_news`.)

    Guarantees: forwarded are a change of the state reconciles read (`STATES`, else the whole
    status), an edit by anyone but us, and the first sight of an object someone else wrote (what a
    relist shows after a gap). Dropped: our own applies coming back, status steps nobody waits for,
    the pods of a ReplicaSet scaled to zero going, and an EndpointSlice losing ready endpoints.
    Assumptions: the apiserver stamps the writer's managedFields entry with the time of each write
    that changed the object (Apply always; Update when it set a field), in whole seconds.
    Caveats: an edit is taken for our echo only when our entries are the only ones whose stamp moved
    since the last event: a hand edit in the same second as an earlier one of the same manager is
    forwarded (costs a pass, loses nothing); a hand edit that only removes fields stamps nothing and
    is forwarded as long as it is seen as its own event, but one hidden in a watch gap behind a
    write of ours waits for the periodic resync."""
    state = STATES.get(kind)
    quiet = state.quiet if state else frozenset()
    if previous is None:
        if state is not None:
            if now.state != state.initial and now.state not in quiet:
                return "state"
            if kind in CONTROLLER_OWNED:
                return None
        others = sorted({w[0] for w in now.writes if not ours(w[0])})
        return f"first seen, written by {', '.join(others)}" if others or not now.writes else None
    if now.state != previous.state and now.state not in quiet:
        return "state"
    if kind in CONTROLLER_OWNED or now.body == previous.body:
        return None
    moved = {w[0] for w in now.writes - previous.writes}
    if moved and all(ours(m) for m in moved):
        return None  # our own write coming back
    return f"edited by {', '.join(sorted(m for m in moved if not ours(m))) or 'someone (no stamp moved)'}"


def deleted_news(obj: Obj) -> str | None:
    """Why a child's deletion needs a reconcile of its owner, or None when nothing it decides on went.

    An EndpointSlice matters only with ready endpoints (its count drops). A ReplicaSet at zero
    replicas has no pod to serve or drain: it is a drained version, deleted by the pass that trims the
    history. Caveat: the desired version of a resource whose spec asks for zero replicas, deleted by
    hand, is re-created by the periodic resync rather than at once. Any other deletion is news."""
    if obj["kind"] == "EndpointSlice":
        return "deleted with ready endpoints" if status.ready_endpoints(obj) else None
    if obj["kind"] == "ReplicaSet" and (obj.get("spec") or {}).get("replicas", 1) == 0:
        return None
    return "deleted"


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


@functools.lru_cache(maxsize=65536)
def resync_offset(target: Target, period: float) -> float:
    """When in each period `target` resyncs, from a stable hash of it: resources spread evenly over
    the period (500 resources cost a steady trickle of passes, not a burst of 500 at once), and
    every replica picks the same moment for the same resource."""
    digest = hashlib.sha256(f"{target.kind}/{target.key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * period


def resync_slot(now: float, period: float, offset: float) -> int:
    """Which of a resource's resyncs is the latest one due at `now`: every replica agrees, so the
    key built from it makes Restate run each resync once."""
    return int((now - offset) // period)


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
