"""Invariants of a rollout under faults, watched while the fault happens and checked after it.

While a version has an unfinished invocation pinned to it, it must stay registered with Restate and
keep its pods; afterwards the invocation must have finished on the version it started on, the
resource must be Ready for its generation, Restate must route to the desired version, and that
version must have been registered once. The watch polls Restate and the apiserver and tolerates
their outages (a fault may be one of them): what it could not see, it does not count.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

from devstack.stack import Stack
from tests.helpers import get


@dataclass
class DrainWatch:
    """Polls, in a thread, whether `version` keeps its registration and pods while `invocation` runs."""

    stack: Stack
    namespace: str
    version: str
    invocation: str
    interval: float = 1.0
    violations: list[str] = field(default_factory=list)
    observations: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> DrainWatch:
        self._thread = threading.Thread(target=self._run, name="drain-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._observe()
            except (httpx.HTTPError, RuntimeError, ValueError, KeyError):
                continue  # Restate or the apiserver is down: nothing seen, nothing counted

    def _observe(self) -> None:
        admin = self.stack.restate.admin_url
        # Its status row, not its output: a deletion deregisters the version the moment the invocation
        # ends, and then Restate no longer serves the output, so a late sample would see a violation.
        query = f"SELECT id FROM sys_invocation_status WHERE id = '{self.invocation}' AND status = 'completed'"
        done = httpx.post(f"{admin}/query", json={"query": query}, headers={"accept": "application/json"}, timeout=5)
        if done.raise_for_status().json()["rows"]:
            self._stop.set()  # finished: from now on the version may go
            return
        listed = httpx.get(f"{admin}/deployments", timeout=5).raise_for_status().json()["deployments"]
        rs = get(self.stack, "rs", self.version, self.namespace)
        if rs is None:
            raise RuntimeError("apiserver not answering")  # or the object is gone: judged below
        self.observations += 1
        now = time.strftime("%H:%M:%S")
        if not any(f"/{self.version}." in d["uri"] for d in listed):
            self.violations.append(f"{now}: {self.version} deregistered while {self.invocation} runs")
        if rs["spec"]["replicas"] == 0:
            self.violations.append(f"{now}: {self.version} scaled to 0 while {self.invocation} runs")
