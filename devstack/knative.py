"""The real Knative Serving controller on the local stack, with only its data plane played.

`Knative(stack).start()` installs Knative Serving's CRDs and ConfigMaps (from the cached build of
`build-knative.sh`) and runs its controller (`knative/main.go`: the upstream reconcilers), so a
Configuration really becomes a Revision, a Deployment and pods (kwok's; the pod runner runs the
user container's SDK process), and a Route really becomes a KIngress. What has no process here is
played by `DataPlane`, a thread in this process:

- the autoscaler: each PodAutoscaler is marked initialized and Ready once its Deployment has a
  ready pod (the status `cmd/autoscaler` would write), which makes the Revision Ready;
- the networking layer: each KIngress whose generation is not yet observed is marked Ready with
  load balancers (what net-istio/kourier would write) once its hosts are routable, which makes the
  Route Ready. Routable means: every rule host (`<route>.<ns>.svc.cluster.local`, tag hosts ...) is
  mapped in the stack's hosts file to the loopback address of a ready pod of the split's revision
  that the pod runner runs, and port 80 there forwards to the SDK's port. So a Route's URL reaches
  the revision's process from restate-server, and follows the Route when it moves to a new revision.

Not played: the activator (no scale from zero), the webhook (no validation beyond the CRD schemas,
no defaulting but what the controller applies itself; PodAutoscalers get no class annotation) and
weighted traffic splitting (a host maps to its biggest split's revision).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config

from devstack import hosts, images, procs, tools
from devstack.background import BackgroundLoop
from devstack.pod_runner import plan_pod
from devstack.stack import Stack

logger = logging.getLogger("knative-data-plane")

NAMESPACE = "knative-serving"
HOSTS_OWNER = "knative data plane"
ROUTE_PORT = 80  # a Route URL has no port: http://<route>.<ns>.svc.cluster.local
# A Revision pod's second container; never run (the pod runner knows no such image), never pulled.
QUEUE_SIDECAR_IMAGE = "restate-operator.local/knative/queue-proxy:v0.42.2"
LOAD_BALANCER = f"knative-data-plane.{NAMESPACE}.svc.cluster.local"
# One Lease per reconciler registered in knative/main.go; all held means the controller is up.
RECONCILER_LEASES = 9
REVISION_LABEL = "serving.knative.dev/revision"
PA = ("autoscaling.internal.knative.dev", "v1alpha1", "podautoscalers")
KINGRESS = ("networking.internal.knative.dev", "v1alpha1", "ingresses")

Obj = Mapping[str, Any]
RevisionKey = tuple[str, str]  # namespace, revision name


def image_registry(image: str) -> str:
    """The registry as Knative's skip list compares it (go-containerregistry's `RegistryStr`)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return "index.docker.io" if first == "docker.io" else first
    return "index.docker.io"


def skipped_registries(known: Iterable[str]) -> str:
    """`registries-skipping-tag-resolving`: Knative's defaults plus the registries of the images we run.

    Resolving a tag to a digest needs the registry; offline it fails, and the failure sticks to the Revision.
    """
    return ",".join(sorted({"kind.local", "ko.local", "dev.local", *(image_registry(i) for i in known)}))


def config_overrides() -> dict[str, dict[str, str]]:
    """ConfigMap data the stack sets over the shipped examples (which only document the defaults)."""
    known = [*images.IMAGES, *images.RESTATE_IMAGES, f"{images.OPERATOR_IMAGE}:latest"]
    return {
        "config-deployment": {
            "registries-skipping-tag-resolving": skipped_registries(known),
            "queue-sidecar-image": QUEUE_SIDECAR_IMAGE,
        },
        # A controller killed without releasing its Leases blocks the next one for lease-duration.
        "config-leader-election": {"lease-duration": "15s", "renew-deadline": "10s", "retry-period": "2s"},
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(status: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in status.get("conditions") or []}


def _condition(type_: str, ok: bool, previous: Mapping[str, Obj], now: str, reason: str = "") -> dict[str, str]:
    """A condition; its lastTransitionTime moves only when its status does."""
    status = "True" if ok else "False"
    old = previous.get(type_)
    since = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now
    return {"type": type_, "status": status, "lastTransitionTime": since, **({"reason": reason} if reason else {})}


def _essence(status: Obj) -> tuple[object, ...]:
    conditions = sorted((c["type"], c.get("status"), c.get("reason", "")) for c in status.get("conditions") or [])
    keys = ("observedGeneration", "serviceName", "metricsServiceName", "desiredScale", "actualScale")
    return (*(status.get(k) for k in keys), tuple(conditions))


def pa_status(pa: Obj, deployment: Obj | None, now: str) -> dict[str, Any] | None:
    """The status the autoscaler would give `pa` (its Deployment `deployment`), or None when none is due.

    None while the Deployment has no ready pod yet (the autoscaler would still be initializing), and
    when the PA already has this status. Once initialized it stays so; Active follows the ready pods.
    """
    if deployment is None:
        return None
    meta, current = pa["metadata"], pa.get("status") or {}
    previous = _conditions(current)
    want = int((deployment.get("spec") or {}).get("replicas") or 0)
    ready = int((deployment.get("status") or {}).get("ready_replicas") or 0)
    initialized = previous.get("ScaleTargetInitialized", {}).get("status") == "True"
    if not (initialized or ready > 0 or want == 0):
        return None
    active = ready > 0
    status = {
        "observedGeneration": meta.get("generation"),
        "serviceName": meta["name"],
        "metricsServiceName": f"{meta['name']}-private",
        "desiredScale": want,
        "actualScale": ready,
        "conditions": [
            _condition("Active", active, previous, now, "" if active else "NoTraffic"),
            _condition("ScaleTargetInitialized", True, previous, now),
            _condition("SKSReady", True, previous, now),
            _condition("Ready", active, previous, now, "" if active else "NoTraffic"),
        ],
    }
    return None if _essence(status) == _essence(current) else status


def kingress_needs_status(kingress: Obj) -> bool:
    """The networking layer has not yet reported on this generation (each Route change bumps it)."""
    return bool((kingress.get("status") or {}).get("observedGeneration") != kingress["metadata"].get("generation"))


def kingress_status(kingress: Obj, now: str) -> dict[str, Any]:
    """Ready with load balancers: the Route needs `privateLoadBalancer` to point its placeholder Service."""
    previous = _conditions(kingress.get("status") or {})
    balancer = {"ingress": [{"domainInternal": LOAD_BALANCER}]}
    return {
        "observedGeneration": kingress["metadata"].get("generation"),
        "privateLoadBalancer": balancer,
        "publicLoadBalancer": balancer,
        "conditions": [_condition(t, True, previous, now) for t in ("LoadBalancerReady", "NetworkConfigured", "Ready")],
    }


def _splits(path: Obj) -> list[Obj]:
    return list(path.get("splits") or [])


def kingress_routes(kingress: Obj) -> dict[str, RevisionKey]:
    """Rule host -> the revision its default path sends most traffic to (Knative names the split's Service after it)."""
    routes: dict[str, RevisionKey] = {}
    for rule in (kingress.get("spec") or {}).get("rules") or []:
        paths = (rule.get("http") or {}).get("paths") or []
        default = next((p for p in paths if not p.get("headers")), paths[0] if paths else None)
        splits = _splits(default) if default else []
        if not splits:
            continue
        top = max(splits, key=lambda s: int(s.get("percent") or 0))
        target = (top.get("serviceNamespace") or kingress["metadata"]["namespace"], top["serviceName"])
        for host in rule.get("hosts") or []:
            routes[host] = target
    return routes


def kingress_revisions(kingress: Obj) -> set[RevisionKey]:
    """Every revision any split of any rule of `kingress` sends traffic to."""
    ns = kingress["metadata"]["namespace"]
    return {
        (split.get("serviceNamespace") or ns, split["serviceName"])
        for rule in (kingress.get("spec") or {}).get("rules") or []
        for path in (rule.get("http") or {}).get("paths") or []
        for split in _splits(path)
    }


@dataclass(frozen=True)
class Backend:
    """Where a revision's SDK process listens: its pod's loopback address and the user container's port."""

    ip: str
    port: int


def _pod_ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )


def revision_backends(
    pods: Sequence[Obj], runner_state: Sequence[Obj]
) -> tuple[dict[RevisionKey, Backend], set[RevisionKey]]:
    """The process of a ready pod per revision (the first by name), and the revisions whose pods the runner runs.

    A revision in the second set but not the first has a pod the runner will run but does not yet;
    a revision in neither has only pods kwok simulates, which nothing can reach.
    """
    running = {(p["namespace"], p["name"]): p for p in runner_state if p.get("alive")}
    backends: dict[RevisionKey, Backend] = {}
    runnable: set[RevisionKey] = set()
    for pod in sorted(pods, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])):
        meta = pod["metadata"]
        revision = (meta.get("labels") or {}).get(REVISION_LABEL)
        if not revision or meta.get("deletion_timestamp") or not _pod_ready(pod):
            continue
        key = (meta["namespace"], revision)
        if plan_pod(pod, images.IMAGES, images.RESTATE_IMAGES) is not None:
            runnable.add(key)
        process = running.get((meta["namespace"], meta["name"]))
        if process is not None and key not in backends:
            backends[key] = Backend(process["ip"], int(process["port"]))
    return backends, runnable


def route_entries(kingresses: Sequence[Obj], serving: Mapping[RevisionKey, Backend]) -> dict[str, str]:
    """Host name -> loopback address, for each KIngress host whose revision has a serving process."""
    entries: dict[str, str] = {}
    for kingress in kingresses:
        for host, revision in kingress_routes(kingress).items():
            if revision in serving:
                entries[host] = serving[revision].ip
    return entries


def kingress_routable(kingress: Obj, serving: Mapping[RevisionKey, Backend], runnable: set[RevisionKey]) -> bool:
    """Every revision of `kingress` is reachable, or is one the runner does not run (kwok only: nothing to reach)."""
    return all(r in serving or r not in runnable for r in kingress_revisions(kingress))


class Forwarder:
    """`listen` -> `target` byte for byte, so any protocol (h2c included) passes; stopping cuts open connections.

    Cutting them is what a moved Route does to its clients: they reconnect and resolve the host anew.
    """

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen, self.target = listen, target
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._handle, *self.listen)
        except PermissionError as exc:
            raise PermissionError(
                f"cannot listen on {self.listen[0]}:{self.listen[1]}: a Route's port 80 needs root,"
                " CAP_NET_BIND_SERVICE or a lower net.ipv4.ip_unprivileged_port_start"
            ) from exc

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.open_connection(*self.target)
            self._writers.add(upstream)
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except OSError:
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self._writers.discard(w)
                    w.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await self._server.wait_closed()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except OSError:
        sink.transport.abort()


async def _accepting(backend: Backend) -> bool:
    """The SDK process listens (what the queue-proxy's default TCP readiness probe checks)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(backend.ip, backend.port), 0.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class DataPlane(BackgroundLoop):
    """The autoscaler and the networking layer, played by a thread named `knative-data-plane` (see the module doc).

    It polls, like the pod runner, every `interval` seconds: the pod runner's `state.json` (which pod
    runs on which address and port) changes without any Kubernetes event to watch.
    """

    name = "knative-data-plane"

    def __init__(self, kubeconfig: Path, hosts_file: Path, runner_state: Path, log_file: Path, interval: float = 0.3):
        super().__init__(log_file, logger)
        self.kubeconfig = kubeconfig
        self.hosts_file = hosts_file
        self.runner_state = runner_state  # the pod runner's state.json: which pod runs on which address and port
        self.interval = interval
        self.passes = self.errors = 0
        self._forwarders: dict[Backend, Forwarder] = {}
        self._accepting: set[Backend] = set()

    async def _main(self) -> None:
        assert self._stop is not None
        api = await config.new_client_from_config(config_file=str(self.kubeconfig))
        try:
            self._ready()
            while not self._stop.is_set():
                try:
                    await self._pass(client.CustomObjectsApi(api), client.AppsV1Api(api), client.CoreV1Api(api))
                    self.passes += 1
                except Exception:
                    self.errors += 1
                    logger.exception("pass failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)
        finally:
            with contextlib.suppress(OSError):
                hosts.write_in_place(self.hosts_file, {}, owner=HOSTS_OWNER)
            await asyncio.gather(*(f.stop() for f in self._forwarders.values()))
            self._forwarders.clear()
            await api.close()

    async def _pass(self, custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
        pas = (await custom.list_cluster_custom_object(*PA))["items"]
        kingresses = (await custom.list_cluster_custom_object(*KINGRESS))["items"]
        if pas:
            await self._play_autoscaler(custom, apps, pas)
        pods = []
        if kingresses:
            listed = await core.list_pod_for_all_namespaces(label_selector=REVISION_LABEL)
            pods = [p.to_dict() for p in listed.items]
        await self._play_network(custom, kingresses, pods)

    async def _play_autoscaler(self, custom: client.CustomObjectsApi, apps: client.AppsV1Api, pas: list[Obj]) -> None:
        listed = await apps.list_deployment_for_all_namespaces(label_selector=REVISION_LABEL)
        deployments = {(d.metadata.namespace, d.metadata.name): d.to_dict() for d in listed.items}
        now = _now()
        for pa in pas:
            meta = pa["metadata"]
            target = (pa.get("spec") or {}).get("scaleTargetRef") or {}
            status = pa_status(pa, deployments.get((meta["namespace"], target.get("name", ""))), now)
            if status is not None:
                await _write_status(custom, PA, pa, status)
                logger.info("PodAutoscaler %s/%s: %s", meta["namespace"], meta["name"], _summary(status))

    async def _play_network(self, custom: client.CustomObjectsApi, kingresses: list[Obj], pods: list[Obj]) -> None:
        backends, runnable = revision_backends(pods, self._read_runner_state())
        candidates = set(backends.values())
        self._accepting &= candidates
        for backend in candidates - self._accepting:
            if await _accepting(backend):
                self._accepting.add(backend)
        serving = {key: b for key, b in backends.items() if b in self._accepting}
        entries = route_entries(kingresses, serving)
        mapped = {b for b in serving.values() if b.ip in entries.values()}
        # Listen before the names resolve there, and unmap before the listener goes.
        for backend in mapped - self._forwarders.keys():
            forwarder = Forwarder((backend.ip, ROUTE_PORT), (backend.ip, backend.port))
            await forwarder.start()
            self._forwarders[backend] = forwarder
            logger.info("forwarding %s:%d -> %s:%d", backend.ip, ROUTE_PORT, backend.ip, backend.port)
        if hosts.write_in_place(self.hosts_file, entries, owner=HOSTS_OWNER):
            logger.info("hosts: %s", json.dumps(entries, sort_keys=True))
        for backend in self._forwarders.keys() - mapped:
            await self._forwarders.pop(backend).stop()
            logger.info("stopped forwarding %s:%d", backend.ip, ROUTE_PORT)
        now = _now()
        for kingress in kingresses:
            if kingress_needs_status(kingress) and kingress_routable(kingress, serving, runnable):
                meta = kingress["metadata"]
                status = kingress_status(kingress, now)
                await _write_status(custom, KINGRESS, kingress, status)
                logger.info(
                    "KIngress %s/%s Ready at generation %s", meta["namespace"], meta["name"], meta["generation"]
                )

    def _read_runner_state(self) -> list[Obj]:
        """The pod runner rewrites state.json every sync; a torn read just waits for the next pass."""
        try:
            state: list[Obj] = json.loads(self.runner_state.read_text())
        except (OSError, ValueError):
            return []
        return state


async def _write_status(custom: client.CustomObjectsApi, kind: tuple[str, str, str], obj: Obj, status: Obj) -> None:
    """Set these status fields, keeping the others (a JSON patch: the client sends dicts as strategic merge,
    which custom resources do not support)."""
    meta = obj["metadata"]
    body = [{"op": "add", "path": "/status", "value": {**(obj.get("status") or {}), **status}}]
    group, version, plural = kind
    await custom.patch_namespaced_custom_object_status(group, version, meta["namespace"], plural, meta["name"], body)


def _summary(status: Obj) -> str:
    ready = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return f"scale {status.get('actualScale')}/{status.get('desiredScale')}, {ready}"


@dataclass
class Knative:
    """Knative Serving on `stack`: `start()` returns once the controller holds its Leases and the data plane runs."""

    stack: Stack
    controller: procs.Process | None = None
    data_plane: DataPlane | None = None
    dir: Path = field(init=False)
    gc_probe: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.dir = tools.knative_dir()

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        cp, work = self.stack.control_plane, self.stack.work
        cp.kubectl("apply", "--server-side", "-f", str(self.dir / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "-f", str(self.dir / "crds"), "--timeout=60s")
        cp.kubectl("apply", "--server-side", "-f", str(self.dir / "config" / "100-namespace.yaml"))
        # Forced: a second start() re-applies fields the overrides below took over.
        cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(self.dir / "config"))
        for name, data in config_overrides().items():
            cp.kubectl("patch", "configmap", name, "-n", NAMESPACE, "--type=merge", "-p", json.dumps({"data": data}))
        started = datetime.now(UTC)
        self.controller = procs.start(
            "knative-controller",
            [self.dir / "controller", "--kubeconfig", cp.kubeconfig],
            log_dir=work / "logs",
            env={
                "SYSTEM_NAMESPACE": NAMESPACE,
                "CONFIG_LOGGING_NAME": "config-logging",
                "CONFIG_OBSERVABILITY_NAME": "config-observability",
                "METRICS_DOMAIN": "knative.dev/internal/serving",
                "POD_NAME": "knative-controller",
                "METRICS_PROMETHEUS_HOST": "127.0.0.1",
                "METRICS_PROMETHEUS_PORT": str(procs.free_port()),
                # Knative binds this one on every interface (":port"); a free port at least collides with nothing.
                "PROFILING_PORT": str(procs.free_port()),
            },
        )
        procs.wait_until(
            f"the Knative controller to hold its {RECONCILER_LEASES} Leases",
            lambda: self._held_leases(since=started) >= RECONCILER_LEASES,
            timeout=60,
            interval=0.2,
            process=self.controller,
        )
        self.data_plane = DataPlane(
            cp.kubeconfig,
            self.stack.hosts_file,
            work / "pod-runner" / "state.json",
            work / "logs" / "knative-data-plane.log",
        )
        self.data_plane.start()
        self._start_gc_probe()

    def _start_gc_probe(self) -> None:
        """An Image owned by a ConfigMap that is deleted at once: it goes when the garbage collector knows the CRDs.

        kube-controller-manager rediscovers resources every 30 s; until then deleting a Configuration
        leaves its Revisions (and their Deployments and pods) behind. Tests that rely on the cascade
        call `wait_for_garbage_collector()`; starting the probe here lets it run meanwhile.
        """
        cp = self.stack.control_plane
        self.gc_probe = f"devstack-gc-probe-{uuid.uuid4().hex[:8]}"
        owner = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": self.gc_probe, "namespace": NAMESPACE}}
        created = json.loads(cp.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(owner)))
        reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": self.gc_probe, "uid": created["metadata"]["uid"]}
        dependent = {
            "apiVersion": "caching.internal.knative.dev/v1alpha1",
            "kind": "Image",
            "metadata": {"name": self.gc_probe, "namespace": NAMESPACE, "ownerReferences": [reference]},
            "spec": {"image": QUEUE_SIDECAR_IMAGE},
        }
        cp.kubectl("create", "-f", "-", input=json.dumps(dependent))
        cp.kubectl("delete", "configmap", self.gc_probe, "-n", NAMESPACE, "--wait=false")

    def wait_for_garbage_collector(self, timeout: float = 60) -> None:
        """Return once deleting a Knative object cascades to what it owns (see `_start_gc_probe`)."""
        if not self.gc_probe:
            raise RuntimeError("Knative.start() first")
        procs.wait_until(
            "the garbage collector to know Knative's CRDs",
            lambda: (
                not self.stack.control_plane.kubectl(
                    "get",
                    "images.caching.internal.knative.dev",
                    self.gc_probe,
                    "-n",
                    NAMESPACE,
                    "-o",
                    "name",
                    "--ignore-not-found",
                ).strip()
            ),
            timeout=timeout,
            interval=0.5,
        )

    def _held_leases(self, since: datetime) -> int:
        """Leases renewed since `since`: a controller killed before may still be named their holder."""
        leases = json.loads(self.stack.control_plane.kubectl("get", "leases", "-n", NAMESPACE, "-o", "json"))["items"]
        specs = [lease.get("spec") or {} for lease in leases]
        return sum(
            1
            for spec in specs
            if spec.get("holderIdentity")
            and spec.get("renewTime")
            and datetime.fromisoformat(spec["renewTime"]) >= since.replace(microsecond=0)
        )

    def dead(self) -> list[str]:
        """Parts that have stopped (a healthy Knative returns [])."""
        return [
            name
            for name, alive in (
                ("knative-controller", self.controller is not None and self.controller.alive()),
                ("knative-data-plane", self.data_plane is not None and self.data_plane.alive()),
            )
            if not alive
        ]

    def stop(self) -> None:
        """The data plane first (it unmaps its hosts), then the controller: SIGTERM, which releases its Leases."""
        try:
            if self.data_plane is not None:
                self.data_plane.stop()
                self.data_plane = None
        finally:
            if self.controller is not None:
                self.controller.stop(timeout=15)
                self.controller = None
