"""Fixtures of the chart tests: helm with a home of its own, and a namespace on the stack."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from devstack import tools
from devstack.stack import Stack
from tests.chart.helm import Helm


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Helm's own cache/config/data in a temp dir: the tests never touch ~/.config/helm."""
    home = tmp_path_factory.mktemp("helm-home")
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


@pytest.fixture(scope="module")
def helm(helm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tools.control_plane_bin_dir() / "helm", helm_env, tmp_path_factory.mktemp("values"))


@pytest.fixture
def release_ns(stack: Stack) -> Iterator[str]:
    name = f"chart-{uuid.uuid4().hex[:8]}"
    stack.control_plane.kubectl("create", "namespace", name)
    yield name
    stack.control_plane.kubectl("delete", "namespace", name, "--wait=false")
