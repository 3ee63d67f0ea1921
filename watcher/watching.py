"""List, then watch, one kind: resume by resourceVersion with bookmarks, relist on 410 Gone,
reconnect and relist with backoff. Every object of a (re)list is reported (level-triggered)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from services import errors, metrics
from services.clients.kube import Kube
from services.kinds import Resource

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
OnEvent = Callable[[str, Obj], None]
MAX_BACKOFF_SECONDS = 30.0


async def watch_kind(
    kube: Kube,
    res: Resource,
    on_event: OnEvent,
    *,
    label_selector: str | None = None,
    namespace: str | None = None,
    metadata_only: bool = False,
    timeout_seconds: int = 300,
    on_listed: Callable[[], None] = lambda: None,
    optional: bool = False,
) -> None:
    """Runs until cancelled. `on_event(type, object)` gets ADDED for every listed object.

    `namespace`: one namespace only (else all); `metadata_only`: objects without their data (Secrets).
    `optional`: a kind whose CRD is often absent (third-party); its absence is logged at debug only."""
    backoff = 0.5
    resource_version: str | None = None
    while True:
        try:
            if resource_version is None:
                listed = await kube.list(res, namespace, label_selector=label_selector, metadata_only=metadata_only)
                for item in listed.get("items") or []:  # null in an empty PartialObjectMetadataList
                    item.setdefault("kind", res.kind)
                    item.setdefault("apiVersion", res.api_version)
                    on_event("ADDED", item)
                resource_version = listed["metadata"]["resourceVersion"]
                on_listed()
            failed = False
            async for event in kube.watch(
                res,
                resource_version,
                namespace=namespace,
                label_selector=label_selector,
                metadata_only=metadata_only,
                timeout_seconds=timeout_seconds,
            ):
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    code = obj.get("code")
                    metrics.WATCH_RESTARTS.labels(kind=res.kind, cause=f"error-{code}").inc()
                    if code == 410:
                        logger.info("%s: resourceVersion %s expired; relisting", res.plural, resource_version)
                        resource_version = None
                    failed = True
                    break
                resource_version = obj["metadata"]["resourceVersion"]
                backoff = 0.5  # a stream that delivers is healthy
                if kind != "BOOKMARK":
                    metrics.WATCH_EVENTS.labels(kind=res.kind, type=kind).inc()
                    on_event(kind, obj)
            if failed:
                # As client-go's reflector: an ERROR ends the stream and the next list waits its backoff, so an
                # apiserver answering 410 to every resumed watch is not relisted in a hot loop.
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
        except errors.NotFound:
            # The CRD is not installed (yet): wait for it instead of failing.
            metrics.WATCH_RESTARTS.labels(kind=res.kind, cause="not-found").inc()
            level = logging.DEBUG if optional else logging.WARNING
            logger.log(level, "%s: not served (CRD missing?); retrying in %.0fs", res.plural, MAX_BACKOFF_SECONDS)
            resource_version = None
            await asyncio.sleep(MAX_BACKOFF_SECONDS)
        except errors.OperatorError as exc:
            metrics.WATCH_RESTARTS.labels(kind=res.kind, cause=type(exc).__name__).inc()
            logger.warning("%s: watch failed (%s); retrying in %.1fs", res.plural, exc, backoff)
            if isinstance(exc, errors.Invalid):
                resource_version = None  # e.g. a too-old resourceVersion rejected up front
            await asyncio.sleep(backoff)
            backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
