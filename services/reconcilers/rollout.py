"""Pure pieces of a RestateDeployment rollout: the drain report, each version's memory, and adoption.

What Restate knows about a resource's deployments comes from one SQL query per reconcile (per
admin endpoint), restricted to the deployment ids this resource knows (its memory and its
workloads' annotations): which of them exist and which services route to each; and, for the
versions that may drain (all but the desired one; every one when deleting), how many unfinished
invocations are pinned to each and how many unpinned ones (queued, scheduled, paused before their
first step) wait on services whose latest deployment it is, since those will pin it. Restricting
it keeps a pass's cost independent of how many other resources Restate serves. The invocation
counts scan every invocation Restate keeps (completed ones too, for their retention), so a pass
with no version to drain skips them, and a resource that knows no deployment id yet asks nothing.

The memory lives in the reconciler's Restate state; the ReplicaSets are the fallback. A version
whose ReplicaSet exists but that the memory does not know (created by the upstream operator, or
the state was lost) is adopted from what its ReplicaSet says: deployment id, replicas, and the
removal time upstream stamps on idle old versions.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from pydantic import BaseModel, Field

from services.builders import deployment as build
from services.models.deployment import VersionPhase

KNOWN_QUERY = """
SELECT 'deployment' AS kind, id AS id, '' AS service, 0 AS n FROM sys_deployment WHERE id IN ({ids})
UNION ALL
SELECT 'latest' AS kind, deployment_id AS id, name AS service, 0 AS n
  FROM sys_service WHERE deployment_id IN ({ids})
"""
WORK_QUERY = """
UNION ALL
SELECT 'pinned' AS kind, pinned_deployment_id AS id, '' AS service, count(*) AS n
  FROM sys_invocation_status
  WHERE status != 'completed' AND pinned_deployment_id IN ({work})
  GROUP BY pinned_deployment_id
UNION ALL
SELECT 'waiting' AS kind, s.deployment_id AS id, s.name AS service, count(*) AS n
  FROM sys_invocation_status i JOIN sys_service s ON i.target_service_name = s.name
  WHERE i.status != 'completed' AND i.pinned_deployment_id IS NULL AND s.deployment_id IN ({work})
  GROUP BY s.deployment_id, s.name
"""
# The invocations to wait for (`awaiting`): the newest are likely to finish last, and a version
# with more waits for these first, then for the next ones.
AWAITED_QUERY = """
SELECT id, pinned_deployment_id FROM sys_invocation_status
  WHERE status != 'completed' AND pinned_deployment_id IN ({ids})
  ORDER BY created_at DESC LIMIT {limit}
"""
AWAITED_LIMIT = 20


@dataclass(frozen=True)
class Asked:
    """The deployment ids a pass asks Restate about, and those whose unfinished invocations it counts."""

    ids: frozenset[str]
    work: frozenset[str]


def drain_query(asked: Asked) -> str | None:
    """The drain report's SQL, or None when there is nothing to ask about.

    An id is quoted as a SQL string literal (quotes doubled), so a hand-edited annotation cannot
    change the query; it then matches no deployment, as an unknown id should.
    """
    if not asked.ids:
        return None
    sql = KNOWN_QUERY.format(ids=_literals(asked.ids))
    return sql + WORK_QUERY.format(work=_literals(asked.work)) if asked.work else sql


def awaited_query(report: DrainReport) -> str | None:
    """The SQL for the ids of the invocations pinned to deployments with work, or None when none has."""
    pinned = [deployment for deployment, n in report.pinned.items() if n > 0]
    return AWAITED_QUERY.format(ids=_literals(pinned), limit=AWAITED_LIMIT) if pinned else None


def _literals(ids: Iterable[str]) -> str:
    return ", ".join("'" + i.replace("'", "''") + "'" for i in sorted(ids))


@dataclass
class DrainReport:
    deployments: set[str] = field(default_factory=set)
    latest: dict[str, str] = field(default_factory=dict)  # service -> deployment id it routes to
    pinned: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    awaited: dict[str, list[str]] = field(default_factory=dict)  # deployment id -> invocations pinned to it

    def note_awaited(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row.get("id") and row.get("pinned_deployment_id"):
                self.awaited.setdefault(str(row["pinned_deployment_id"]), []).append(str(row["id"]))

    @classmethod
    def parse(cls, rows: list[dict[str, Any]]) -> DrainReport:
        report = cls()
        for row in rows:
            kind, id_ = row.get("kind"), row.get("id")
            if not id_:
                continue
            n = int(row.get("n") or 0)
            if kind == "deployment":
                report.deployments.add(id_)
            elif kind == "latest":
                report.latest[str(row["service"])] = id_
            elif kind == "pinned":
                report.pinned[id_] = report.pinned.get(id_, 0) + n
            elif kind == "waiting":
                report.waiting[id_] = report.waiting.get(id_, 0) + n
        return report

    def exists(self, deployment_id: str | None) -> bool:
        return deployment_id is not None and deployment_id in self.deployments

    def registered(self, deployment_id: str, services: Iterable[str]) -> None:
        """Account for a registration made after the report was read: the new deployment is the
        latest for each of its services. Without it, the status of the pass that registers would
        still name the old version as latest for them, until some later pass looked again."""
        self.deployments.add(deployment_id)
        for service in services:
            self.latest[service] = deployment_id

    def routes(self, deployment_id: str) -> list[str]:
        """Services whose new invocations go to this deployment."""
        return sorted(s for s, d in self.latest.items() if d == deployment_id)

    def work(self, deployment_id: str) -> int:
        """Invocations that still need this deployment: pinned ones, and those that will pin it."""
        return self.pinned.get(deployment_id, 0) + self.waiting.get(deployment_id, 0)


class Version(BaseModel):
    """The durable memory of one version (newest first in `Rollout.versions`)."""

    name: str
    hash: str
    phase: VersionPhase = VersionPhase.PENDING
    deployment_id: str | None = None
    services: list[str] = Field(default_factory=list)
    created_at: float = 0.0
    registered_at: float | None = None
    superseded_at: float | None = None
    idle_since: float | None = None
    active_invocations: int | None = None
    autoscaled: bool = False
    replicas: int = 0
    ready_replicas: int = 0
    revision: str | None = None  # Knative: the Revision it was registered (or last re-registered) for
    images: list[str] = Field(default_factory=list)  # its containers' images, for `history`
    cause: str | None = None  # what made it the desired version: a spec generation, abort, rollback, adoption
    discovery: str | None = None  # Knative: fingerprint of the services Restate discovered at registration
    template: str | None = None  # its pod template as created (`restate.dev/pod-template`), to re-create it


class Rollout(BaseModel):
    """A RestateDeployment's rollout memory, kept in its reconciler's state under `rollout`."""

    versions: list[Version] = Field(default_factory=list)
    paused: bool = False
    promoted: str | None = None  # hash released by `promote` under registrationPolicy Held
    force_drain: list[str] = Field(default_factory=list)  # hashes to retire without waiting
    pinned: str | None = None  # hash served instead of the spec's, after `abort` or `rollback`...
    pinned_against: str | None = None  # ...until the spec asks for something other than this hash

    def pin(self, hash_: str, spec_hash: str) -> None:
        self.pinned, self.pinned_against = hash_, spec_hash

    def desired_hash(self, spec_hash: str) -> str:
        """The version to serve: the pinned one while the spec still asks for what it asked at pin
        time, else the spec's (a new spec is a new intent, and the pin is forgotten)."""
        if self.pinned and self.pinned_against == spec_hash and self.version(self.pinned) is not None:
            return self.pinned
        self.pinned = self.pinned_against = None
        return spec_hash

    def version(self, hash_: str) -> Version | None:
        return next((v for v in self.versions if v.hash == hash_), None)

    def make_latest(self, name: str, hash_: str, now: float, cause: str = "") -> Version:
        """The desired version, moved to the front (a rollback revives an older entry)."""
        current = self.version(hash_)
        if current is not None and self.versions[0] is not current and cause:
            current.cause = cause
        if current is None:
            current = Version(name=name, hash=hash_, created_at=now, cause=cause or None)
        else:
            self.versions.remove(current)
            current.superseded_at = current.idle_since = None
            if current.hash in self.force_drain:
                self.force_drain.remove(current.hash)
        self.versions.insert(0, current)
        return current


def idle_decision(
    version: Version, work: int, now: float, drain_delay: float, forced: bool
) -> tuple[bool, float | None]:
    """(retire now?, seconds until it may be retired) for a superseded version that Restate reports `work` for.

    Guarantees: a version with work is never retired unless forced; an idle one waits `drain_delay`
    seconds from when it was first seen idle (new work resets the clock).
    """
    if forced:
        return True, None
    if work > 0:
        version.idle_since = None
        return False, None
    if version.idle_since is None:
        version.idle_since = now
    remaining = version.idle_since + drain_delay - now
    return remaining <= 0, max(0.0, remaining)


class ReplicaSetView(TypedDict):
    """What a pass reads from one version's ReplicaSet (journaled, so plain JSON)."""

    name: str
    hash: str
    uid: str
    owned: bool  # an ownerReference names this resource (kind and uid): it is one of our versions
    replicas: int  # spec
    current: int  # status.replicas
    ready: int
    available: int
    observed: bool  # status.observedGeneration caught up with metadata.generation
    created: float | None  # creationTimestamp, seconds since the epoch
    template: str | None  # the restate.dev/pod-template annotation
    annotations: dict[str, str]


def replica_set_view(rs: dict[str, Any], owner_uid: str) -> ReplicaSetView:
    meta, status = rs["metadata"], rs.get("status") or {}
    annotations = dict(meta.get("annotations") or {})
    owned = any(
        ref.get("kind") == "RestateDeployment" and ref.get("uid") == owner_uid
        for ref in meta.get("ownerReferences") or []
    )
    return {
        "name": meta["name"],
        "hash": (meta.get("labels") or {}).get(build.HASH_LABEL) or meta["name"].rsplit("-", 1)[-1],
        "uid": meta.get("uid", ""),
        "owned": owned,
        "replicas": rs["spec"].get("replicas", 0),
        "current": status.get("replicas", 0),
        "ready": status.get("readyReplicas", 0),
        "available": status.get("availableReplicas", 0),
        "observed": status.get("observedGeneration", 0) >= meta.get("generation", 0),
        "created": parse_rfc3339(meta.get("creationTimestamp")),
        "template": annotations.get(build.TEMPLATE_ANNOTATION),
        "annotations": annotations,
    }


def parse_rfc3339(value: Any) -> float | None:
    """Seconds since the epoch, or None when `value` is not an RFC 3339 time with an offset.

    Upstream writes `2026-11-30T00:55:52.220866106+00:00` (nanoseconds, `+00:00`); Kubernetes writes `...Z`.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.strip().upper())
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def to_ask(rollout: Rollout, found: Iterable[ReplicaSetView], desired: str | None) -> Asked:
    """What a pass asks Restate: every deployment id of its versions and of its workloads'
    annotations; the unfinished invocations of those that may drain, all but `desired`'s (None:
    deleting, every version drains) and the drained ones'. An adopted version drains too."""
    known = [(v.deployment_id, v.hash) for v in rollout.versions]
    known += [(rs["annotations"].get(build.DEPLOYMENT_ID_ANNOTATION), rs["hash"]) for rs in found]
    ids: set[str] = set()
    work: set[str] = set()
    for deployment_id, hash_ in known:
        if not deployment_id:
            continue
        ids.add(deployment_id)
        remembered = rollout.version(hash_)
        if hash_ != desired and (remembered is None or remembered.phase != VersionPhase.DRAINED):
            work.add(deployment_id)
    return Asked(frozenset(ids), frozenset(work))


def adopt(
    rollout: Rollout, found: Iterable[ReplicaSetView], report: DrainReport, drain_delay: float, now: float
) -> list[Version]:
    """Add the versions that exist as our ReplicaSets but are missing from memory (oldest last).

    Guarantees: nothing is lost or restarted. A version at zero replicas that Restate does not know is
    Drained; any other one is superseded, and `phases.next_phase` drains it as if we had made it: Restate
    says whether it still has work, its `restate.dev/remove-version-at` (when valid) says when its
    drain delay ends, and it is deregistered before it is scaled down. Its deployment id is kept only
    while Restate knows it. Caveat: it may carry an autoscaler of upstream's (same name), so it is
    marked autoscaled and that autoscaler is removed before any scale-down.
    """
    unknown = [rs for rs in found if rs["owned"] and rollout.version(rs["hash"]) is None]
    adopted = []
    for rs in sorted(unknown, key=lambda rs: -(rs["created"] or 0.0)):
        deployment_id = rs["annotations"].get(build.DEPLOYMENT_ID_ANNOTATION)
        registered = report.exists(deployment_id)
        version = Version(
            name=rs["name"],
            hash=rs["hash"],
            deployment_id=deployment_id if registered else None,
            created_at=rs["created"] or now,
            cause="adopted from its existing objects",
            template=rs["template"],
            replicas=rs["replicas"],
            ready_replicas=rs["ready"],
        )
        if rs["replicas"] == 0 and not registered:
            version.phase = VersionPhase.DRAINED
        else:
            version.phase, version.superseded_at = VersionPhase.DRAINING, now
            version.autoscaled = rs["replicas"] > 0
            remove_at = parse_rfc3339(rs["annotations"].get(build.REMOVE_AT_ANNOTATION))
            if remove_at is not None:
                version.idle_since = remove_at - drain_delay
        rollout.versions.append(version)
        adopted.append(version)
    return adopted
