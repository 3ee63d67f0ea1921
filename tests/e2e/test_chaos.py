"""A rollout under a misbehaving admin API: v1 serves `hold` invocations, the operator's admin API
(its `register.url`) is switched to a fault by `devstack.fault_proxy`, v2 is applied, the fault
lasts a while and ends. The invariants of `tests/e2e/chaos.py` must hold throughout, and the
resource must be Ready for v2 within RECOVERY_BOUND seconds of the fault's end.

`make test` runs one scenario (503 with Retry-After, the commonest real fault); `make chaos` runs
them all (`-m chaos`), CHAOS_ROUNDS times each, and appends each run's figures to CHAOS_RESULTS
(JSON lines) for docs/reliability.md. Scenarios share the Restate service `Versioned` with the
other e2e tests, so they run one after another, each in a namespace of its own.
"""

from __future__ import annotations

import os

import pytest

from devstack.fault_proxy import Fault, FaultProxy
from devstack.operator import Operator
from tests.e2e.chaos import record, rollout_under_fault

pytestmark = pytest.mark.e2e

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "1"))
CHAOS = pytest.mark.chaos

SCENARIOS = [
    pytest.param(Fault.http(503, retry_after=3), 20.0, id="http-503-retry-after"),
    pytest.param(Fault.http(500), 20.0, id="http-500", marks=CHAOS),
    pytest.param(Fault.http(429, retry_after=3), 20.0, id="http-429-retry-after", marks=CHAOS),
    pytest.param(Fault.refuse(), 20.0, id="connection-refused", marks=CHAOS),
    pytest.param(Fault.slow(35.0), 45.0, id="slow-beyond-client-timeout", marks=CHAOS),
    pytest.param(Fault.black_hole(), 45.0, id="black-hole", marks=CHAOS),
]


@pytest.mark.timeout(600)  # a 45 s fault, a 60 s hold, up to RECOVERY_BOUND to Ready, then the drain
@pytest.mark.parametrize("round_", range(ROUNDS), ids=lambda r: f"round{r}")
@pytest.mark.parametrize(("fault", "window"), SCENARIOS)
def test_a_rollout_under_a_faulty_admin_api_loses_nothing_and_recovers(
    operator: Operator, fault: Fault, window: float, round_: int
) -> None:
    with FaultProxy(operator.stack.restate.admin_url) as proxy:
        result = rollout_under_fault(operator, proxy, fault, window, admin_url=proxy.url)
    record({**result, "round": round_})
    # A refused connection never reaches the proxy, so it cannot be counted there.
    assert result["faulted_requests"] or fault.mode == "refuse", "the fault was met"
