"""The drain report and the idle/retire decision."""

from __future__ import annotations

from services.models.deployment import VersionPhase
from services.reconcilers.rollout import DrainReport, Rollout, Version, idle_decision

ROWS = [
    {"kind": "deployment", "id": "dp_old"},
    {"kind": "deployment", "id": "dp_new"},
    {"kind": "latest", "id": "dp_new", "service": "Greeter"},
    {"kind": "latest", "id": "dp_old", "service": "Legacy"},
    {"kind": "pinned", "id": "dp_old", "n": 2},
    {"kind": "waiting", "id": "dp_new", "service": "Greeter", "n": 3},
    {"kind": "pinned", "n": 9},  # NULL id (absent column): ignored
]


def test_report_counts_pinned_and_waiting_work_per_deployment() -> None:
    report = DrainReport.parse(ROWS)
    assert report.deployments == {"dp_old", "dp_new"}
    assert report.work("dp_old") == 2
    assert report.work("dp_new") == 3
    assert report.routes("dp_old") == ["Legacy"]
    assert report.exists("dp_new")
    assert not report.exists("dp_gone")
    assert not report.exists(None)


def test_a_version_with_work_waits_and_new_work_resets_the_idle_clock() -> None:
    version = Version(name="v1", hash="h1")
    assert idle_decision(version, 1, now=100, drain_delay=30, forced=False) == (False, None)
    assert idle_decision(version, 0, now=110, drain_delay=30, forced=False) == (False, 30)
    assert idle_decision(version, 0, now=130, drain_delay=30, forced=False) == (False, 10)
    assert idle_decision(version, 1, now=135, drain_delay=30, forced=False) == (False, None)
    assert version.idle_since is None
    assert idle_decision(version, 0, now=140, drain_delay=30, forced=False) == (False, 30)
    assert idle_decision(version, 0, now=170, drain_delay=30, forced=False) == (True, 0)


def test_force_retires_even_with_work() -> None:
    assert idle_decision(Version(name="v", hash="h"), 5, now=0, drain_delay=300, forced=True) == (True, None)


def test_rollback_revives_an_older_version_at_the_front() -> None:
    rollout = Rollout()
    v1 = rollout.make_latest("svc-h1", "h1", now=1)
    v2 = rollout.make_latest("svc-h2", "h2", now=2)
    v1.phase, v1.superseded_at, v1.idle_since = VersionPhase.DRAINED, 2, 3
    rollout.force_drain.append("h1")
    revived = rollout.make_latest("svc-h1", "h1", now=3)
    assert revived is v1
    assert [v.hash for v in rollout.versions] == ["h1", "h2"]
    assert (revived.superseded_at, revived.idle_since, rollout.force_drain) == (None, None, [])
    assert rollout.version("h2") is v2
