"""Many RestateDeployments applied at once, then rolled out at once (issue 14, "Load and soak").

N resources of the light benchmark image (`tests/light.py`: one shared process serves every pod,
so a hundred fit on two cores while registrations, pinned invocations and drains stay real) are
applied at once; every fifth then holds an invocation on v1 while all N are rolled to v2 at once;
finally all are deleted at once. One checker (`tests/e2e/fleet.py`) watches the whole run, and:

- every resource is Ready for each generation within CONVERGE_BOUND_S of the apply, and Restate
  routes its service to v2 afterwards;
- reconcile invocations per resource (the bootstrap Restate's `sys_invocation`, as the scale
  benchmark counts them) stay at most INVOCATIONS_BOUND over the three phases: edits coalesce;
- no retry storm: no unfinished reconcile invocation ever shows a `retry_count` (its attempts,
  the first included) above MAX_ATTEMPTS in `sys_invocation`;
- no duplicate registration; a held v1 stays registered with its pods until its hold finished,
  and the hold answers `v1`; every v1 ends Drained and deregistered;
- nothing is left behind once all are deleted: no ReplicaSet, Service or registration of theirs,
  no reconciler state.

`make test` runs N=20; `make chaos` (marker `chaos`) runs N=100. Figures go to stdout (and, with
CHAOS_RESULTS set, one JSON line there) for docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack import procs
from devstack.operator import Operator
from devstack.stack import Stack
from services.reconcilers import steps
from tests import light
from tests.bench.common import Api, ReadyWatch
from tests.bench.operator_cost import rsd_path
from tests.e2e.fleet import FleetWatch, Hold, left_behind, registered_in, uri_parts
from tests.e2e.versioned import pinned

pytestmark = pytest.mark.e2e

# Seconds from an apply to Ready for every resource: the scale benchmark took 103 s (create) and
# 266 s (rollout) for 100 at a load average of 20; twice that, and a pass of margin.
CONVERGE_BOUND_S = 600.0
# Reconcile invocations per resource over create, rollout and deletion: the scale benchmark counts
# 9.3 (create) and 12.7 (rollout) on average; the bound allows the slowest resource twice that.
INVOCATIONS_BOUND = 50
# An invocation's attempts (`sys_invocation.retry_count`, 1 = the first). A failing step is retried
# by Restate up to its policy's attempts and then ends the pass with a backoff, so one step's
# attempts are the most a pass should need with no fault injected. With 100 registrations at once
# Restate's admin API does refuse some (HTTP 500, contention on its schema registry, and META0003
# while the test stack's hosts file lags a new Service), which the step's attempts absorb.
MAX_ATTEMPTS = steps.STEP_OPTIONS.max_attempts or 1
HOLD_EVERY = 5  # every fifth resource holds an invocation on v1 through the rollout
HOLD_SECONDS = 20.0


@pytest.fixture
def api(operator: Operator) -> Iterator[Api]:
    client = Api(operator.stack)
    yield client
    client.http.close()


def apply_all(api: Api, namespace: str, n: int, version: str, admin: str) -> list[int]:
    """Apply all N at `version` back to back; their generations."""
    return [
        int(
            api.apply(rsd_path(namespace, light.name(i)), light.rsd(i, version, admin, namespace))["metadata"][
                "generation"
            ]
        )
        for i in range(n)
    ]


def converge_times(watch: ReadyWatch, namespace: str, generations: list[int], started: float) -> list[float]:
    return [
        watch.wait(light.name(i), g, namespace, timeout=max(1.0, started + CONVERGE_BOUND_S - time.monotonic()))
        - started
        for i, g in enumerate(generations)
    ]


def reconciles_per_key(stack: Stack, namespace: str) -> dict[str, int]:
    rows = light.query(
        stack.restate.admin_url,
        "SELECT target_service_key AS key, count(*) AS n FROM sys_invocation "
        "WHERE target_service_name = 'DeploymentReconciler' AND target_handler_name = 'reconcile' "
        f"AND target_service_key LIKE '{namespace}/%' GROUP BY target_service_key",
    )
    return {str(r["key"]): int(r["n"]) for r in rows}


def whoami(stack: Stack, i: int) -> str:
    response = httpx.post(f"{stack.restate.ingress_url}/{light.service(i)}/whoami", timeout=30)
    return str(response.json()) if response.status_code == 200 else f"HTTP {response.status_code}"


def version_phases(api: Api, namespace: str) -> dict[str, dict[str, str]]:
    listed = api.get(f"/apis/restate.dev/v1beta1/namespaces/{namespace}/restatedeployments")["items"]
    return {
        o["metadata"]["name"]: {v["name"]: v["phase"] for v in (o.get("status") or {}).get("versions") or []}
        for o in listed
    }


def record(result: dict[str, object]) -> None:
    print(f"load: {json.dumps(result)}")
    if path := os.environ.get("CHAOS_RESULTS"):
        with Path(path).open("a") as out:
            out.write(json.dumps(result) + "\n")


@pytest.mark.timeout(int(4 * CONVERGE_BOUND_S))
@pytest.mark.parametrize("n", [pytest.param(20, id="20"), pytest.param(100, id="100", marks=pytest.mark.chaos)])
def test_many_resources_applied_and_rolled_at_once_converge_without_a_retry_storm(
    operator: Operator, api: Api, n: int
) -> None:
    stack, admin = operator.stack, operator.stack.restate.admin_url
    namespace = f"load-{uuid.uuid4().hex[:6]}"
    api.create_namespace(namespace)
    ready = ReadyWatch(stack, f"/apis/restate.dev/v1beta1/namespaces/{namespace}/restatedeployments")
    figures: dict[str, object] = {"scenario": f"{n} RestateDeployments at once", "window_s": 0, "count": n}
    try:
        with FleetWatch(stack, namespace, max_attempts=MAX_ATTEMPTS) as watch:
            started = time.monotonic()
            created = converge_times(ready, namespace, apply_all(api, namespace, n, "v1", admin), started)
            figures["create_s"] = {"p50": round(sorted(created)[n // 2], 1), "max": round(max(created), 1)}
            assert [whoami(stack, i) for i in range(n)] == ["v1"] * n
            v1 = {light.name(i): next(iter(version_phases(api, namespace)[light.name(i)])) for i in range(n)}

            for i in range(0, n, HOLD_EVERY):
                invocation = httpx.post(
                    f"{stack.restate.ingress_url}/{light.service(i)}/hold/send", json=HOLD_SECONDS, timeout=30
                ).json()["invocationId"]
                watch.add(Hold(invocation, expect=lambda answer: answer == "v1"))
            procs.wait_until(
                "every hold pinned to v1", lambda: all(pinned(stack, h.id) for h in watch.holds), timeout=60
            )

            started = time.monotonic()
            rolled = converge_times(ready, namespace, apply_all(api, namespace, n, "v2", admin), started)
            figures["rollout_s"] = {"p50": round(sorted(rolled)[n // 2], 1), "max": round(max(rolled), 1)}
            figures["recovery_s"] = round(max(rolled), 1)  # for tests/chaos_report.py: the slowest to converge
            assert [whoami(stack, i) for i in range(n)] == ["v2"] * n, "Ready means Restate routes to v2"

            def all_drained() -> bool:
                """Every v1 Drained (or already retired past revisionHistoryLimit, which only a Drained one is)."""
                phases = version_phases(api, namespace)
                return all(phases[name].get(version, "Drained") == "Drained" for name, version in v1.items())

            procs.wait_until("every v1 Drained", all_drained, timeout=CONVERGE_BOUND_S)
            registered = {uri_parts(uri)[0] for uri in registered_in(stack, namespace)}
            assert registered.isdisjoint(v1.values()), "every v1 deregistered"
            procs.wait_until("the checker saw every hold finish", lambda: not watch.unfinished(), timeout=30)
            through_rollout = sum(reconciles_per_key(stack, namespace).values()) / n

            api.http.request("DELETE", f"/apis/restate.dev/v1beta1/namespaces/{namespace}/restatedeployments")
            started = time.monotonic()
            procs.wait_until(
                "every RestateDeployment deleted",
                lambda: not api.get(f"/apis/restate.dev/v1beta1/namespaces/{namespace}/restatedeployments")["items"],
                timeout=CONVERGE_BOUND_S,
            )
            figures["delete_s"] = round(time.monotonic() - started, 1)
            procs.wait_until(
                "nothing left behind", lambda: not left_behind(stack, api, namespace), timeout=120, interval=2
            )
            invocations = reconciles_per_key(stack, namespace)
        per_resource = sorted(invocations.values())
        figures |= {
            "invocations_per_resource": {
                "through_rollout_mean": round(through_rollout, 1),
                "mean": round(sum(per_resource) / n, 1),
                "max": per_resource[-1],
            },
            "highest_attempts": watch.highest_attempt,
            "backing_off_peak": watch.backing_off_peak,
            "holds": len(watch.holds),
            "samples": watch.samples,
            "samples_missed": dict(watch.missed),
            "violations": len(watch.violations()),
            "load_average": os.getloadavg()[0],
        }
        record(figures)
        assert watch.violations() == []
        assert watch.samples > 0, "the checker saw the run"
        assert len(invocations) == n
        assert per_resource[-1] <= INVOCATIONS_BOUND, per_resource
    finally:
        ready.close()
        api.http.request("DELETE", f"/apis/restate.dev/v1beta1/namespaces/{namespace}/restatedeployments")
        api.http.request("DELETE", f"/api/v1/namespaces/{namespace}")
