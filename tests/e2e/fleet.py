"""One invariant checker for many RestateDeployments at once: the load test's and the soak's.

`FleetWatch` samples, every `interval` seconds and straight from the sources (the bootstrap
Restate's admin API and SQL, the apiserver), every resource in the namespaces whose name starts
with `prefix`, and `violations` states what went wrong:

- no duplicate registration: never two Restate deployments for one URI;
- a version is never deregistered, nor its ReplicaSet scaled below 1, while a `hold` invocation
  pinned to it is unfinished (the drain guarantee; holds the test forfeited by a `forceDrain` are
  exempt, that is what forceDrain is for);
- every hold answered what the test expects of it (`Hold.expect`);
- no retry storm: the highest `retry_count` any unfinished reconcile invocation showed in
  `sys_invocation` stays at most `max_attempts`. Restate counts the attempts of an invocation
  there, the first included (1 = never failed); a completed invocation no longer shows it, so
  the watch samples the unfinished ones, where a storm would be seen backing off again and again.

Each sample reads the registrations and ReplicaSets first and the holds' status after: a hold
unfinished at the second read was unfinished at the first, so a missing registration is a real
violation, never a race. What a sample could not read (Restate or the apiserver killed by the
test) is skipped and not counted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from devstack.stack import Stack
from tests import light
from tests.bench.common import Api
from tests.e2e.versioned import deployments

Obj = dict[str, Any]

RECONCILES_IN_FLIGHT = (
    "SELECT target_service_key AS key, status, retry_count FROM sys_invocation "
    "WHERE target_service_name = 'DeploymentReconciler' AND status != 'completed'"
)


@dataclass
class Hold:
    """A `hold` invocation and what it must answer (`expect(answer)` says whether it is right)."""

    id: str
    expect: Callable[[Any], bool]
    answer: Any = None
    finished: bool = False
    forfeited: bool = False  # its version was forced to drain: losing it is allowed


def uri_parts(uri: str) -> tuple[str, str]:
    """(version, namespace) of a version's registration `http://<version>.<ns>.svc.cluster.local:9080/`."""
    host = uri.split("//", 1)[1].split(":", 1)[0].split("/", 1)[0]
    version, namespace = host.split(".")[:2]
    return version, namespace


@dataclass
class FleetWatch:
    """Watches every resource in the namespaces starting with `prefix`; use as a context manager."""

    stack: Stack
    prefix: str
    max_attempts: int
    interval: float = 2.0
    holds: list[Hold] = field(default_factory=list)
    samples: int = 0
    missed: Counter[str] = field(default_factory=Counter)
    highest_attempt: int = 0
    backing_off_peak: int = 0
    found: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> FleetWatch:
        self._api = Api(self.stack)
        self._thread = threading.Thread(target=self._run, name="fleet-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        self._api.http.close()

    def add(self, hold: Hold) -> None:
        with self._lock:
            self.holds.append(hold)

    def unfinished(self) -> list[Hold]:
        with self._lock:
            return [h for h in self.holds if not h.finished and not h.forfeited]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                # A source did not answer (killed, or busy): nothing seen, nothing counted.
                self.missed[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
            except Exception as exc:  # a bug of the checker must fail the test, not end the watch unseen
                with self._lock:
                    self.found.append(f"the checker broke: {exc!r}")
                raise

    def sample(self) -> None:
        """One look at everything; raises (and counts nothing) when a source does not answer."""
        admin = self.stack.restate.admin_url
        listed = httpx.get(f"{admin}/deployments", timeout=10).raise_for_status().json()["deployments"]
        ours = {d["id"]: d["uri"] for d in listed if uri_parts(d["uri"])[1].startswith(self.prefix)}
        replica_sets = self._api.get("/apis/apps/v1/replicasets")["items"]
        replicas = {
            (rs["metadata"]["namespace"], rs["metadata"]["name"]): int(rs["spec"].get("replicas") or 0)
            for rs in replica_sets
            if rs["metadata"]["namespace"].startswith(self.prefix)
        }
        reconciles = [r for r in light.query(admin, RECONCILES_IN_FLIGHT) if str(r["key"]).startswith(self.prefix)]
        holds = self.unfinished()
        status = self._hold_status(admin, holds)
        now = time.strftime("%H:%M:%S")
        found = [f"{now}: {uri} registered twice" for uri, n in Counter(ours.values()).items() if n > 1]
        for hold in holds:
            row = status.get(hold.id)
            if row is None or row["status"] == "completed":
                continue  # finished (judged by its answer) or not known yet
            pinned = row.get("pinned_deployment_id")
            if not pinned or hold.forfeited:
                continue
            if pinned not in ours:
                found.append(f"{now}: deployment {pinned} deregistered while hold {hold.id} is unfinished")
                continue
            version, namespace = uri_parts(ours[pinned])
            count = replicas.get((namespace, version))
            if count is None or count < 1:
                found.append(f"{now}: {namespace}/{version} at {count} replicas while hold {hold.id} is unfinished")
        with self._lock:
            self.samples += 1
            self.highest_attempt = max([self.highest_attempt, *(int(r.get("retry_count") or 0) for r in reconciles)])
            self.backing_off_peak = max(self.backing_off_peak, sum(r["status"] == "backing-off" for r in reconciles))
            self.found += found
        self._collect(status)

    def _hold_status(self, admin: str, holds: list[Hold]) -> dict[str, Obj]:
        if not holds:
            return {}
        ids = ", ".join(f"'{h.id}'" for h in holds)
        rows = light.query(
            admin, f"SELECT id, status, pinned_deployment_id FROM sys_invocation_status WHERE id IN ({ids})"
        )
        return {str(r["id"]): r for r in rows}

    def _collect(self, status: dict[str, Obj]) -> None:
        """Fetch the answers of the holds that completed since the last sample.

        Restate's ingress answers 404 for the output of a service it no longer knows (every version
        of a deleted resource deregistered), although it keeps the result: such a hold is asked
        again at the next sample, and one never answered stays unfinished, which fails the test."""
        for hold in self.unfinished():
            if (status.get(hold.id) or {}).get("status") != "completed":
                continue
            response = httpx.get(f"{self.stack.restate.ingress_url}/restate/invocation/{hold.id}/output", timeout=30)
            if response.status_code == 404:
                continue
            hold.answer = response.json() if response.status_code == 200 else f"HTTP {response.status_code}"
            hold.finished = True

    def violations(self) -> list[str]:
        """Everything found so far, with the holds' answers and the retry bound judged now."""
        with self._lock:
            found = list(self.found)
            holds = list(self.holds)
        for hold in holds:
            if hold.finished and not hold.expect(hold.answer):
                found.append(f"hold {hold.id} answered {hold.answer!r}")
        if self.highest_attempt > self.max_attempts:
            found.append(f"a reconcile invocation took {self.highest_attempt} attempts (bound {self.max_attempts})")
        return found


def registered_in(stack: Stack, namespace: str) -> list[str]:
    return [d["uri"] for d in deployments(stack).values() if uri_parts(d["uri"])[1] == namespace]


def left_behind(stack: Stack, api: Api, namespace: str) -> list[str]:
    """What of the deleted resources still exists anywhere."""
    found = [
        f"ReplicaSet {rs['metadata']['name']}"
        for rs in api.get(f"/apis/apps/v1/namespaces/{namespace}/replicasets")["items"]
    ]
    found += [f"Service {s['metadata']['name']}" for s in api.get(f"/api/v1/namespaces/{namespace}/services")["items"]]
    found += [f"registration {uri}" for uri in registered_in(stack, namespace)]
    state = light.query(
        stack.restate.admin_url,
        "SELECT service_key, key FROM state WHERE service_name = 'DeploymentReconciler' "
        f"AND service_key LIKE '{namespace}/%'",
    )
    found += [f"reconciler state {r['service_key']} {r['key']}" for r in state]
    return found
