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
import time
from collections.abc import Iterator

import pytest

from devstack import procs
from devstack.control_plane import ADMIN_TOKEN
from devstack.images import VERSIONED_IMAGE
from devstack.kube_fault_proxy import KubeFault, KubeFaultProxy
from devstack.operator import Operator
from tests.e2e.chaos import Invariants, routed_to, rsd
from tests.e2e.test_chaos import latest, record
from tests.e2e.versioned import call, namespace_for, phases, pinned, wait_ready
from tests.helpers import apply

pytestmark = pytest.mark.e2e

WINDOW_SECONDS = 20.0
# From the fault's end to Ready: a pass that failed waits its backoff unless an event comes first.
RECOVERY_BOUND = 150.0
ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "1"))

SCENARIOS = [
    pytest.param(KubeFault.conflict(every=2), id="409-every-2nd-write"),
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
        _restart(operator, KUBECONFIG=str(kubeconfig))
        try:
            yield proxy
        finally:
            proxy.set(None)
            _restart(operator)


def _restart(operator: Operator, **env: str) -> None:
    operator.stop_watchers()
    if operator.services:
        operator.services.stop()
    operator.start_services(**env)
    operator.start_watcher(**env)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("round_", range(ROUNDS), ids=lambda r: f"round{r}")
@pytest.mark.parametrize("fault", SCENARIOS)
def test_a_rollout_under_a_faulty_kubernetes_api_loses_nothing_and_recovers(
    operator: Operator, kube_proxy: KubeFaultProxy, fault: KubeFault, round_: int
) -> None:
    stack = operator.stack
    with namespace_for(stack, "kube-fault", timeout=120) as ns:
        apply(stack, rsd(ns, "v1", stack.restate.admin_url, VERSIONED_IMAGE))
        v1 = latest(wait_ready(stack, ns, timeout=90))
        invariants = Invariants(stack, ns)
        invariants.start()
        try:
            hold_seconds = WINDOW_SECONDS + 15
            invariants.holds += [call(stack, "hold", hold_seconds, send=True).json()["invocationId"] for _ in range(2)]
            for hold in invariants.holds:
                procs.wait_until("the holds run on v1", lambda h=hold: pinned(stack, h), timeout=30)  # type: ignore[misc]
            start = len(kube_proxy.seen)
            kube_proxy.set(fault)
            apply(stack, rsd(ns, "v2", stack.restate.admin_url, VERSIONED_IMAGE))
            healthz = f"http://127.0.0.1:{operator.services_probes_port}/healthz"
            procs.holds_for(
                "the operator stays healthy during the fault", lambda: procs.http_ok(healthz), seconds=WINDOW_SECONDS
            )
            during = kube_proxy.seen[start:]
            met = len(kube_proxy.met(fault))
            kube_proxy.set(None)
            cleared = time.monotonic()
            obj = wait_ready(stack, ns, timeout=RECOVERY_BOUND)
            recovery = time.monotonic() - cleared
            v2 = latest(obj)
            assert v2 != v1
            assert routed_to(stack, "v2"), "Ready means Restate routes new invocations to the desired version"
            procs.wait_until("v1 drained", lambda: phases(stack, ns).get(v1) == "Drained", timeout=hold_seconds + 90)
        finally:
            invariants.stop()
        assert invariants.violations(v1) == []
        assert met > 0, "the fault was met"
        rate = len(during) / WINDOW_SECONDS
        record(
            {
                "scenario": f"apiserver: {fault}",
                "window_s": WINDOW_SECONDS,
                "round": round_,
                "recovery_s": round(recovery, 1),
                "faulted_requests": met,
                "requests_per_s": round(rate, 1),
                "samples": len(invariants.samples),
            }
        )
        # No retry storm: both processes together stay near their normal request rate while refused.
        assert rate < 20, f"{len(during)} requests in {WINDOW_SECONDS:g} s of {fault}"
