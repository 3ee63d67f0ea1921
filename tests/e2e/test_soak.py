"""A bounded soak: random rollouts, rollbacks, pauses, forced drains, deletes and faults for
SOAK_MINUTES (default 20) while `hold` traffic runs (issue 14, "Load and soak"; `make chaos` only).

RESOURCES RestateDeployments of the real example SDK service (examples/versioned), each serving
its own Restate service (`Soak<i>`, the container's SERVICE_NAME) and reporting its own version
label (the container's VERSION), all registered through one fault proxy (`register.url`). Until
the time is up, each round starts a `hold` on every resource and then does one random action:

- rollout: a new version label (the image alternates between the example's v1 and v2);
- rollback: the previous template applied again;
- pause: pause, a rollout that must wait (Ready reason `Paused`, Restate still routes to the old
  version), resume;
- force-drain: a rollout, then `forceDrain` of the version still serving a hold (that hold is
  forfeited, which is what forceDrain is for, and killed in Restate);
- delete: the resource deleted (deletion waits for its holds) and created again;
- fault: the admin API behind the proxy fails (`devstack.fault_proxy`) while a rollout happens;
- kill: the services process, the watcher or restate-server SIGKILLed mid-rollout and started again.

After every round each resource must be Ready for its generation with Restate routing to its
label within CONVERGE_BOUND_S. `tests/e2e/fleet.py` watches the whole run: no version
deregistered or scaled down with an unfinished hold pinned to it, every hold answers
`started on X, finished on X` for the version X it began on, no duplicate registration, no
reconcile invocation above MAX_ATTEMPTS attempts. At the end everything is deleted and nothing
may be left behind. The seed (SOAK_SEED, else the clock) is printed; the counts are printed and,
with CHAOS_RESULTS set, appended there as one JSON line.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import procs
from devstack.fault_proxy import Fault, FaultProxy
from devstack.images import VERSIONED_IMAGE
from devstack.operator import Operator
from devstack.stack import Stack
from services.reconcilers import steps
from tests import light
from tests.bench.common import Api
from tests.e2e.fleet import FleetWatch, Hold, left_behind, uri_parts
from tests.e2e.outages import kill_and_revive
from tests.e2e.versioned import NAME, call, deployments, phases, reconciler_url
from tests.helpers import apply, condition, get

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

SOAK_MINUTES = float(os.environ.get("SOAK_MINUTES", "20"))
RESOURCES = 3
# Seconds from the end of a round's action (a fault's end, a revived process) to every resource
# Ready and routed: a pass that met a fault waits its backoff (30 s, then 60 s) unless an event
# comes first; as in test_chaos, two backoffs and a pass of margin.
CONVERGE_BOUND_S = 150.0
# Attempts of one reconcile invocation (`sys_invocation.retry_count`): under a fault a step makes
# its policy's attempts and the pass then ends with a backoff; more than twice that is a storm.
MAX_ATTEMPTS = 2 * (steps.STEP_OPTIONS.max_attempts or 1)
FAULT_WINDOW_S = 20.0
FAULTS = [Fault.http(503, retry_after=3), Fault.http(500), Fault.http(429, retry_after=3), Fault.refuse()]
KILLS = ["services", "watcher", "restate-server"]
ACTIONS = ["rollout", "rollback", "pause", "force-drain", "delete", "fault", "kill"]


@dataclass
class Resource:
    """One RestateDeployment of the soak and the version labels it was given, newest last."""

    index: int
    namespace: str
    labels: list[str] = field(default_factory=list)

    @property
    def service(self) -> str:
        return f"Soak{self.index}"

    @property
    def label(self) -> str:
        return self.labels[-1]

    def spec(self, label: str, admin: str) -> dict[str, Any]:
        tag = ("v1", "v2")[int(label.rsplit("-", 1)[1]) % 2]
        env = [{"name": "SERVICE_NAME", "value": self.service}, {"name": "VERSION", "value": label}]
        container = {
            "name": NAME,
            "image": f"{VERSIONED_IMAGE}:{tag}",
            "env": env,
            "ports": [{"name": "restate", "containerPort": 9080}],
        }
        return {
            "apiVersion": "restate.dev/v1beta1",
            "kind": "RestateDeployment",
            "metadata": {"name": NAME, "namespace": self.namespace},
            "spec": {
                "replicas": 1,
                "revisionHistoryLimit": 3,
                "template": {"metadata": {"labels": {"app": NAME}}, "spec": {"containers": [container]}},
                "restate": {"register": {"url": admin}, "drainDelaySeconds": 1},
            },
        }


@dataclass
class Soak:
    """The run's state and counts; one method per action."""

    operator: Operator
    proxy: FaultProxy
    watch: FleetWatch
    rng: random.Random
    resources: list[Resource]
    counts: Counter[str] = field(default_factory=Counter)
    convergence: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _next_label: int = 0

    @property
    def stack(self) -> Stack:
        return self.operator.stack

    def new_label(self, r: Resource) -> str:
        self._next_label += 1
        return f"s{r.index}-{self._next_label}"

    def apply(self, r: Resource, label: str) -> None:
        r.labels.append(label)
        self.write(r)

    def write(self, r: Resource) -> None:
        apply(self.stack, r.spec(r.label, self.proxy.url))
        self.counts["applies"] += 1

    def hold(self, r: Resource) -> None:
        """Start a hold on the version `r` serves now: it must finish there."""
        seconds = self.rng.uniform(5, 25)
        invocation = call(self.stack, "hold", seconds, send=True, service=r.service).json()["invocationId"]
        label = r.label
        self.watch.add(Hold(invocation, expect=lambda a: a == f"started on {label}, finished on {label}"))
        self.counts["holds"] += 1

    def converge(self, what: str) -> None:
        """Every resource Ready for its generation and routed to its label, within the bound."""
        started = time.monotonic()
        try:
            procs.wait_until(
                f"all converged after {what}",
                lambda: all(converged(self.stack, r) for r in self.resources),
                timeout=CONVERGE_BOUND_S,
                interval=1.0,
            )
        except TimeoutError as exc:
            self.violations.append(f"not converged within {CONVERGE_BOUND_S:g} s after {what}: {exc}")
            procs.wait_until(  # carry on only once it has (a soak that cannot converge stops here)
                "all converged at last", lambda: all(converged(self.stack, r) for r in self.resources), timeout=600
            )
        self.convergence.append(time.monotonic() - started)

    def rollout(self, r: Resource) -> None:
        self.apply(r, self.new_label(r))
        self.counts["rollouts"] += 1
        self.converge("rollout")

    def rollback(self, r: Resource) -> None:
        if len(r.labels) < 2:
            return self.rollout(r)
        self.apply(r, r.labels[-2])
        self.counts["rollbacks"] += 1
        self.converge("rollback")
        return None

    def pause(self, r: Resource) -> None:
        before = r.label
        command(self.stack, r, "pause")
        self.apply(r, self.new_label(r))
        procs.wait_until("Paused", lambda: ready_reason(self.stack, r) == "Paused", timeout=CONVERGE_BOUND_S)
        if whoami(self.stack, r) != before:
            self.violations.append(f"{r.namespace}: a paused rollout was routed to {r.label}")
        command(self.stack, r, "resume")
        self.counts["pauses"] += 1
        self.converge("resume")

    def force_drain(self, r: Resource) -> None:
        serving = current_version(self.stack, r)
        unfinished = [h for h in self.watch.unfinished() if h.id in self.pinned_to(serving)]
        self.apply(r, self.new_label(r))
        procs.wait_until(
            "the old version Draining",
            lambda: phases(self.stack, r.namespace).get(serving) in ("Draining", "Drained"),
            timeout=CONVERGE_BOUND_S,
        )
        for hold in unfinished:
            hold.forfeited = True
        command(self.stack, r, "forceDrain", {"version": serving})
        for hold in unfinished:  # pinned to a version that is going away: nobody may resume it
            httpx.patch(f"{self.stack.restate.admin_url}/invocations/{hold.id}/kill", timeout=30)
        self.counts["forced_drains"] += 1
        self.counts["holds_forfeited"] += len(unfinished)
        self.converge("forceDrain")

    def delete(self, r: Resource) -> None:
        self.stack.control_plane.kubectl("delete", "rsd", NAME, "-n", r.namespace, "--wait=false")
        procs.wait_until(
            "deleted (after its holds)", lambda: get(self.stack, "rsd", NAME, r.namespace) is None, timeout=120
        )
        self.write(r)
        self.counts["deletes"] += 1
        self.converge("delete and create")

    def fault(self, r: Resource) -> None:
        fault = self.rng.choice(FAULTS)
        self.proxy.set(fault)
        try:
            self.apply(r, self.new_label(r))
            time.sleep(FAULT_WINDOW_S)
        finally:
            self.proxy.set(None)
        self.counts[f"fault {fault}"] += 1
        self.counts["faults"] += 1
        self.converge(f"fault {fault}")

    def kill(self, r: Resource) -> None:
        target = self.rng.choice(KILLS)
        kill, revive = kill_and_revive(self.operator, target)
        self.apply(r, self.new_label(r))
        time.sleep(self.rng.uniform(0, 5))
        kill()
        time.sleep(self.rng.uniform(2, 10))
        revive()
        self.counts[f"kill {target}"] += 1
        self.counts["faults"] += 1
        self.converge(f"SIGKILL {target}")

    def pinned_to(self, version: str) -> set[str]:
        """The unfinished invocations Restate has pinned to `version`'s deployment."""
        ids = [d["id"] for d in deployments(self.stack).values() if uri_parts(d["uri"])[0] == version]
        if not ids:
            return set()
        listed = ", ".join(f"'{i}'" for i in ids)
        rows = light.query(
            self.stack.restate.admin_url,
            f"SELECT id FROM sys_invocation_status WHERE pinned_deployment_id IN ({listed}) AND status != 'completed'",
        )
        return {str(row["id"]) for row in rows}

    def round(self) -> None:
        for r in self.resources:
            self.hold(r)
        action = self.rng.choice(ACTIONS)
        target = self.rng.choice(self.resources)
        actions: dict[str, Callable[[Resource], None]] = {
            "rollout": self.rollout,
            "rollback": self.rollback,
            "pause": self.pause,
            "force-drain": self.force_drain,
            "delete": self.delete,
            "fault": self.fault,
            "kill": self.kill,
        }
        print(f"soak: {time.strftime('%H:%M:%S')} {action} {target.namespace}", flush=True)
        actions[action](target)
        self.counts["rounds"] += 1


def converged(stack: Stack, r: Resource) -> bool:
    obj = get(stack, "rsd", NAME, r.namespace)
    ready = condition(obj, "Ready")
    if not obj or ready.get("status") != "True" or ready.get("observedGeneration") != obj["metadata"]["generation"]:
        return False
    return whoami(stack, r) == r.label


def whoami(stack: Stack, r: Resource) -> str:
    response = call(stack, "whoami", service=r.service)
    return str(response.json()) if response.status_code == 200 else f"HTTP {response.status_code}"


def ready_reason(stack: Stack, r: Resource) -> str | None:
    reason = condition(get(stack, "rsd", NAME, r.namespace), "Ready").get("reason")
    return str(reason) if reason else None


def current_version(stack: Stack, r: Resource) -> str:
    obj = get(stack, "rsd", NAME, r.namespace) or {}
    return str(obj["status"]["latestVersion"])


def command(stack: Stack, r: Resource, handler: str, body: dict[str, Any] | None = None) -> None:
    response = httpx.post(reconciler_url(stack, r.namespace, handler), json=body or {}, timeout=60)
    assert response.status_code == 200, f"{handler}: {response.text}"


def record(result: dict[str, object]) -> None:
    print(f"soak: {json.dumps(result)}")
    if path := os.environ.get("CHAOS_RESULTS"):
        with Path(path).open("a") as out:
            out.write(json.dumps(result) + "\n")


@pytest.fixture
def resources(operator: Operator) -> Iterator[list[Resource]]:
    """RESOURCES namespaces under one prefix; whatever is left in them is removed afterwards."""
    stack = operator.stack
    prefix = f"soak-{uuid.uuid4().hex[:6]}"
    made = [Resource(i, f"{prefix}-{i}") for i in range(RESOURCES)]
    for r in made:
        stack.control_plane.kubectl("create", "namespace", r.namespace)
    yield made
    for r in made:
        stack.control_plane.kubectl("delete", "namespace", r.namespace, "--wait=false")


@pytest.mark.timeout(int(SOAK_MINUTES * 60 + 1800))
def test_a_soak_of_random_rollouts_and_faults_keeps_every_invariant(
    operator: Operator, resources: list[Resource]
) -> None:
    stack = operator.stack
    seed = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
    print(f"soak: seed {seed} (SOAK_SEED={seed} repeats the choices), {SOAK_MINUTES:g} minutes", flush=True)
    prefix = resources[0].namespace.rsplit("-", 1)[0]
    loads: list[float] = []
    with (
        FaultProxy(stack.restate.admin_url) as proxy,
        FleetWatch(stack, prefix, max_attempts=MAX_ATTEMPTS) as watch,
    ):
        soak = Soak(operator, proxy, watch, random.Random(seed), resources)
        for r in resources:
            soak.apply(r, soak.new_label(r))
        soak.converge("create")
        deadline = time.monotonic() + SOAK_MINUTES * 60
        while time.monotonic() < deadline:
            soak.round()
            loads.append(os.getloadavg()[0])
        procs.wait_until("every hold finished", lambda: not watch.unfinished(), timeout=120, interval=1)
        for r in resources:
            stack.control_plane.kubectl("delete", "rsd", NAME, "-n", r.namespace, "--wait=false")
        api = Api(stack)
        try:
            procs.wait_until(
                "nothing left behind",
                lambda: not [x for r in resources for x in left_behind(stack, api, r.namespace)],
                timeout=CONVERGE_BOUND_S,
                interval=2,
            )
        finally:
            api.http.close()
    invocations = int(light.query(stack.restate.admin_url, count_reconciles(prefix))[0]["n"])
    violations = soak.violations + watch.violations()
    result = {
        "scenario": "soak",
        "window_s": SOAK_MINUTES * 60,
        "recovery_s": round(max(soak.convergence), 1),
        "seed": seed,
        "minutes": SOAK_MINUTES,
        **dict(sorted(soak.counts.items())),
        "reconcile_invocations": invocations,
        "highest_attempts": watch.highest_attempt,
        "backing_off_peak": watch.backing_off_peak,
        "convergence_p50_s": round(sorted(soak.convergence)[len(soak.convergence) // 2], 1),
        "samples": watch.samples,
        "samples_missed": sum(watch.missed.values()),  # a source down (a kill), so nothing seen
        "load_average_mean": round(sum(loads) / max(1, len(loads)), 1),
        "violations": len(violations),
    }
    record(result)
    assert violations == []
    assert watch.samples > 0


def count_reconciles(prefix: str) -> str:
    return (
        "SELECT count(*) AS n FROM sys_invocation WHERE target_service_name = 'DeploymentReconciler' "
        f"AND target_service_key LIKE '{prefix}-%'"
    )
