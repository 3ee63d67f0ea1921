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
