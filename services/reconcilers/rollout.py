"""Pure pieces of a RestateDeployment rollout: the drain report and each version's memory.

What Restate knows about deployments comes from one SQL query per reconcile (per admin endpoint):
every deployment, which deployment each service currently routes to, how many unfinished
invocations are pinned to each deployment, and how many unpinned ones (queued, scheduled, paused
before their first step) wait on services whose latest deployment it is, since those will pin it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from services.models.deployment import VersionPhase

DRAIN_QUERY = """
SELECT 'deployment' AS kind, id AS id, '' AS service, 0 AS n FROM sys_deployment
UNION ALL
SELECT 'latest' AS kind, deployment_id AS id, name AS service, 0 AS n
  FROM sys_service WHERE deployment_id IS NOT NULL
UNION ALL
SELECT 'pinned' AS kind, pinned_deployment_id AS id, '' AS service, count(*) AS n
  FROM sys_invocation_status
  WHERE status != 'completed' AND pinned_deployment_id IS NOT NULL
  GROUP BY pinned_deployment_id
UNION ALL
SELECT 'waiting' AS kind, s.deployment_id AS id, s.name AS service, count(*) AS n
  FROM sys_invocation_status i JOIN sys_service s ON i.target_service_name = s.name
  WHERE i.status != 'completed' AND i.pinned_deployment_id IS NULL
  GROUP BY s.deployment_id, s.name
"""


@dataclass
class DrainReport:
    deployments: set[str] = field(default_factory=set)
    latest: dict[str, str] = field(default_factory=dict)  # service -> deployment id it routes to
    pinned: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)

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


class Rollout(BaseModel):
    """A RestateDeployment's rollout memory, kept in its reconciler's state under `rollout`."""

    versions: list[Version] = Field(default_factory=list)
    paused: bool = False
    promoted: str | None = None  # hash released by `promote` under registrationPolicy Held
    force_drain: list[str] = Field(default_factory=list)  # hashes to retire without waiting

    def version(self, hash_: str) -> Version | None:
        return next((v for v in self.versions if v.hash == hash_), None)

    def make_latest(self, name: str, hash_: str, now: float) -> Version:
        """The desired version, moved to the front (a rollback revives an older entry)."""
        current = self.version(hash_)
        if current is None:
            current = Version(name=name, hash=hash_, created_at=now)
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
