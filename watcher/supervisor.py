"""Start, name and stop the watcher's tasks: one watch per kind, the forwarder, the resync ticker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httpx

from services import kinds, metrics, probes
from services.clients import permissions
from services.clients.kube import Kube
from services.kinds import RESOURCES
from watcher import mapping, watching
from watcher.forwarding import Forwarder
from watcher.settings import WatcherSettings

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
# How often the resync loop looks for resources whose moment in the period has come.
RESYNC_TICK_SECONDS = 1.0


class Watcher:
    """Turns watch events into forwards. State: what it needs to filter and resync, one entry per object."""

    def __init__(self, settings: WatcherSettings, forwarder: Forwarder) -> None:
        self.settings = settings
        self.forwarder = forwarder
        self.fingerprints: dict[str, tuple[Any, ...]] = {}  # uid -> fingerprint, own resources only
        self.known: dict[str, mapping.Target] = {}  # uid -> target, for resyncs
        self.references: dict[mapping.Target, frozenset[mapping.Ref]] = {}  # what each resource names
        self.readiness: dict[str, str | None] = {}  # uid -> Ready status, for dependants
        self.children: dict[str, mapping.Seen] = {}  # uid -> what its last event showed, mapped children only
        self.listed: set[str] = set()

    def on_primary(self, event: str, obj: Obj) -> None:
        uid = obj["metadata"]["uid"]
        target = mapping.primary_target(obj)
        ready = mapping.ready_of(obj)
        if event == "DELETED" or self.readiness.get(uid, "") != ready:
            self._forward_dependants(event, obj)  # appeared, went or became (un)ready: who names it looks again
        if event == "DELETED":
            self.fingerprints.pop(uid, None)
            self.known.pop(uid, None)
            self.references.pop(target, None)
            self.readiness.pop(uid, None)
            return  # deletion is handled through the finalizer, while the object still exists
        self.known[uid] = target
        self.references[target] = mapping.references(obj)
        self.readiness[uid] = ready
        fingerprint = mapping.fingerprint(obj)
        previous, self.fingerprints[uid] = self.fingerprints.get(uid), fingerprint
        if not mapping.primary_news(previous, fingerprint):
            return  # status-only (or no-op) change, or our finalizer added: our own writes
        self.forwarder.submit(mapping.Forward(target, "spec", mapping.trigger_of(obj), mapping.event_key(obj, "spec")))

    def on_secret(self, event: str, obj: Obj) -> None:
        """A Secret in the operator's namespace (metadata only): created or rotated, it may be a token."""
        self._forward_dependants(event, {**obj, "kind": "Secret"})

    def _forward_dependants(self, event: str, obj: Obj) -> None:
        for target in mapping.dependants(self.references, (obj["kind"], obj["metadata"]["name"])):
            self._forward_child(event, obj, target)

    def on_child(self, event: str, obj: Obj) -> None:
        self._on_child_event(event, obj, mapping.owner_target(obj, self.settings.kinds))

    def on_knative(self, event: str, obj: Obj) -> None:
        self._on_child_event(event, obj, mapping.knative_target(obj))

    def on_labelled(self, event: str, obj: Obj) -> None:
        _, target_of = mapping.LABELLED[obj["kind"]]
        self._on_child_event(event, obj, target_of(obj))

    def _on_child_event(self, event: str, obj: Obj, target: mapping.Target | None) -> None:
        """Forward what can change a reconcile's decision (`mapping.child_news`); say why in the trigger."""
        if target is None or target.kind not in self.settings.kinds:
            return
        uid = obj["metadata"]["uid"]
        if event == "DELETED":
            self.children.pop(uid, None)
            why = mapping.deleted_news(obj)
        else:
            now = mapping.seen(obj)
            why = mapping.child_news(obj["kind"], self.children.get(uid), now)
            self.children[uid] = now
        if why is None:
            logger.debug("not forwarded: %s %s (nothing a reconcile decides on)", event, mapping.trigger_of(obj))
            metrics.CHILD_EVENTS_DROPPED.labels(kind=obj["kind"]).inc()
            return
        self._forward_child(event, obj, target, why)

    def _forward_child(self, event: str, obj: Obj, target: mapping.Target | None, why: str = "") -> None:
        if target is not None and target.kind in self.settings.kinds:
            trigger = f"{event} {mapping.trigger_of(obj)}" + (f" ({why})" if why else "")
            self.forwarder.submit(mapping.Forward(target, "child", trigger, mapping.event_key(obj, "child")))

    def resync(self, since: float, now: float) -> None:
        """Forward every known resource whose resync moment (`mapping.resync_offset`) is in (since, now]."""
        period = self.settings.resync_seconds
        for target in set(self.known.values()):
            offset = mapping.resync_offset(target, period)
            slot = mapping.resync_slot(now, period, offset)
            if slot > mapping.resync_slot(since, period, offset):
                self.forwarder.submit(mapping.Forward(target, "resync", "periodic resync", f"resync:{slot}"))

    def ready(self) -> tuple[bool, dict[str, Any]]:
        expected = set(self.settings.kinds) | set(kinds.CHILD_KINDS) | set(mapping.LABELLED)
        if kinds.CLOUD_ENVIRONMENT.kind in self.settings.kinds:
            expected.add("Secret")
        missing = sorted(expected - self.listed)
        return not missing, {"pendingWatches": missing, "pendingForwards": self.forwarder.pending()}


async def resync_loop(
    watcher: Watcher,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Each resource once a period, at its own moment; a replica's first resyncs come in its second
    period, since it has just forwarded every resource it listed."""
    period = watcher.settings.resync_seconds
    since = clock() + period
    while True:
        await sleep(min(RESYNC_TICK_SECONDS, period / 10))
        now = clock()
        if now > since:
            watcher.resync(since, now)
            since = now


async def run(settings: WatcherSettings, stop: asyncio.Event) -> None:
    """Run every task until `stop` is set or one of them fails."""
    kube = await Kube.connect(
        settings.kubeconfig, grants=permissions.WATCHER, operator_namespace=settings.operator_namespace
    )
    async with httpx.AsyncClient(base_url=settings.ingress_url, timeout=10.0) as http:
        forwarder = Forwarder(
            http,
            coalesce_seconds=settings.coalesce_seconds,
            max_delay_seconds=settings.coalesce_max_seconds,
            max_in_flight=settings.max_in_flight,
            leading_edge=settings.coalesce_leading_edge,
        )
        watcher = Watcher(settings, forwarder)

        def listed(kind: str) -> Callable[[], None]:
            return lambda: watcher.listed.add(kind)

        coroutines: dict[str, Coroutine[Any, Any, None]] = {
            "forwarder": forwarder.run(),
            "resync": resync_loop(watcher),
            "probes": probes.serve(watcher.ready, settings.probes_bind, stop),
        }
        for kind in settings.kinds:
            coroutines[f"watch {kind}"] = watching.watch_kind(
                kube,
                RESOURCES[kind],
                watcher.on_primary,
                timeout_seconds=settings.watch_timeout_seconds,
                on_listed=listed(kind),
            )
        for kind in (*kinds.CHILD_KINDS, *kinds.OPTIONAL_CHILD_KINDS):
            coroutines[f"watch {kind}"] = watching.watch_kind(
                kube,
                RESOURCES[kind],
                watcher.on_child,
                label_selector=mapping.MANAGED_SELECTOR,
                timeout_seconds=settings.watch_timeout_seconds,
                on_listed=listed(kind),
                optional=kind in kinds.OPTIONAL_CHILD_KINDS,
            )
        for kind in kinds.KNATIVE_KINDS:  # optional: Knative Serving may be installed later, or never
            coroutines[f"watch {kind}"] = watching.watch_kind(
                kube,
                RESOURCES[kind],
                watcher.on_knative,
                label_selector=mapping.MANAGED_SELECTOR,
                timeout_seconds=settings.watch_timeout_seconds,
                on_listed=listed(kind),
                optional=True,
            )
        if kinds.CLOUD_ENVIRONMENT.kind in settings.kinds:  # token Secrets: their metadata is enough
            coroutines["watch Secret"] = watching.watch_kind(
                kube,
                RESOURCES["Secret"],
                watcher.on_secret,
                namespace=settings.operator_namespace,
                metadata_only=True,
                timeout_seconds=settings.watch_timeout_seconds,
                on_listed=listed("Secret"),
            )
        for kind, (selector, _) in mapping.LABELLED.items():
            coroutines[f"watch {kind}"] = watching.watch_kind(
                kube,
                RESOURCES[kind],
                watcher.on_labelled,
                label_selector=selector,
                timeout_seconds=settings.watch_timeout_seconds,
                on_listed=listed(kind),
            )
        tasks = [asyncio.create_task(coro, name=name) for name, coro in coroutines.items()]
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception():
                    logger.error("task %s failed; stopping", task.get_name(), exc_info=task.exception())
        finally:
            stop.set()
            for task in [*tasks, stopper]:
                if task.get_name() != "probes":
                    task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
            await kube.close()
