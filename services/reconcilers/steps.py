"""Journaled side effects: what a kind's converge and finalize use to touch the world.

Every call to Kubernetes or to a Restate admin API inside a handler goes through `Steps.run`, a
named `ctx.run_typed` step: once it succeeded it is never repeated, even across crashes, and its
result (kept small) is replayed from the journal. Our errors cross the journal through
`failures`, so the caller catches the same class the client raised, named after its step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import restate

from services import errors
from services.clients.connections import Connections
from services.clients.kube import Kube, Obj
from services.kinds import Resource
from services.reconcilers import failures
from services.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")

# What to do about a child the apiserver refused: it was built from the resource's spec.
APPLY_FIX = "fix the field it names in this resource's spec (the operator builds that object from it)"

STEP_OPTIONS: restate.RunOptions[Any] = restate.RunOptions(
    max_attempts=4,
    initial_retry_interval=timedelta(milliseconds=200),
    retry_interval_factor=2.0,
    max_retry_interval=timedelta(seconds=5),
)


def _guard(action: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await action(*args, **kwargs)
        except errors.OperatorError as exc:
            raise failures.to_restate(exc) from exc

    return guarded


@dataclass
class Steps:
    """The journaled side effects of one invocation."""

    ctx: restate.ObjectContext
    connections: Connections

    @property
    def settings(self) -> Settings:
        return self.connections.settings

    async def run(self, name: str, action: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `action` as the step `name`. Raises our error class (with `step` set) when it failed for good."""
        try:
            result: T = await self.ctx.run_typed(name, _guard(action), STEP_OPTIONS, *args, **kwargs)
        except restate.TerminalError as exc:
            if failures.is_cancellation(exc):
                raise
            raise failures.from_terminal(name, exc) from exc
        return result

    async def kube(self) -> Kube:
        return await self.connections.kube()

    async def apply(self, obj: Obj) -> Obj:
        """Server-side apply one child; returns a small summary (the journal keeps it)."""
        meta = obj["metadata"]
        where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]

        async def apply() -> Obj:
            try:
                return summary(await (await self.kube()).apply(obj))
            except errors.Invalid as exc:
                # The apiserver names the child's field; the person must change the resource it came from.
                raise errors.Invalid(f"{errors.truncate(exc.message, 300)}; {APPLY_FIX}") from exc

        applied = await self.run(f"apply {obj['kind']} {where}", apply)
        await self.pause()
        return applied

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
        async def get() -> Obj | None:
            return await (await self.kube()).get(res, name, namespace)

        return await self.run(f"get {res.kind} {namespace + '/' if namespace else ''}{name}", get)

    async def event(
        self,
        obj: Obj,
        type_: str,
        reason: str,
        note: str,
        action: str,
        *,
        step: str = "",
        published: Callable[[], None] | None = None,
    ) -> None:
        """Publish an Event about `obj` as one step (`event <reason>` unless named); `published` runs
        once it was (inside the step, so never again on a replay: the place to count it)."""

        async def publish() -> None:
            await (await self.kube()).event(
                obj, type_=type_, reason=reason, note=note, action=action, reporting_instance=self.settings.pod_name
            )
            if published is not None:
                published()

        await self.run(step or f"event {reason}", publish)

    async def pause(self) -> None:
        """A durable pause between steps when STEP_DELAY_SECONDS is set (fault-injection tests)."""
        delay = self.settings.step_delay_seconds
        if delay > 0:
            await self.ctx.sleep(timedelta(seconds=delay))


def summary(obj: Obj) -> Obj:
    """What callers need from an applied object: identity, generation and status."""
    meta = obj["metadata"]
    return {
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "generation": meta.get("generation"),
        },
        "status": obj.get("status") or {},
    }
