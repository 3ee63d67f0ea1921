"""The invariants every fault scenario must keep, checked by one watcher over the whole run.

A scenario rolls `Versioned` from v1 to v2 while `hold` invocations run on v1 and the admin API
misbehaves (`devstack.fault_proxy`). `Invariants` samples, every second and straight from the
sources (Restate's admin API directly, never through the proxy; the apiserver), what each
guarantee is about, and `check` states the violations:

- no in-flight invocation lost: every `hold` returns `started on v1, finished on v1`;
- v1 never deregistered, nor its ReplicaSet scaled below 1, while a `hold` on it is unfinished;
- no duplicate registrations: never two Restate deployments for one version's URI;
- Ready ⇒ Restate routes to the desired version: once Ready for v2, `whoami` answers v2.

The recovery time is from the moment the fault ends to Ready for the spec's generation.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from devstack import procs
from devstack.operator import Operator
from devstack.stack import Stack
from tests.e2e.test_rollout import latest_name, rsd
from tests.e2e.versioned import call, deployments, namespace_for, output, phases, pinned, wait_ready
from tests.helpers import apply

Obj = dict[str, Any]


@dataclass
class Sample:
    at: float
    registered: set[str]
    duplicated: list[str]
    replicas: dict[str, int]
    unfinished: int


@dataclass
class Invariants:
    """Watches one namespace's rollout; `start`, then `stop` and `check`."""

    stack: Stack
    namespace: str
    holds: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    _finished: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="invariants", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _watch(self) -> None:
        while not self._stop.is_set():
            # A sample missed (Restate or the apiserver busy) is a sample missed; the next comes in a second.
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, RuntimeError):
                self.samples.append(self._sample())
            self._stop.wait(1.0)

    def _sample(self) -> Sample:
        uris = [d["uri"] for d in deployments(self.stack).values() if f".{self.namespace}.svc" in d["uri"]]
        counts = Counter(uris)
        listed = json.loads(self.stack.control_plane.kubectl("get", "rs", "-n", self.namespace, "-o", "json"))
        replicas = {rs["metadata"]["name"]: int(rs["spec"].get("replicas") or 0) for rs in listed["items"]}
        for hold in self.holds:
            if hold not in self._finished and output(self.stack, hold) is not None:
                self._finished.add(hold)
        return Sample(
            at=time.monotonic(),
            registered={u.split("//", 1)[1].split(".", 1)[0] for u in uris},
            duplicated=[u for u, n in counts.items() if n > 1],
            replicas=replicas,
            unfinished=len(self.holds) - len(self._finished),
        )

    def violations(self, v1: str) -> list[str]:
        found = []
        seen_registered = False
        for s in self.samples:
            seen_registered = seen_registered or v1 in s.registered
            if s.duplicated:
                found.append(f"duplicate registrations of {s.duplicated}")
            if s.unfinished and seen_registered and v1 not in s.registered:
                found.append(f"{v1} deregistered with {s.unfinished} hold(s) unfinished")
            if s.unfinished and s.replicas.get(v1, 1) < 1:
                found.append(f"{v1} scaled to {s.replicas[v1]} with {s.unfinished} hold(s) unfinished")
        for hold in self.holds:
            answer = output(self.stack, hold)
            if answer != "started on v1, finished on v1":
                found.append(f"hold {hold} answered {answer!r}")
        return sorted(set(found))


def routed_to(stack: Stack, version: str) -> bool:
    answer = httpx.post(f"{stack.restate.ingress_url}/Versioned/whoami", timeout=30)
    return answer.status_code == 200 and answer.json() == version


def record(result: dict[str, object]) -> None:
    """Print a scenario's figures; `make chaos` (CHAOS_RESULTS) collects them for docs/reliability.md."""
    print(f"chaos: {json.dumps(result)}")
    if path := os.environ.get("CHAOS_RESULTS"):
        with Path(path).open("a") as out:
            out.write(json.dumps(result) + "\n")


class Proxy(Protocol):
    """A fault proxy (`devstack.fault_proxy`, `devstack.kube_fault_proxy`): switched, and counting."""

    @property
    def seen(self) -> Sequence[object]: ...

    def set(self, fault: Any) -> None: ...

    def met(self, fault: Any) -> Sequence[object]: ...


# From the fault's end to Ready: a pass that failed waits its backoff (30 s, then 60 s) unless a
# watcher event comes first; two backoffs and a pass of margin.
RECOVERY_BOUND = 150.0


def rollout_under_fault(operator: Operator, proxy: Proxy, fault: Any, window: float, admin_url: str) -> Obj:
    """v1 serves two holds; `fault` on; v2 applied; the fault lasts `window` s and ends. Checks every
    invariant, that the services stayed healthy and that the fault was met; returns the figures."""
    stack = operator.stack
    with namespace_for(stack, "chaos", timeout=120) as ns:
        apply(stack, rsd(ns, "v1", stack, register={"url": admin_url}))
        v1 = latest_name(wait_ready(stack, ns, timeout=90))
        invariants = Invariants(stack, ns)
        invariants.start()
        try:
            hold_seconds = window + 15
            invariants.holds += [call(stack, "hold", hold_seconds, send=True).json()["invocationId"] for _ in range(2)]
            for hold in invariants.holds:
                procs.wait_until("the holds run on v1", lambda h=hold: pinned(stack, h), timeout=30)  # type: ignore[misc]
            start = len(proxy.seen)
            proxy.set(fault)
            apply(stack, rsd(ns, "v2", stack, register={"url": admin_url}))
            healthz = f"http://127.0.0.1:{operator.services_probes_port}/healthz"
            procs.holds_for(
                "the operator stays healthy during the fault", lambda: procs.http_ok(healthz), seconds=window
            )
            during = len(proxy.seen) - start
            met = len(proxy.met(fault))
            proxy.set(None)
            cleared = time.monotonic()
            obj = wait_ready(stack, ns, timeout=RECOVERY_BOUND)
            recovery = time.monotonic() - cleared
            v2 = latest_name(obj)
            assert v2 != v1
            assert routed_to(stack, "v2"), "Ready means Restate routes new invocations to the desired version"
            procs.wait_until("v1 drained", lambda: phases(stack, ns).get(v1) == "Drained", timeout=hold_seconds + 90)
        finally:
            invariants.stop()
        assert invariants.violations(v1) == []
        return {
            "scenario": str(fault),
            "window_s": window,
            "recovery_s": round(recovery, 1),
            "faulted_requests": met,
            "requests_per_s": round(during / window, 1),
            "samples": len(invariants.samples),
        }
