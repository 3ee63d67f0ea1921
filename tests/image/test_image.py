"""The container image: built like `make image`, run like the Helm chart runs it.

Each container runs with a read-only root filesystem, no capabilities and no-new-privileges, so a
process that serves at all has proven it writes nothing to disk and needs no privilege. Kubernetes
is an unreachable `https://127.0.0.1:1`: both processes must come up and answer their probes
before (or without) reaching the API server, which is how they start in a cluster too.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from testcontainers.core.container import DockerContainer

from devstack import procs
from tests.image import containers

# The first test pays for a cold build (Docker install, debootstrap of the base, pip install):
# about 5 minutes on 2 cores, more than the suite's default per-test timeout.
pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]

UNREACHABLE_KUBERNETES = "https://127.0.0.1:1"
KUBECONFIG_IN_CONTAINER = "/etc/restate-operator/kubeconfig"
MAX_IMAGE_BYTES = 200_000_000
DISCOVERY_ACCEPT = ", ".join(f"application/vnd.restate.endpointmanifest.v{v}+json" for v in (1, 2, 3, 4))
RECONCILERS = {"ClusterReconciler", "DeploymentReconciler", "CloudEnvironmentReconciler"}


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return containers.write_kubeconfig(tmp_path_factory.mktemp("image-kube"), UNREACHABLE_KUBERNETES)


@dataclass(frozen=True)
class Services:
    container: DockerContainer
    url: str
    probes_url: str


@pytest.fixture(scope="module")
def services(operator_image: str, kubeconfig: Path) -> Iterator[Services]:
    """`python -m services` as the chart starts it, with its probes answering."""
    port, probes = procs.free_port(), procs.free_port()
    env = {
        "KUBECONFIG": KUBECONFIG_IN_CONTAINER,
        "SERVICES_BIND": f"127.0.0.1:{port}",
        "PROBES_BIND": f"127.0.0.1:{probes}",
    }
    with containers.run_operator_container(
        ["python", "-m", "services"], env, {kubeconfig: KUBECONFIG_IN_CONTAINER}, image=operator_image
    ) as container:
        containers.wait_for_http(container, f"http://127.0.0.1:{probes}/healthz")
        yield Services(container, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{probes}")


def test_image_config_runs_as_numeric_non_root_user_without_healthcheck(operator_image: str) -> None:
    config = containers.inspect_image(operator_image)["Config"]
    assert config["User"] == "10001:10001"
    assert not config.get("Healthcheck")
    assert not config.get("Entrypoint")
    assert config["Cmd"] == ["python", "-m", "services"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "restate-operator"
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.version"] == _project_version()


def test_image_size_is_well_under_200_mb(operator_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    size = int(containers.inspect_image(operator_image)["Size"])
    with capsys.disabled():
        print(f"\n{operator_image}: {size / 1e6:.0f} MB")
    assert size < MAX_IMAGE_BYTES


def test_container_process_is_uid_10001(services: Services) -> None:
    code, status = containers.exec_in(services.container, "cat", "/proc/1/status")
    assert code == 0, status
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    gids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Gid:"))
    assert set(uids) == {"10001"}
    assert set(gids) == {"10001"}
    assert containers.exec_in(services.container, "id", "-u") == (0, "10001\n")


def test_services_probes_and_metrics_answer_before_kubernetes_is_reachable(services: Services) -> None:
    assert httpx.get(f"{services.probes_url}/healthz").status_code == 200
    assert httpx.get(f"{services.probes_url}/readyz").status_code == 200
    metrics = httpx.get(f"{services.probes_url}/metrics")
    assert metrics.status_code == 200
    assert "restate_operator_reconciliations_total" in metrics.text


def test_services_answer_restate_discovery(services: Services) -> None:
    response = httpx.get(f"{services.url}/discover", headers={"accept": DISCOVERY_ACCEPT})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.restate.endpointmanifest")
    names = {service["name"] for service in json.loads(response.content)["services"]}
    assert names >= RECONCILERS


def test_watcher_serves_probes_while_kubernetes_is_unreachable(operator_image: str, kubeconfig: Path) -> None:
    probes = procs.free_port()
    env = {
        "KUBECONFIG": KUBECONFIG_IN_CONTAINER,
        "PROBES_BIND": f"127.0.0.1:{probes}",
        "RESTATE_INGRESS_URL": "http://127.0.0.1:1",
    }
    with containers.run_operator_container(
        ["python", "-m", "watcher"], env, {kubeconfig: KUBECONFIG_IN_CONTAINER}, image=operator_image
    ) as container:
        health = containers.wait_for_http(container, f"http://127.0.0.1:{probes}/healthz")
        assert health.status_code == 200, containers.logs(container)
        # Not ready: no watch has listed anything, and it says so rather than crashing.
        ready = httpx.get(f"http://127.0.0.1:{probes}/readyz")
        assert ready.status_code == 503
        assert ready.json()["pendingWatches"]
        assert "restate_watcher_" in httpx.get(f"http://127.0.0.1:{probes}/metrics").text
        container.reload()
        assert container.status == "running", containers.logs(container)


def test_image_has_no_compiler_pip_or_build_leftovers(services: Services) -> None:
    # As root (still without capabilities) to see into every directory.
    script = (
        "for tool in gcc cc c++ g++ clang make; do command -v $tool && exit 1; done; "
        "for dir in /root/.cache/pip /.cache/pip /tmp/build-ca.crt /src; do [ -e $dir ] && echo $dir && exit 1; done; "
        "find /opt/venv -name __pycache__ | grep . && exit 1; "
        "/opt/venv/bin/python -m pip --version && exit 1; exit 0"
    )
    code, output = containers.exec_in(services.container, "sh", "-c", script, user="0")
    assert code == 0, f"found in the image: {output}"


def test_lock_pins_every_project_dependency_within_its_range() -> None:
    """requirements.lock is what the image installs: a dependency changed without `make lock` fails here."""
    lines = (containers.REPO / "requirements.lock").read_text().splitlines()
    pins = {
        canonicalize_name(name): version
        for name, version in (line.split(" ", 1)[0].split("==") for line in lines if line[:1].isalnum())
    }
    for spec in _project()["dependencies"]:
        requirement = Requirement(spec)
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pinned), f"{requirement.name}=={pinned} violates {spec}: run `make lock`"


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((containers.REPO / "pyproject.toml").read_text())["project"]
    return project


def _project_version() -> str:
    return str(_project()["version"])
