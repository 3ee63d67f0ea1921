from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.settings import Settings


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPERATOR_NAMESPACE", "ops")
    monkeypatch.setenv("STEP_DELAY_SECONDS", "1.5")
    settings = Settings.from_env()
    assert settings.operator_namespace == "ops"
    assert settings.step_delay_seconds == 1.5
    assert settings.cluster_dns == "cluster.local"


def test_bad_cluster_dns_is_refused_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTER_DNS", "cluster local/")
    with pytest.raises(ValidationError, match="CLUSTER_DNS must be a DNS suffix"):
        Settings.from_env()


def test_retention_defaults_to_an_hour_and_refuses_less_than_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().reconcile_retention_seconds == 3600
    monkeypatch.setenv("RECONCILE_RETENTION_SECONDS", "600")
    assert Settings.from_env().reconcile_retention_seconds == 600
    monkeypatch.setenv("RECONCILE_RETENTION_SECONDS", "5")
    with pytest.raises(ValidationError, match=r"RECONCILE_RETENTION_SECONDS must be at least 60 \(seconds\), not 5"):
        Settings.from_env()
