"""`InvocationWatch`: wake a resource's reconciler once invocations it waits for have finished.

A draining version is retired when no invocation needs it any more, but Restate calls nobody back
when an invocation ends: the reconciler could only look again every `phases.DRAIN_POLL_SECONDS`,
so a drain ended up to that long after its last invocation. An invocation can, however, attach to
another and suspend until it ends. A pass that leaves a version draining names the invocations
pinned to it (`Outcome.wake_on`); the engine sends them here; this handler attaches to each in
turn and then asks the resource's reconciler for a pass, which finds the version idle at once.
The poll stays, as the fallback for what this does not see (invocations not pinned yet).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta

import restate
from pydantic import BaseModel
from restate.serde import BytesSerde

from services.contract import ReconcileRequest

SERVICE = restate.Service(
    "InvocationWatch",
    description="Wakes a reconciler once the invocations its draining versions wait for have finished.",
)


WATCH_AT_MOST = timedelta(hours=1)


class WatchRequest(BaseModel):
    service: str  # the reconciler's virtual object, e.g. DeploymentReconciler
    key: str
    invocations: list[str]


@SERVICE.handler(journal_retention=timedelta(hours=1))  # few: one per draining version
async def watch(ctx: restate.Context, request: WatchRequest) -> None:
    # A failed, cancelled or already purged invocation completes its attachment too: it needs the
    # version no more either way. One stuck behind a force-drained version would never end, so the
    # watch gives up after WATCH_AT_MOST (the drain poll still sees it end).
    waiting = [ctx.attach_invocation(invocation, serde=BytesSerde()) for invocation in request.invocations]
    give_up = ctx.sleep(WATCH_AT_MOST)
    while waiting:
        done, _ = await restate.wait_completed(*waiting, give_up)
        if give_up in done:
            return
        waiting = [attached for attached in waiting if attached not in done]
    trigger = f"{len(request.invocations)} awaited invocation(s) finished"
    ctx.generic_send(
        request.service,
        "reconcile",
        arg=ReconcileRequest(reason="work", trigger=trigger).model_dump_json().encode(),
        key=request.key,
        idempotency_key=f"work:{digest(request.invocations)}",
    )


def wake_when_done(ctx: restate.ObjectContext, service: str, invocations: Sequence[str]) -> None:
    """Ask for a pass of this resource once `invocations` have all finished. Every drain poll asks
    again for what it still sees; the same set is one watch, by its idempotency key."""
    ids = sorted(set(invocations))
    ctx.service_send(
        watch,
        arg=WatchRequest(service=service, key=ctx.key(), invocations=ids),
        idempotency_key=f"{ctx.key()}:{digest(ids)}",
    )


def digest(invocations: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(invocations)).encode()).hexdigest()[:32]
