"""Ready reasons of a version whose pods are not all there: upstream's names, so alerts keep matching."""

from __future__ import annotations

import pytest

from services.reconcilers.deployment import not_available_reason


@pytest.mark.parametrize(
    ("rs", "reason"),
    [
        pytest.param({"observed": False, "current": 2, "ready": 2, "available": 2}, "ReplicaSetScaling", id="stale"),
        pytest.param({"observed": True, "current": 1, "ready": 1, "available": 1}, "ReplicaSetScaling", id="scaling"),
        pytest.param({"observed": True, "current": 2, "ready": 1, "available": 1}, "ReplicaSetPodNotReady", id="ready"),
        pytest.param(
            {"observed": True, "current": 2, "ready": 2, "available": 1}, "ReplicaSetPodNotAvailable", id="available"
        ),
    ],
)
def test_not_available_reasons_are_upstreams(rs: dict[str, object], reason: str) -> None:
    assert not_available_reason(rs, 2) == reason
