"""A rollout while the Kubernetes API misbehaves between the operator and the apiserver.

Both operator processes (services and watcher) are restarted with a kubeconfig pointing at
`devstack.kube_fault_proxy`; everything else (the pod runner, kube-controller-manager, the test's
own checks) talks to the apiserver directly. v1 serves two `hold` invocations, the fault is
switched on, v2 is applied, the fault lasts a while (through v2's pending, registering and v1's
draining phases) and ends. The invariants of `tests/e2e/chaos.py` must hold throughout, the
services process must stay healthy, and the resource must be Ready for v2, routed, within
RECOVERY_BOUND seconds of the fault's end.

`make test` runs every scenario once (they are short); `make chaos` runs them CHAOS_ROUNDS times
and appends the figures to CHAOS_RESULTS. They share the Restate service `Versioned` with the
other e2e tests, so they run one after another, each in a namespace of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devstack.control_plane import ADMIN_TOKEN
from devstack.kube_fault_proxy import KubeFault, KubeFaultProxy
from devstack.operator import Operator
from tests.e2e.chaos import record, rollout_under_fault

pytestmark = pytest.mark.e2e

WINDOW_SECONDS = 20.0
ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "1"))

SCENARIOS = [
    pytest.param(KubeFault.conflict(every=2), id="409-one-write-in-2"),
    pytest.param(KubeFault.throttle(retry_after=2), id="429-retry-after"),
    pytest.param(KubeFault.cut_watches(after=2), id="watches-cut"),
    pytest.param(KubeFault.gone(), id="410-gone-on-resume"),
]


@pytest.fixture(scope="module")
def kube_proxy(operator: Operator) -> Iterator[KubeFaultProxy]:
    """The session's operator, both processes talking to the apiserver through the proxy."""
    cp = operator.stack.control_plane
    with KubeFaultProxy(cp.server, cp.ca_file) as proxy:
        kubeconfig = operator.stack.work / "kube-fault-proxy.kubeconfig"
        kubeconfig.write_text(proxy.kubeconfig(ADMIN_TOKEN))
        operator.restart(services=True, KUBECONFIG=str(kubeconfig))
        try:
            yield proxy
        finally:
            proxy.set(None)
            operator.restart(services=True)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("round_", range(ROUNDS), ids=lambda r: f"round{r}")
@pytest.mark.parametrize("fault", SCENARIOS)
def test_a_rollout_under_a_faulty_kubernetes_api_loses_nothing_and_recovers(
    operator: Operator, kube_proxy: KubeFaultProxy, fault: KubeFault, round_: int
) -> None:
    result = rollout_under_fault(
        operator, kube_proxy, fault, WINDOW_SECONDS, admin_url=operator.stack.restate.admin_url
    )
    record({**result, "scenario": f"apiserver: {fault}", "round": round_})
    assert result["faulted_requests"], "the fault was met"
    # No retry storm: both processes together stay near their usual request rate while refused
    # (an apiserver answering 410 to every resumed watch once drew 56 requests/s).
    assert float(result["requests_per_s"]) < 20, f"{result['requests_per_s']} requests/s during {fault}"
