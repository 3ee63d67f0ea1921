"""Forward reconcile requests to Restate's ingress, coalescing bursts per resource.

An event for a resource waits `coalesce_seconds`; each further event for the same resource merges
into the one pending request and restarts that wait, but never beyond `max_delay_seconds` after the
first (a debounce with a deadline; bounded memory: one entry per resource). With `leading_edge`, a
spec change of a resource that was quiet (nothing pending, nothing sent for `max_delay_seconds`)
is sent at once instead: a person's apply needs a pass anyway, and its children's events come only
after that pass has written them, so this saves the debounce on every create and rollout and costs
an extra pass only for a burst of spec edits (its first edit, then the rest merged). Sends are one-way
(`/send`) with an idempotency key, so duplicates across watcher replicas or retries cost nothing.
Failed sends are retried with exponential backoff, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from services import contract, metrics
from watcher.mapping import Forward, Target, merge

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


@dataclass
class Pending:
    forward: Forward
    first_seen: float
    due: float
    attempts: int = 0


class Forwarder:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        coalesce_seconds: float,
        max_delay_seconds: float,
        max_in_flight: int,
        leading_edge: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._coalesce = coalesce_seconds
        self._max_delay = max(max_delay_seconds, coalesce_seconds)
        self._clock = clock
        self._pending: dict[Target, Pending] = {}
        self._changed = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._leading_edge = leading_edge
        self._sent_at: dict[Target, float] = {}  # recent sends only (pruned after max_delay_seconds)

    def submit(self, forward: Forward) -> None:
        now = self._clock()
        entry = self._pending.get(forward.target)
        if entry is None:
            at_once = self._leading_edge and forward.reason == "spec" and forward.target not in self._sent_at
            self._pending[forward.target] = Pending(forward, now, now if at_once else now + self._coalesce)
        else:
            entry.forward = merge(entry.forward, forward)
            if entry.attempts == 0:
                entry.due = min(entry.first_seen + self._max_delay, now + self._coalesce)
        metrics.PENDING_KEYS.set(len(self._pending))
        self._changed.set()

    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Send what is due, forever; cancelled on shutdown."""
        try:
            while True:
                now = self._clock()
                for target in [t for t, sent in self._sent_at.items() if sent + self._max_delay <= now]:
                    del self._sent_at[target]
                for target in [t for t, e in self._pending.items() if e.due <= now]:
                    entry = self._pending.pop(target)
                    if self._leading_edge:
                        self._sent_at[target] = now
                    await self._slots.acquire()
                    task = asyncio.create_task(self._send(entry), name=f"forward {target.service}/{target.key}")
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
                metrics.PENDING_KEYS.set(len(self._pending))
                next_due = min((e.due for e in self._pending.values()), default=None)
                self._changed.clear()
                timeout = None if next_due is None else max(0.0, next_due - self._clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            logger.error("forward task failed", exc_info=task.exception())

    async def _send(self, entry: Pending) -> None:
        forward = entry.forward
        try:
            response = await self._http.post(
                contract.reconcile_path(forward.target.kind, forward.target.key),
                json=contract.ReconcileRequest(reason=forward.reason, trigger=forward.trigger).model_dump(
                    exclude_none=True
                ),
                headers={"idempotency-key": forward.idempotency_key},
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            metrics.FORWARD_ERRORS.labels(kind=forward.target.kind).inc()
            backoff = min(MAX_BACKOFF_SECONDS, 0.5 * 2**entry.attempts)
            logger.warning("forward to %s failed (%s); retrying in %.1fs", forward.target.key, exc, backoff)
            self._retry(entry, backoff)
            return
        logger.debug(
            "forwarded %s %s (%s, %s)",
            forward.target.service,
            forward.target.key,
            forward.reason,
            forward.idempotency_key,
        )
        metrics.FORWARDED.labels(kind=forward.target.kind, reason=forward.reason).inc()
        metrics.FORWARD_LAG.observe(self._clock() - entry.first_seen)

    def _retry(self, entry: Pending, backoff: float) -> None:
        newer = self._pending.get(entry.forward.target)
        forward = merge(entry.forward, newer.forward) if newer else entry.forward
        self._pending[entry.forward.target] = Pending(
            forward, entry.first_seen, self._clock() + backoff, entry.attempts + 1
        )
        self._changed.set()
