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

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from devstack import procs
from devstack.fault_proxy import Fault, FaultProxy
from devstack.images import VERSIONED_IMAGE
from devstack.operator import Operator
from tests.e2e.chaos import Invariants, routed_to, rsd
from tests.e2e.versioned import call, namespace_for, phases, wait_ready
from tests.helpers import apply, sql

pytestmark = pytest.mark.e2e

# Seconds from the fault's end to Ready: a pass that failed waits its backoff (30 s, then 60 s) unless a
# watcher event comes first; two backoffs and a pass of margin.
RECOVERY_BOUND = 150.0
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


def record(result: dict[str, object]) -> None:
    print(f"chaos: {json.dumps(result)}")
    if path := os.environ.get("CHAOS_RESULTS"):
        with Path(path).open("a") as out:
            out.write(json.dumps(result) + "\n")


def latest(obj: dict[str, Any]) -> str:
    versions = (obj.get("status") or {}).get("versions") or []
    return str(next(v["name"] for v in versions if v["phase"] == "Latest"))


@pytest.mark.timeout(600)  # a 45 s fault, a 60 s hold, up to RECOVERY_BOUND to Ready, then the drain
@pytest.mark.parametrize("round_", range(ROUNDS), ids=lambda r: f"round{r}")
@pytest.mark.parametrize(("fault", "window"), SCENARIOS)
def test_a_rollout_under_a_faulty_admin_api_loses_nothing_and_recovers(
    operator: Operator, fault: Fault, window: float, round_: int
) -> None:
    stack = operator.stack
    with FaultProxy(stack.restate.admin_url) as proxy, namespace_for(stack, "chaos", timeout=120) as ns:
        apply(stack, rsd(ns, "v1", proxy.url, VERSIONED_IMAGE))
        v1 = latest(wait_ready(stack, ns, timeout=90))
        invariants = Invariants(stack, ns)
        invariants.start()
        try:
            hold_seconds = window + 15
            invariants.holds += [call(stack, "hold", hold_seconds, send=True).json()["invocationId"] for _ in range(2)]
            ids = ", ".join(f"'{h}'" for h in invariants.holds)
            procs.wait_until(
                "the holds run on v1",
                lambda: (
                    len(
                        sql(
                            stack,
                            "SELECT id FROM sys_invocation_status "
                            f"WHERE id IN ({ids}) AND pinned_deployment_id IS NOT NULL",
                        )
                    )
                    == 2
                ),
                timeout=30,
            )
            proxy.set(fault)
            apply(stack, rsd(ns, "v2", proxy.url, VERSIONED_IMAGE))
            healthz = f"http://127.0.0.1:{operator.services_probes_port}/healthz"
            procs.holds_for(
                "the operator stays healthy during the fault", lambda: procs.http_ok(healthz), seconds=window
            )
            faulted = sum(1 for s in proxy.seen if s.fault != "pass")
            proxy.set(None)
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
        record(
            {
                "scenario": str(fault),
                "window_s": window,
                "round": round_,
                "recovery_s": round(recovery, 1),
                "faulted_requests": faulted,
                "samples": len(invariants.samples),
            }
        )
        # A refused connection never reaches the proxy, so it cannot be counted there.
        assert faulted > 0 or fault.mode == "refuse", "the fault was met"
