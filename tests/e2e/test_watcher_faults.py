"""A rollout while the way from the watcher to the bootstrap Restate misbehaves.

The watcher is restarted with its RESTATE_INGRESS_URL pointing at `devstack.fault_proxy` in front
of the stack's ingress; the services process and everything else reach Restate directly. v1
serves two `hold` invocations, the fault is switched on, v2 is applied (so the change that starts
the rollout must cross the faulty path), the fault lasts a while and ends. Nothing may be lost: the
watcher keeps every refused forward and sends it again (with its idempotency key), the invariants of
`tests/e2e/chaos.py` hold, and the resource is Ready for v2 within RECOVERY_BOUND of the fault's end.

`make test` runs one scenario; `make chaos` the rest, CHAOS_ROUNDS times each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devstack.fault_proxy import Fault, FaultProxy
from devstack.operator import Operator
from tests.e2e.chaos import record, rollout_under_fault

pytestmark = pytest.mark.e2e

WINDOW_SECONDS = 20.0
ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "1"))
CHAOS = pytest.mark.chaos

SCENARIOS = [
    pytest.param(Fault.http(503), id="ingress-503"),
    pytest.param(Fault.refuse(), id="ingress-refused", marks=CHAOS),
    pytest.param(Fault.black_hole(), id="ingress-black-hole", marks=CHAOS),
]


@pytest.fixture(scope="module")
def ingress_proxy(operator: Operator) -> Iterator[FaultProxy]:
    with FaultProxy(operator.stack.restate.ingress_url) as proxy:
        operator.restart(services=False, RESTATE_INGRESS_URL=proxy.url)
        try:
            yield proxy
        finally:
            proxy.set(None)
            operator.restart(services=False)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("round_", range(ROUNDS), ids=lambda r: f"round{r}")
@pytest.mark.parametrize("fault", SCENARIOS)
def test_a_rollout_while_the_watcher_cannot_reach_restate_loses_nothing_and_recovers(
    operator: Operator, ingress_proxy: FaultProxy, fault: Fault, round_: int
) -> None:
    result = rollout_under_fault(
        operator, ingress_proxy, fault, WINDOW_SECONDS, admin_url=operator.stack.restate.admin_url
    )
    record({**result, "scenario": f"watcher to Restate: {fault}", "round": round_})
    # A refused connection never reaches the proxy, so it cannot be counted there.
    assert result["faulted_requests"] or fault.mode == "refuse", "the fault was met"
