"""The image as the operator: both processes in containers against the real local stack.

The chart is installed with no operator pods of its own (replicas 0, an external Restate: the
stack's restate-server), so its ServiceAccounts and RBAC exist; each container gets its
ServiceAccount's token mounted where in-cluster configuration looks, exactly as in a pod. The
containers run on the host network, non-root, on a read-only root filesystem, with no
capabilities. Proven: probes answer, the services register themselves, and a RestateDeployment
reaches Ready and serves through them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack import procs
from devstack.chart import NAMESPACE, RELEASE, ChartInstall
from devstack.images import VERSIONED_IMAGE
from devstack.stack import Stack
from tests.helpers import apply, condition, get
from tests.image import containers

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartInstall]:
    stack = Stack(Path(tmp_path_factory.mktemp("image-stack")))
    stack.start()
    try:
        installed = ChartInstall(stack)
        installed.install(
            "services.replicaCount=0",
            "watcher.replicaCount=0",
            "bootstrap.enabled=false",
            f"restate.adminUrl={stack.restate.admin_url}",
            f"restate.ingressUrl={stack.restate.ingress_url}",
            wait=False,
        )
        yield installed
    finally:
        stack.stop()


def service_account_dir(release: ChartInstall, account: str, directory: Path) -> Path:
    """What the kubelet projects into a pod: a bound token, the cluster CA and the namespace."""
    cp = release.stack.control_plane
    directory.mkdir(mode=0o755)
    token = cp.kubectl("create", "token", account, "-n", NAMESPACE, "--duration=1h").strip()
    files = {"token": token, "ca.crt": cp.ca_file.read_text(), "namespace": NAMESPACE}
    for name, content in files.items():
        (directory / name).write_text(content)
        (directory / name).chmod(0o644)  # readable by the image's uid 10001
    directory.chmod(0o755)
    return directory


def in_cluster_env(release: ChartInstall) -> dict[str, str]:
    return {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(release.stack.control_plane.api_port),
    }


def test_image_runs_the_operator_under_the_chart_service_accounts(
    operator_image: str, release: ChartInstall, tmp_path: Path
) -> None:
    stack = release.stack
    services_port, services_probes, watcher_probes = (procs.free_port() for _ in range(3))
    services_env = {
        **in_cluster_env(release),
        "SERVICES_BIND": f"127.0.0.1:{services_port}",
        "PROBES_BIND": f"127.0.0.1:{services_probes}",
        "OPERATOR_NAMESPACE": NAMESPACE,
        "RESTATE_ADMIN_URL": stack.restate.admin_url,
        "SERVICES_ADVERTISED_URL": f"http://127.0.0.1:{services_port}",
    }
    watcher_env = {
        **in_cluster_env(release),
        "PROBES_BIND": f"127.0.0.1:{watcher_probes}",
        "RESTATE_INGRESS_URL": stack.restate.ingress_url,
    }
    services_sa = service_account_dir(release, RELEASE, tmp_path / "services-sa")
    watcher_sa = service_account_dir(release, f"{RELEASE}-watcher", tmp_path / "watcher-sa")
    with (
        containers.run_operator_container(
            ["python", "-m", "services"],
            services_env,
            {services_sa: containers.SERVICEACCOUNT_DIR},
            image=operator_image,
        ) as services,
        containers.run_operator_container(
            ["python", "-m", "watcher"], watcher_env, {watcher_sa: containers.SERVICEACCOUNT_DIR}, image=operator_image
        ) as watcher,
    ):
        assert containers.exec_in(services, "id", "-u")[1].strip() == "10001"
        ready = containers.wait_for_http(services, f"http://127.0.0.1:{services_probes}/readyz")
        assert ready.status_code == 200, containers.logs(services)
        procs.wait_until(
            "the watcher listed everything under its own ServiceAccount",
            lambda: httpx.get(f"http://127.0.0.1:{watcher_probes}/readyz", timeout=2).status_code == 200,
            timeout=60,
        )

        namespace = f"img-{uuid.uuid4().hex[:6]}"
        stack.control_plane.kubectl("create", "namespace", namespace)
        apply(stack, versioned_deployment(namespace, stack.restate.admin_url))

        def deployed() -> bool:
            obj = get(stack, "rsd", "versioned", namespace)
            return condition(obj, "Ready").get("status") == "True"

        try:
            procs.wait_until("the RestateDeployment Ready", deployed, timeout=120)
        except TimeoutError as exc:
            logs = f"services:\n{containers.logs(services)}\nwatcher:\n{containers.logs(watcher)}"
            raise AssertionError(f"{exc}\n{logs}") from None
        answer = httpx.post(f"{stack.restate.ingress_url}/Versioned/whoami", timeout=30)
        assert answer.json() == "v1", answer.text
        stack.control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


def versioned_deployment(namespace: str, admin_url: str) -> dict[str, object]:
    container = {"name": "versioned", "image": f"{VERSIONED_IMAGE}:v1", "ports": [{"containerPort": 9080}]}
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": "versioned", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "template": {"metadata": {"labels": {"app": "versioned"}}, "spec": {"containers": [container]}},
            "restate": {"register": {"url": admin_url}, "drainDelaySeconds": 1},
        },
    }
