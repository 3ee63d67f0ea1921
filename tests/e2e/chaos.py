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
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from devstack.stack import Stack
from tests.e2e.versioned import NAME, deployments, output

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


def rsd(namespace: str, tag: str, admin_url: str, image: str) -> Obj:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {
                    "containers": [
                        {"name": NAME, "image": f"{image}:{tag}", "ports": [{"name": "restate", "containerPort": 9080}]}
                    ]
                },
            },
            "restate": {"register": {"url": admin_url}, "drainDelaySeconds": 1},
        },
    }
