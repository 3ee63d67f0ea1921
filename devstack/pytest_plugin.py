"""The pytest plugin of the local stack: session fixtures that start it, and the order of the tiers.

Loaded once for the whole run (`-p devstack.pytest_plugin` in pyproject's `addopts`), so the
product's tests (`tests/`) and the stack's own (`devstack/tests/`) share one control plane and one
restate-server, whichever tree or file pytest is pointed at. Nothing starts until a test asks for a
fixture: unit tests never touch the stack. Integration and e2e tests isolate themselves with a
namespace each.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config

from devstack.knative import Knative
from devstack.operator import Operator
from devstack.stack import Stack

TIERS = ("unit", "integration", "e2e")


def tier(item: pytest.Item) -> int:
    """0 unit, 1 integration, 2 e2e, by directory (`tests/unit/`) or by marker (`devstack/tests/`); others last."""
    try:
        parts = Path(str(item.path)).relative_to(item.config.rootpath).parts
    except ValueError:
        parts = Path(str(item.path)).parts
    return next(
        (i for i, name in enumerate(TIERS) if name in parts or item.get_closest_marker(name) is not None),
        len(TIERS),
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fast tiers first, across both trees: a broken unit test reports before the stack even starts.
    The long fault scenarios (marker `chaos`) run only when asked for (`make chaos`: `-m chaos`)."""
    items.sort(key=tier)
    if "chaos" not in (config.option.markexpr or ""):
        skip = pytest.mark.skip(reason="a long fault scenario: `make chaos` runs it")
        for item in items:
            if item.get_closest_marker("chaos") is not None:
                item.add_marker(skip)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Collect the garbage after each test that touches the stack, once its fixtures are torn down
    and before pytest looks for unraisable exceptions: a socket a test left open (in a reference
    cycle, or on an abandoned event loop) then fails that test, not whichever later test the garbage
    collector happens to run in. (A `-p` plugin registers before pytest's own, so this plain hook
    runs after the runner's teardown and before the trylast collection of unraisable exceptions.)"""
    if 0 < tier(item) < len(TIERS):  # about 0.15 s each, so not for the unit tests nor the chart's
        gc.collect()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("stack")))
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def operator(stack: Stack) -> Iterator[Operator]:
    """services and watcher as real processes, registered with the stack's restate-server."""
    # Cloud identity integrations on, against minimal third-party CRDs (tests/integration/test_cluster_identity.py).
    op = Operator(
        stack, services_env={"AWS_POD_IDENTITY_ASSOCIATION_CLUSTER": "eks-test", "GCP_WORKLOAD_IDENTITY": "true"}
    )
    try:
        op.start()
        yield op
    finally:
        op.stop()


@pytest.fixture(scope="session")
def knative(stack: Stack) -> Iterator[Knative]:
    """The real Knative Serving controller on the stack, its data plane played (devstack/knative.py).

    Only the sessions that ask for it install its CRDs and run it; it stops before the stack does.
    """
    kn = Knative(stack)
    try:
        kn.start()
        yield kn
    finally:
        kn.stop()


@pytest.fixture(scope="session")
async def kube_api(stack: Stack) -> AsyncIterator[client.ApiClient]:
    api = await config.new_client_from_config(config_file=str(stack.control_plane.kubeconfig))
    yield api
    await api.close()


@pytest.fixture
async def namespace(kube_api: client.ApiClient) -> AsyncIterator[str]:
    """A fresh namespace per test, deleted afterwards (the namespace controller cleans it up)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_api)
    await core.create_namespace({"metadata": {"name": name}})
    yield name
    await core.delete_namespace(name)
