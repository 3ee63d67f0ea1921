"""Build the operator image and run it the way the Helm chart does, for tests.

Every container runs on the host network (the engine here has no bridge), as the image's non-root
user, with a read-only root filesystem, no capabilities and no-new-privileges: if the image needed
anything more, these tests are where it shows. The Ryuk reaper is off (its image cannot be pulled
without a registry); `run_operator_container` removes what it starts, and
`remove_session_containers` sweeps up after a test run that was killed mid-way.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient
from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID

from devstack import procs

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tools" / "image" / "build.sh"
IMAGE = "restate-operator.local/restate-operator:dev"
SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

testcontainers_config.ryuk_disabled = True


def build_image(*, timeout: float = 840.0) -> str:
    """Build IMAGE with the script `make image` runs; a cold run starts Docker and debootstraps the base.

    Fails (never skips) when it cannot: CI must not pass without having run the image.
    """
    result = subprocess.run([str(BUILD_SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return IMAGE


def inspect_image(image: str = IMAGE) -> dict[str, Any]:
    """`docker image inspect`, as a dict."""
    client = DockerClient()
    try:
        attrs: dict[str, Any] = client.client.images.get(image).attrs
        return attrs
    finally:
        client.client.close()


def write_kubeconfig(directory: Path, server: str, *, token: str = "image-test") -> Path:
    """A kubeconfig for `server` with a bearer token and no embedded certificates, readable by uid 10001.

    Embedded certificate data (`certificate-authority-data`, `client-*-data`) would make
    kubernetes-asyncio write temporary files, which a read-only root filesystem refuses unless /tmp
    is a tmpfs (see `run_operator_container(tmpfs=...)`). In-cluster configuration writes nothing.
    """
    path = directory / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: test, cluster: {{server: "{server}", insecure-skip-tls-verify: true}}}}]
users: [{{name: test, user: {{token: {token}}}}}]
contexts: [{{name: test, context: {{cluster: test, user: test}}}}]
current-context: test
"""
    )
    path.chmod(0o644)
    return path


@contextmanager
def run_operator_container(
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    volumes: Mapping[Path | str, str] | None = None,
    *,
    image: str = IMAGE,
    tmpfs: Sequence[str] = (),
) -> Iterator[DockerContainer]:
    """Run `command` in the image like the chart runs it; the container is removed on exit.

    `volumes` maps host paths to container paths, all mounted read-only (a ServiceAccount token
    directory at SERVICEACCOUNT_DIR, a kubeconfig file, ...); they must be readable by uid 10001.
    `tmpfs` lists container paths that get a writable tmpfs (the chart's emptyDir volumes).
    """
    container = DockerContainer(
        image,
        network_mode="host",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
    ).with_command(list(command))
    for key, value in (env or {}).items():
        container.with_env(key, value)
    for host, target in (volumes or {}).items():
        container.with_volume_mapping(str(host), target, mode="ro")
    for path in tmpfs:
        container.with_tmpfs_mount(path)
    try:
        container.start()
        yield container
    finally:
        container.stop()


def logs(container: DockerContainer) -> str:
    """The container's stdout and stderr, for failure messages."""
    stdout, stderr = container.get_logs()
    return (stdout + stderr).decode(errors="replace")


@dataclass
class _Running:
    """A started container, watched by `procs.wait_until` as it watches a process."""

    container: DockerContainer
    name: str = "the container"

    def alive(self) -> bool:
        self.container.reload()
        return self.container.status in ("created", "running")

    def log_tail(self) -> str:
        return logs(self.container)


def wait_for_http(
    container: DockerContainer,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> httpx.Response:
    """GET `url` until it answers at all (any status); fail early, with the logs, if the container exits."""
    return procs.wait_until(
        f"{url} to answer",
        lambda: httpx.get(url, headers=headers, timeout=2.0),
        timeout=timeout,
        interval=0.2,
        process=_Running(container),
    )


def exec_in(container: DockerContainer, *command: str, user: str | None = None) -> tuple[int, str]:
    """Run `command` in the running container (as its own user unless `user` is given): exit code, output."""
    exit_code, output = container.get_wrapped_container().exec_run(list(command), user=user or "")
    return int(exit_code), output.decode(errors="replace")


def remove_session_containers() -> None:
    """Remove any container this test session started and did not remove (the reaper's job, done by hand)."""
    client = DockerClient()
    try:
        for container in client.client.containers.list(all=True, filters={"label": f"{LABEL_SESSION_ID}={SESSION_ID}"}):
            container.remove(force=True)
    finally:
        client.client.close()
