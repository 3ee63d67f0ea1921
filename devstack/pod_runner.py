"""Run the real process behind simulated pods, and make their Services resolvable.

kwok makes pods Running without running anything. For pods whose image is in `images.IMAGES`
the runner starts the real program on a loopback address of its own (restarting it if it exits,
as a kubelet would), and maps each Service that selects such a pod, and each StatefulSet pod's
`<hostname>.<subdomain>` name, to that address in the stack's hosts file.

Readiness is the process's own (restate-server pods excepted, see `images.runs_process`): kwok
starts such a pod Running but not Ready (the stages written by `control_plane.honest_stages`),
and the runner marks it Ready once the process answers the container's readiness probe (an HTTP
GET or a TCP connect; an exec probe or none: its port), checked every 50 ms until it does (0.5 s
after 5 s), then every `periodSeconds` (default 10); three failures in a row, or the process
exiting, make it NotReady. Pods of the light benchmark image (`images.BENCH_IMAGE`) share one
process, `devstack.bench_server`, a listener each.

A Service with several pods resolves to one of them: the first by name whose process serves (it
answers its readiness probe, checked by the runner for restate-server pods too, whose Ready
condition stays kwok's), else the first by name. So when that pod's process dies, the name moves to
the next serving pod within a sync or two, as a Service drops a NotReady endpoint.

A Job's pod in the restate image (the chart's provisioning Job, which runs `restatectl`) is run
until it exits 0, once, whatever phase kwok shows: kwok completes Job pods at once, without waiting.

The runner syncs (lists pods, Services and claims, and acts on the difference) whenever a watch
on pods or Services reports a change, or a pod's process starts or stops answering, as a kubelet
reacts to its watch; and every `--interval` seconds (1 s) regardless, for what no watch here sees
(a ConfigMap a pod waits for, a claim). Between two syncs it pauses as long as the last one took,
up to 0.3 s. Before, it only polled every 0.3 s: a pod started up to 0.3 s late, and at a few
hundred pods the listing every 0.3 s took much of the machine even when nothing changed.

Limits (documented, not hidden): a Service's port must equal its target port, because a hosts
file maps names, not ports; and a Service resolves to one pod, never spreads over several.

Usage: `python -m devstack.pod_runner --kubeconfig K --hosts-file H --work DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import logging
import os
import random
import re
import signal
import ssl
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from devstack import hosts, images, procs, tools, volumes
from devstack.restate_server import private_hosts_argv
from devstack.tools import REPO

logger = logging.getLogger("pod-runner")

SYNC_BATCH_SECONDS = 0.02
SYNC_PAUSE_MAX_SECONDS = 0.3
STORAGE_CLASS = "standard"  # the stack's default StorageClass (stack.Stack creates it)

Obj = Mapping[str, Any]
PodKey = tuple[str, str, str]  # namespace, name, uid


@dataclass(frozen=True)
class PodPlan:
    """What to run for one pod."""

    key: PodKey
    argv: list[str]
    env: dict[str, str]
    port: int
    restate_server: bool = False
    config_map: str | None = None
    shared: bool = False  # served by the one bench_server process (images.BENCH_IMAGE)
    pod: Obj = field(default_factory=dict, compare=False, repr=False)
    container: Obj = field(default_factory=dict, compare=False, repr=False)


_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_ITEM = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")
# A process here shares the host's network: "all interfaces" means the pod's own address instead.
_ANY_ADDRESS = re.compile(r"^(0\.0\.0\.0|\[::\]):(\d+)$")


def field_value(pod: Obj, path: str, pod_ip: str | None) -> str | None:
    """What the downward API gives for `path` (None when this runner does not know it)."""
    meta, spec = pod["metadata"], pod["spec"]
    simple: dict[str, str | None] = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid"),
        "spec.serviceAccountName": spec.get("service_account_name"),
        "spec.nodeName": spec.get("node_name"),
        "status.podIP": pod_ip,
    }
    if path in simple:
        return simple[path]
    if match := _ITEM.fullmatch(path):
        value = (meta.get(match.group(1)) or {}).get(match.group(2))
        return None if value is None else str(value)
    return None


def container_env(pod: Obj, container: Obj, pod_ip: str | None = None) -> dict[str, str]:
    """Literal values and the downward API, with `$(VAR)` expanded as Kubernetes does."""
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        if entry.get("value") is not None:
            value = _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), entry["value"])
            if pod_ip and (match := _ANY_ADDRESS.match(value)):
                value = f"{pod_ip}:{match.group(2)}"
            env[entry["name"]] = value
        elif ref := ((entry.get("value_from") or {}).get("field_ref") or {}).get("field_path"):
            found = field_value(pod, ref, pod_ip)
            if found is not None:
                env[entry["name"]] = found
    return env


def plan_pod(pod: Obj, table: Mapping[str, list[str]], restate_images: set[str] | None = None) -> PodPlan | None:
    """The process to run for `pod`, or None when it is not ours to run (yet, or ever)."""
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    if meta.get("deletion_timestamp") or status.get("phase") != "Running" or not spec.get("node_name"):
        return None
    key = (meta["namespace"], meta["name"], meta["uid"])
    for container in spec["containers"]:
        env = container_env(pod, container)
        if container["image"] in (restate_images or set()):
            if _owned_by_job(pod):
                return None  # a command, not a node: plan_restate_job
            config = next((v["config_map"]["name"] for v in spec.get("volumes") or [] if v.get("config_map")), None)
            server = [str(tools.restate_server_bin())]
            return PodPlan(key, server, env, 9070, True, config, pod=pod, container=container)
        ports = container.get("ports") or []
        port = int(ports[0]["container_port"]) if ports else 9080
        if container["image"].startswith(images.BENCH_IMAGE + ":"):
            return PodPlan(key, [], env, port, shared=True, pod=pod, container=container)
        argv = table.get(container["image"]) or images.operator_argv(container)
        if argv is None:
            continue
        return PodPlan(key, list(argv), env, port, pod=pod, container=container)
    return None


JOB_RETRY_SECONDS = 2.0  # between attempts of a failed Job pod (a Job's backoff, shortened)


def plan_restate_job(pod: Obj, restate_images: set[str]) -> PodPlan | None:
    """The command of a Job's pod in the restate image (the chart's `restatectl provision` loop), if it is one.

    It runs with this stack's restatectl first on PATH, as the image has it on its own."""
    meta, spec = pod["metadata"], pod["spec"]
    if meta.get("deletion_timestamp") or not _owned_by_job(pod) or not spec.get("node_name"):
        return None
    for container in spec["containers"]:
        command = [*(container.get("command") or []), *(container.get("args") or [])]
        if container["image"] in restate_images and command:
            key = (meta["namespace"], meta["name"], meta["uid"])
            path = f"{tools.restatectl_bin().parent}{os.pathsep}{os.environ.get('PATH', '')}"
            env = {**container_env(pod, container), "PATH": path}
            return PodPlan(key, command, env, 0, pod=pod, container=container)
    return None


def _owned_by_job(pod: Obj) -> bool:
    return any(ref.get("kind") == "Job" for ref in pod["metadata"].get("owner_references") or [])


@dataclass(frozen=True)
class Probe:
    """What a kubelet would check for readiness: an HTTP GET of `path` on `port`, or a TCP connect."""

    port: int
    path: str | None = None
    https: bool = False


def readiness_probe(container: Obj, default_port: int) -> Probe:
    """The container's readiness probe as this runner checks it (exec probes and none: `default_port`)."""
    probe = container.get("readiness_probe") or {}
    check = probe.get("http_get") or probe.get("tcp_socket")
    if not check:
        return Probe(default_port)
    port = check["port"]
    if isinstance(port, str) and not port.isdigit():
        named = [p["container_port"] for p in container.get("ports") or [] if p.get("name") == port]
        port = named[0] if named else default_port
    if probe.get("http_get"):
        return Probe(int(port), check.get("path") or "/", (check.get("scheme") or "HTTP").upper() == "HTTPS")
    return Probe(int(port))


PROBE_TIMEOUT = 1.0  # seconds, a kubelet's default timeoutSeconds


async def answers(probe: Probe, ip: str) -> bool:
    """Whether the process at `ip` passes `probe` now (HTTP: a status from 200 to 399)."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if probe.https else None
    if tls:
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # as a kubelet: no verification
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            reader, writer = await asyncio.open_connection(ip, probe.port, ssl=tls)
            try:
                if probe.path is None:
                    return True
                writer.write(f"GET {probe.path} HTTP/1.0\r\nHost: {ip}:{probe.port}\r\n\r\n".encode())
                status = (await reader.readline()).split()
                return len(status) >= 2 and status[1].isdigit() and 200 <= int(status[1]) < 400
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, ssl.SSLError):
        return False


def ready_status(pod: Obj, ready: bool, now: str) -> dict[str, Any]:
    """The status patch (strategic merge) that makes `pod` Ready or not, as a kubelet writes it."""
    value = "True" if ready else "False"
    return {
        "status": {
            "conditions": [
                {"type": kind, "status": value, "lastTransitionTime": now} for kind in ("Ready", "ContainersReady")
            ],
            # The list has no merge key: each entry is written whole, as kwok wrote it but for `ready`.
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "ready": ready,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for c in pod["spec"]["containers"]
            ],
        }
    }


def _selects(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    return bool(selector) and all((labels or {}).get(k) == v for k, v in (selector or {}).items())


def host_entries(
    services: Sequence[Obj], pods: Sequence[Obj], addresses: Mapping[PodKey, str], serving: Set[PodKey] = frozenset()
) -> dict[str, str]:
    """Host name -> loopback address, for each Service and StatefulSet pod name backed by a process.

    A Service names its first backing pod in `serving` (its process answers its readiness probe),
    or its first backing pod when none serves, so that the name still resolves during an outage."""
    entries: dict[str, str] = {}
    served = sorted(
        (p for p in pods if _key(p) in addresses),
        key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]),
    )
    for svc in services:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        selector = (svc.get("spec") or {}).get("selector")
        backing = [
            p for p in served if p["metadata"]["namespace"] == ns and _selects(selector, p["metadata"].get("labels"))
        ]
        if backing:
            chosen = next((p for p in backing if _key(p) in serving), backing[0])
            ip = addresses[_key(chosen)]
            for host in (f"{name}.{ns}.svc.cluster.local", f"{name}.{ns}.svc", f"{name}.{ns}"):
                entries[host] = ip
    for pod in served:
        spec, ns = pod["spec"], pod["metadata"]["namespace"]
        if spec.get("hostname") and spec.get("subdomain"):
            for host in (
                f"{spec['hostname']}.{spec['subdomain']}.{ns}.svc.cluster.local",
                f"{spec['hostname']}.{spec['subdomain']}",
            ):  # as a pod would resolve it in its namespace
                entries[host] = addresses[_key(pod)]
    return entries


def _key(pod: Obj) -> PodKey:
    meta = pod["metadata"]
    return meta["namespace"], meta["name"], meta["uid"]


class AddressPool:
    """Loopback addresses 127.B.x.y, with B random per runner so two stacks on one machine do not collide."""

    def __init__(self) -> None:
        self._octet = random.randint(16, 250)
        self._next = 0

    def take(self) -> str:
        n = self._next
        self._next += 1
        return f"127.{self._octet}.{n // 250}.{n % 250 + 1}"


class Running(Protocol):
    """What the runner keeps of a started pod: a process of its own, or its share of the bench server."""

    @property
    def pid(self) -> int: ...

    def alive(self) -> bool: ...

    def stop(self) -> None: ...


class BenchServer:
    """The one process serving every pod of the light benchmark image, steered by its table file."""

    def __init__(self, work: Path) -> None:
        self.table_file, self.log_dir = work / "bench-server.json", work / "pods"
        self.table: dict[str, list[str]] = {}
        self.process: procs.Process | None = None

    def add(self, address: str, service: str, version: str) -> SharedPod:
        if self.process is None or not self.process.alive():
            self.table_file.write_text("{}")
            argv = [sys.executable, "-m", "devstack.bench_server", "--table", str(self.table_file)]
            self.process = procs.start("bench-server", argv, log_dir=self.log_dir, cwd=REPO)
        self.table[address] = [service, version]
        self._write()
        return SharedPod(self, address, self.process)

    def remove(self, address: str) -> None:
        if self.table.pop(address, None) is not None:
            self._write()

    def _write(self) -> None:
        partial = self.table_file.with_suffix(".partial")
        partial.write_text(json.dumps(self.table))
        partial.replace(self.table_file)  # the server never reads half a table

    def stop(self) -> None:
        if self.process:
            self.process.stop()


@dataclass
class SharedPod:
    server: BenchServer
    address: str
    process: procs.Process

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.alive() and self.address in self.server.table

    def stop(self) -> None:
        self.server.remove(self.address)


class PodRunner:
    def __init__(self, api: client.CoreV1Api, hosts_file: Path, work: Path, apiserver: tuple[str, int]) -> None:
        self.api, self.hosts_file, self.work, self.apiserver = api, hosts_file, work, apiserver
        self.pool = AddressPool()
        self.running: dict[PodKey, tuple[PodPlan, str, Running]] = {}
        self.bench = BenchServer(work)
        self.addresses: dict[PodKey, str] = {}
        self.created_dirs: list[Path] = []
        self.waiting: dict[PodKey, str] = {}
        self.readiness: dict[PodKey, asyncio.Task[None]] = {}
        self.serving: set[PodKey] = set()  # pods whose process answers its readiness probe now
        self.mapped: set[PodKey] = set()  # pods whose address the hosts file had at its last write
        self.hosts_written = asyncio.Event()  # set (and replaced) at each write of the hosts file
        self.commands: dict[PodKey, tuple[procs.Process, float]] = {}  # restate Job pods: process, start
        self.completed: set[PodKey] = set()
        self.wake = asyncio.Event()  # something a sync acts on may have changed: sync now

    async def follow(self, list_all: Callable[..., Awaitable[Any]]) -> None:
        """Wake the sync loop on every change of what `list_all` lists, as a kubelet reacts to its
        watch: a pod is started, and a Service mapped, within moments instead of at the next poll."""
        while True:
            try:
                async with watch.Watch() as stream:
                    async for _ in stream.stream(list_all, timeout_seconds=300, _request_timeout=330):
                        self.wake.set()
            except Exception as exc:  # the poll goes on meanwhile; try again shortly
                logger.info("watch %s ended (%s); again in 1 s", getattr(list_all, "__name__", "?"), exc)
                await asyncio.sleep(1)

    async def provision(self) -> None:
        """Play a hostPath provisioner for claims of the stack's default StorageClass (kwok has none)."""
        claims = (await self.api.list_persistent_volume_claim_for_all_namespaces()).items
        for claim in claims:
            if (
                claim.spec.storage_class_name != STORAGE_CLASS
                or claim.spec.volume_name
                or claim.status.phase != "Pending"
            ):
                continue
            meta = claim.metadata
            name = f"pvc-{meta.uid}"
            volume = {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name},
                "spec": {
                    "capacity": {"storage": claim.spec.resources.requests["storage"]},
                    "accessModes": claim.spec.access_modes,
                    "storageClassName": STORAGE_CLASS,
                    "persistentVolumeReclaimPolicy": "Delete",
                    "hostPath": {"path": str(self.work / "volumes" / name)},
                    "claimRef": {"namespace": meta.namespace, "name": meta.name, "uid": meta.uid},
                },
            }
            with contextlib.suppress(ApiException):  # already created by an earlier pass
                await self.api.create_persistent_volume(volume)
                logger.info("provisioned %s for %s/%s", name, meta.namespace, meta.name)

    async def sync(self) -> None:
        await self.provision()
        pods = [p.to_dict() for p in (await self.api.list_pod_for_all_namespaces()).items]
        services = [s.to_dict() for s in (await self.api.list_service_for_all_namespaces()).items]
        plans = {plan.key: plan for pod in pods if (plan := plan_pod(pod, images.IMAGES, images.RESTATE_IMAGES))}
        for key in [k for k in self.running if k not in plans]:
            await self._stop(key)
        for key, plan in plans.items():
            current = self.running.get(key)
            if current is None:
                if key not in self.addresses:
                    self.addresses[key] = self.pool.take()
                await self._start(plan, self.addresses[key])
            elif not current[2].alive():
                logger.warning("%s/%s exited; restarting", key[0], key[1])
                await self._start(plan, current[1])
        restate_images = images.RESTATE_IMAGES
        self._run_commands([plan for pod in pods if (plan := plan_restate_job(pod, restate_images))])
        addresses = {key: ip for key, (_, ip, _) in self.running.items()}
        if hosts.write_in_place(self.hosts_file, host_entries(services, pods, addresses, self.serving)):
            logger.info("hosts file updated")
        self.mapped = set(addresses)
        self.hosts_written.set()
        self.hosts_written = asyncio.Event()
        self._write_state()

    async def _start(self, plan: PodPlan, ip: str) -> None:
        """Start the pod's process as a kubelet would: its volumes mounted, its env resolved, in-cluster config."""
        ns, name, _ = plan.key
        try:
            mounts = await volumes.materialise(
                self.api, plan.pod, plan.container, self.work / "volumes" / f"{ns}_{name}"
            )
        except volumes.NotYet as exc:
            if self.waiting.get(plan.key) != str(exc):
                logger.info("%s/%s waits: %s", ns, name, exc)
                self.waiting[plan.key] = str(exc)
            return
        self.waiting.pop(plan.key, None)
        missing = [d for d in volumes.missing_dirs(mounts) if d not in self.created_dirs]
        volumes.create_dirs(missing)
        self.created_dirs += missing
        host, port = self.apiserver
        env = {
            "BIND_HOST": ip,
            "PORT": str(plan.port),
            "POD_NAME": name,
            "POD_NAMESPACE": ns,
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": str(port),
            **container_env(plan.pod, plan.container, ip),
        }
        if plan.restate_server:
            env.update(await self._restate_env(plan, ip))
        process: Running
        if plan.shared:
            version = plan.container["image"].rsplit(":", 1)[1]
            process = self.bench.add(f"{ip}:{plan.port}", env.get("SERVICE_NAME", "Bench"), version)
        else:
            # Every pod resolves Service names through the stack's hosts file and sees its own volumes.
            argv = private_hosts_argv(self.hosts_file, plan.argv, [(m.source, m.target) for m in mounts])
            process = procs.start(f"{ns}_{name}", argv, log_dir=self.work / "pods", env=env, cwd=REPO)
        logger.info("started %s/%s on %s:%d (pid %d)", ns, name, ip, plan.port, process.pid)
        self.running[plan.key] = (plan, ip, process)
        restarted = self._stop_probing(plan.key)
        # kwok made restate-server pods Ready already: their probe only decides where Services point
        reports = images.runs_process(plan.container["image"])
        self.readiness[plan.key] = asyncio.create_task(self._probe(plan, ip, process, restarted and reports, reports))

    async def _probe(self, plan: PodPlan, ip: str, process: Running, ready: bool, reports: bool) -> None:
        """Follow the process's readiness: fast until it answers, then every period; with `reports`,
        as the pod's Ready condition too.

        `ready` is what the pod may show now (after a restart: still Ready, until three failures).
        A process that exits makes its pod NotReady within half a second, as a kubelet would."""
        probe = readiness_probe(plan.container, plan.port)
        period = float((plan.container.get("readiness_probe") or {}).get("period_seconds") or 10)
        failures, started = 0, asyncio.get_running_loop().time()
        self._set_serving(plan.key, ready)
        while process.alive():
            ok = await answers(probe, ip)
            failures = 0 if ok else failures + 1
            if ok != ready and (ok or failures >= 3):
                ready = ok
                self._set_serving(plan.key, ready)
                if reports:
                    if ready:
                        await self._mapped(plan.key)
                    await self._set_ready(plan, ready)
            if not ready:
                await asyncio.sleep(0.05 if asyncio.get_running_loop().time() - started < 5 else 0.5)
                continue
            for _ in range(int(period / 0.5)):
                if not process.alive():
                    break
                await asyncio.sleep(0.5)
        self._set_serving(plan.key, False)
        if ready and reports:
            await self._set_ready(plan, False)

    async def _mapped(self, key: PodKey) -> None:
        """Until the hosts file names the pod's address: a pod Ready before its Service resolves
        would have Restate fail to look its name up, which no real cluster does (its Service's
        DNS name exists with the Service). Only ours: a sync is very long with hundreds of pods."""
        while key not in self.mapped:
            await self.hosts_written.wait()

    def _set_serving(self, key: PodKey, serving: bool) -> None:
        if (key in self.serving) != serving:
            self.wake.set()  # a Service may now resolve to another pod; an exited process is restarted
        (self.serving.add if serving else self.serving.discard)(key)

    async def _set_ready(self, plan: PodPlan, ready: bool) -> None:
        ns, name, _ = plan.key
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            await self.api.patch_namespaced_pod_status(name, ns, ready_status(plan.pod, ready, now))
            logger.info("%s/%s is %s", ns, name, "Ready" if ready else "not Ready")
        except ApiException as exc:
            if exc.status != 404:  # a pod deleted meanwhile needs no status
                logger.warning("%s/%s: setting Ready=%s failed: %s", ns, name, ready, exc.reason)

    def _run_commands(self, plans: Sequence[PodPlan]) -> None:
        """Run each restate Job pod until it exits 0, retrying a failure after a pause, once per pod."""
        now = asyncio.get_running_loop().time()
        for plan in plans:
            ns, name, _ = plan.key
            if plan.key in self.completed:
                continue
            process, started = self.commands.get(plan.key, (None, 0.0))
            if process is not None and process.alive():
                continue
            if process is not None and process.popen.returncode == 0:
                logger.info("%s/%s: its command succeeded", ns, name)
                self.completed.add(plan.key)
                continue
            if process is not None and now - started < JOB_RETRY_SECONDS:
                continue
            if process is not None:
                logger.info("%s/%s exited %s; retrying", ns, name, process.popen.returncode)
            argv = private_hosts_argv(self.hosts_file, plan.argv)
            started_process = procs.start(f"{ns}_{name}", argv, log_dir=self.work / "pods", env=plan.env, cwd=REPO)
            self.commands[plan.key] = (started_process, now)

    def _stop_probing(self, key: PodKey) -> bool:
        """Stop checking the pod's readiness; whether it was being checked."""
        self.serving.discard(key)
        task = self.readiness.pop(key, None)
        if task:
            task.cancel()
        return task is not None

    async def _restate_env(self, plan: PodPlan, ip: str) -> dict[str, str]:
        """What a kubelet would provide that a process here needs: the mounted config, a data dir, its own address."""
        ns, name, _ = plan.key
        home = self.work / "pods" / f"{ns}_{name}"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "RESTATE_BASE_DIR": str(home / "data"),
            "RESTATE_LISTEN_MODE": "tcp",
            "RESTATE_BIND_ADDRESS": f"{ip}:5122",
            "RESTATE_INGRESS__BIND_ADDRESS": f"{ip}:8080",
            "RESTATE_ADMIN__BIND_ADDRESS": f"{ip}:9070",
            "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "128 MB",
            "RESTATE_DISABLE_TELEMETRY": "true",
            "RESTATE_LOG_FORMAT": "pretty",
            "RESTATE_LOG_DISABLE_ANSI_CODES": "true",
        }
        if plan.config_map:
            config_map = await self.api.read_namespaced_config_map(plan.config_map, ns)
            (home / "config.toml").write_text((config_map.data or {}).get("config.toml", ""))
            env["RESTATE_CONFIG"] = str(home / "config.toml")
        return env

    async def _stop(self, key: PodKey) -> None:
        self.addresses.pop(key, None)
        self._stop_probing(key)
        _, ip, process = self.running.pop(key)
        logger.info("stopping %s/%s on %s (pid %d)", key[0], key[1], ip, process.pid)
        await asyncio.to_thread(process.stop)

    def _write_state(self) -> None:
        state = [
            {"namespace": k[0], "name": k[1], "ip": ip, "port": plan.port, "pid": p.pid, "alive": p.alive()}
            for k, (plan, ip, p) in sorted(self.running.items())
        ]
        # Replaced, not rewritten: readers (the chart helper, the Knative data plane, the Restate Cloud
        # double) must never see it empty half-way.
        scratch = self.work / "state.json.tmp"
        scratch.write_text(json.dumps(state, indent=2))
        scratch.replace(self.work / "state.json")

    async def stop_all(self) -> None:
        await asyncio.gather(*(self._stop(key) for key in list(self.running)))
        for process, _ in self.commands.values():
            await asyncio.to_thread(process.stop)
        self.bench.stop()
        volumes.remove_created_dirs(self.created_dirs)


async def main(kubeconfig: Path, hosts_file: Path, work: Path, interval: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Pods authenticate as their ServiceAccount (in-cluster config), never with the runner's kubeconfig.
    os.environ.pop("KUBECONFIG", None)
    api_client = await config.new_client_from_config(config_file=str(kubeconfig))
    server = urllib.parse.urlsplit(str(api_client.configuration.host))
    apiserver = (server.hostname or "127.0.0.1", server.port or 443)
    core = client.CoreV1Api(api_client)
    runner = PodRunner(core, hosts_file, work, apiserver)
    lists = (core.list_pod_for_all_namespaces, core.list_service_for_all_namespaces)
    followers = [asyncio.create_task(runner.follow(list_all)) for list_all in lists]
    stopping = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            runner.wake.clear()
            started = loop.time()
            try:
                await runner.sync()
            except Exception:
                logger.exception("sync failed; retrying")
            took = loop.time() - started
            woken = asyncio.create_task(runner.wake.wait())
            await asyncio.wait({stopping, woken}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            # The rest of a burst joins the next sync. With hundreds of pods a sync takes a while:
            # pausing as long again (up to the old 0.3 s poll) leaves the operator some of the CPU.
            await asyncio.sleep(min(max(SYNC_BATCH_SECONDS, took), SYNC_PAUSE_MAX_SECONDS))
    finally:
        for task in (*followers, stopping):
            task.cancel()
        await runner.stop_all()
        await api_client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--hosts-file", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between syncs when no watch event wakes one earlier"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(args.kubeconfig, args.hosts_file, args.work, args.interval))
