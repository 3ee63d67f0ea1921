"""What the benchmarks share: a throwaway stack with the operator, readiness polling, percentiles."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from devstack import tools
from devstack.control_plane import ADMIN_TOKEN
from devstack.operator import Operator
from devstack.stack import Stack


@contextmanager
def running_operator() -> Iterator[Stack]:
    """A fresh stack (control plane, restate-server, pod runner) with services and watcher; stopped after."""
    with tempfile.TemporaryDirectory() as work:
        stack = Stack(Path(work))
        # As the image runs it: its packages only, and the watcher at the chart's log level.
        operator = Operator(stack, python=str(tools.runtime_python()), watcher_env={"LOG_LEVEL": "INFO"})
        try:
            stack.start()
            operator.start()
            yield stack
        finally:
            operator.stop()
            stack.stop()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


RESULTS = Path(os.environ.get("BENCH_RESULTS", Path(__file__).resolve().parents[2] / ".bench"))


def record(name: str, **figures: Any) -> Path:
    """Keep a benchmark's raw figures as `.bench/<name>.json` (BENCH_RESULTS elsewhere) for `tests.bench.plots`."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}))
    return path


def report(label: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{label} over {len(ms)} runs (ms): p50 {percentile(ms, 0.5):.0f}  p95 {percentile(ms, 0.95):.0f}  "
        f"min {min(ms):.0f}  max {max(ms):.0f}"
    )


@contextmanager
def running_stack_and_operator(
    services_env: dict[str, str] | None = None, watcher_env: dict[str, str] | None = None
) -> Iterator[tuple[Stack, Operator]]:
    """As `running_operator`, also handing out the operator (its processes' pids, for CPU and RSS),
    its processes started with `services_env` and `watcher_env` over the usual environment.

    With BENCH_WORK set, the stack lives in a new directory there and is kept afterwards (its logs,
    to see why); a new one each time, as a benchmark with several stacks must not reuse one's etcd."""
    keep = os.environ.get("BENCH_WORK")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(tempfile.mkdtemp(dir=keep)) if keep else tempfile.TemporaryDirectory() as work:
        stack = Stack(Path(work))
        # As the image runs it: its packages only, and the watcher at the chart's log level.
        operator = Operator(
            stack,
            python=str(tools.runtime_python()),
            services_env=services_env or {},
            watcher_env={"LOG_LEVEL": "INFO", **(watcher_env or {})},
        )
        try:
            stack.start()
            operator.start()
            yield stack, operator
        finally:
            operator.stop()
            stack.stop()


class Api:
    """The apiserver over one kept-alive HTTPS connection with the stack's admin token.

    The benchmarks apply, read and watch through it (never kubectl subprocesses, whose start-up
    costs more CPU than what is measured on a 2-core machine), and time the floor with it too."""

    def __init__(self, stack: Stack) -> None:
        cp = stack.control_plane
        self.http = httpx.Client(
            base_url=cp.server,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            verify=ssl.create_default_context(cafile=str(cp.ca_file)),
            timeout=30.0,
        )

    def apply(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of `obj` at its own `path` (field manager `bench`)."""
        response = self.http.patch(
            path,
            params={"fieldManager": "bench", "force": "true"},
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        response.raise_for_status()
        applied: dict[str, Any] = response.json()
        return applied

    def get(self, path: str) -> dict[str, Any]:
        response = self.http.get(path)
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def create_namespace(self, name: str) -> None:
        self.apply(f"/api/v1/namespaces/{name}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def ready_of(obj: dict[str, Any]) -> int | None:
    """The generation `obj` says it is Ready for, or None."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready: dict[str, Any] = next((c for c in conditions if c["type"] == "Ready"), {})
    return int(ready["observedGeneration"]) if ready.get("status") == "True" else None


class ReadyWatch:
    """Watches one collection and notes when each (namespace, name, generation) was first seen Ready.

    A background thread on its own connection: a watch event arrives as the status is written,
    so the figure has no polling interval in it."""

    def __init__(self, stack: Stack, collection: str) -> None:
        self._api, self._collection = Api(stack), collection
        self._seen: dict[tuple[str, str, int], float] = {}
        self._changed = threading.Condition()
        self._stopped = False
        listed = self._api.get(collection)
        for obj in listed["items"]:
            self._note(obj)
        self._thread = threading.Thread(target=self._run, args=(listed["metadata"]["resourceVersion"],), daemon=True)
        self._thread.start()

    def _note(self, obj: dict[str, Any]) -> None:
        generation = ready_of(obj)
        if generation is not None:
            meta = obj["metadata"]
            with self._changed:
                self._seen.setdefault((meta.get("namespace", ""), meta["name"], generation), time.monotonic())
                self._changed.notify_all()

    def _run(self, resource_version: str) -> None:
        while not self._stopped:
            params = {"watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true"}
            try:
                with self._api.http.stream("GET", self._collection, params=params, timeout=None) as stream:
                    for line in stream.iter_lines():
                        event = json.loads(line)
                        resource_version = event["object"]["metadata"].get("resourceVersion", resource_version)
                        if event["type"] in ("ADDED", "MODIFIED"):
                            self._note(event["object"])
            except httpx.HTTPError:
                if not self._stopped:
                    time.sleep(0.1)

    def wait(self, name: str, generation: int, namespace: str = "", timeout: float = 120.0) -> float:
        """The monotonic time `name` was first seen Ready for `generation` (or later), waiting if needed."""
        deadline = time.monotonic() + timeout

        def found() -> float | None:
            times = [t for (ns, n, g), t in self._seen.items() if ns == namespace and n == name and g >= generation]
            return min(times) if times else None

        with self._changed:
            while (at := found()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{namespace}/{name} generation {generation} not Ready in {timeout:.0f} s")
                self._changed.wait(left)
        return at

    def close(self) -> None:
        self._stopped = True
        self._api.http.close()


def tree_pids(pid: int) -> list[int]:
    """`pid` and its descendants (the operator's processes run behind `unshare` and `sh`)."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                queue += [int(c) for c in (task / "children").read_text().split()]
    return pids


def _cpu_ticks(proc: Path) -> int:
    """User + system clock ticks of one process so far (`/proc/<pid>/stat`)."""
    fields = (proc / "stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid`'s process tree so far."""
    total = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            total += _cpu_ticks(Path(f"/proc/{p}"))
    return total / os.sysconf("SC_CLK_TCK")


# Who spends the machine's CPU in a benchmark: a process's group is the first whose mark is in its command line.
CPU_GROUPS = (
    ("services", " -m services"),
    ("watcher", " -m watcher"),
    ("restate-server", "restate-server"),
    ("pod runner", "devstack.pod_runner"),
    ("bench server", "devstack.bench_server"),
    ("benchmark client", "tests.bench."),
    ("kube-apiserver", "kube-apiserver"),
    ("etcd", "/etcd "),
    ("kube-controller-manager", "kube-controller-manager"),
    ("kube-scheduler", "kube-scheduler"),
    ("kwok", "/kwok "),
)


def cpu_by_group() -> dict[str, float]:
    """CPU seconds so far of every process on the machine, summed by `CPU_GROUPS` (the rest as "other"):
    on 2 shared cores, whether the operator is slow or starved is in who else was busy."""
    ticks = os.sysconf("SC_CLK_TCK")
    groups: dict[str, float] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            group = next((name for name, mark in CPU_GROUPS if mark in argv), "other")
            groups[group] = groups.get(group, 0.0) + _cpu_ticks(proc) / ticks
    return groups


def disk_mb(path: Path) -> float:
    """What the files under `path` occupy on disk (as `du`), in MB; files that vanish meanwhile (a
    compaction) are skipped, where `du` would fail the whole count."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total / 1e6


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """The largest `field` (VmRSS now, VmHWM peak) in `pid`'s process tree, in MB."""
    largest = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    largest = max(largest, int(line.split()[1]))
    return largest / 1024
