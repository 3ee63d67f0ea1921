"""Condition helpers: lastTransitionTime moves only when the status does."""

from __future__ import annotations

from services import status


def test_condition_carries_generation_and_tri_state() -> None:
    assert status.condition("Ready", None, "Waiting", "m", 3) == {
        "type": "Ready",
        "status": "Unknown",
        "reason": "Waiting",
        "message": "m",
        "observedGeneration": 3,
    }
    assert status.condition("Ready", True, "Ok", "", None)["status"] == "True"


def test_transition_time_is_kept_while_the_status_is_unchanged() -> None:
    earlier = [{"type": "Ready", "status": "False", "reason": "A", "lastTransitionTime": "t0"}]
    same = status.merge(earlier, [status.condition("Ready", False, "B", "still not", 2)], "t1")
    assert same[0]["lastTransitionTime"] == "t0"
    assert same[0]["reason"] == "B"
    flipped = status.merge(earlier, [status.condition("Ready", True, "Ok", "", 2)], "t1")
    assert flipped[0]["lastTransitionTime"] == "t1"
    new = status.merge(None, [status.condition("Degraded", False, "AsExpected", "", 2)], "t2")
    assert new[0]["lastTransitionTime"] == "t2"
