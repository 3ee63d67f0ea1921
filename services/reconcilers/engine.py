"""The reconcile engine every kind runs on.

Each kind is a Restate VirtualObject `<Kind>Reconciler` (`contract.service_name`), keyed by the
resource (`contract.object_key`), so Restate gives every resource one exclusive lane, a journal,
retries and durable timers. The `reconcile` handler:

    read the object ─┬─ gone ─────────────────────────────► forget its state
                     ├─ being deleted ─► kind.finalize ─┬─► remove finalizer, forget
                     │                                  └─► status + wake-up later
                     └─ alive ─► ensure finalizer ─► kind.converge ─► status ─► wake-up if waiting

Guarantees: every side effect is a journaled step (`steps`: never repeated once it succeeded, even
across crashes of the services process or of Restate); an invocation never waits unboundedly
(waiting is one pending delayed self-send; a pass that needs an
earlier one supersedes it, one that can wait as long keeps it); permanent errors set Degraded and emit a
Warning Event once, and are retried only on the next change or periodic resync; transient errors are
retried a few times inside the step, then the resource is woken up again later (`on_failure`).
Assumptions: several requests may arrive for one change (watcher replicas, resyncs): a `spec`
request for a resourceVersion already reconciled is skipped without any write.
Not here: the request contract (`services.contract`), the mapping of errors onto Restate's
(`failures`), the journaled side effects (`steps`), the finalizer writes (`finalizers`).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import restate
from pydantic import BaseModel, Field

from services import errors, metrics, status
from services.clients.connections import Connections
from services.clients.kube import Obj
from services.contract import ReconcileRequest, split_key
from services.kinds import CustomKind
from services.reconcilers import awaiting, failures, finalizers
from services.reconcilers.steps import Steps

logger = restate.getLogger(__name__)  # type: ignore[no-untyped-call]  # silent during replay

STATE = "state"
TRANSIENT_RETRY_SECONDS = 30.0
MAX_TRANSIENT_RETRY_SECONDS = 600.0
DEGRADED_AFTER = 3


class ReconcileResult(BaseModel):
    action: Literal["converged", "waiting", "failed", "skipped", "finalized", "gone"]
    reason: str = ""
    message: str = ""
    requeue_after_seconds: float | None = None


class Outcome(BaseModel):
    """What one converge (or finalize) pass concluded. `ready` for finalize means: deletion may finish."""

    ready: bool
    reason: str
    message: str
    requeue_after: float | None = None
    wake_on: list[str] = Field(default_factory=list)  # invocation ids: a pass once all have finished (`awaiting`)
    status: dict[str, Any] = Field(default_factory=dict)
    conditions: list[dict[str, Any]] = Field(default_factory=list)  # kind-specific, beside Ready/Progressing/Degraded


class ObjectState(BaseModel):
    """The durable memory of one resource's reconciler (see it with the `status` handler)."""

    uid: str | None = None
    last_resource_version: str | None = None
    observed_generation: int | None = None
    ready: bool | None = None
    reason: str | None = None
    message: str | None = None
    degraded: str | None = None
    wakeup_token: str | None = None
    wakeup_at: float | None = None  # when the wake-up of `wakeup_token` is due (seconds since the epoch)
    reconciles: int = 0
    last_reconciled_at: str | None = None
    delete_requested: bool = False
    transient_failures: int = 0


def rfc3339(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Converge = Callable[[Steps, Obj], Awaitable[Outcome]]


class CommandRequest(BaseModel):
    """Input of a manual command handler (promote, pause, ...): which version, when it matters."""

    version: str | None = Field(default=None, description="A version name (<resource>-<hash>) or hash.")


Command = Callable[[restate.ObjectContext, CommandRequest], Awaitable[None]]
"""Changes the reconciler's state for a person's command; raises our errors (NotFound, ...) to refuse."""

Query = Callable[[restate.ObjectSharedContext], Awaitable[Any]]
"""Reads the reconciler's state for a person (a shared handler: it runs beside a reconcile, never blocks one)."""


@dataclass(frozen=True)
class Reconciler:
    """What a kind plugs into the engine. `commands` become extra exclusive handlers that change the
    reconciler's state, then run a full reconcile and return its result; `queries` become shared
    handlers that only read it."""

    kind: CustomKind
    converge: Converge
    finalize: Converge
    commands: Mapping[str, Command] = field(default_factory=dict)
    queries: Mapping[str, Query] = field(default_factory=dict)


def virtual_object(reconciler: Reconciler, connections: Connections) -> restate.VirtualObject:
    """The VirtualObject for one kind, with handlers `reconcile` (exclusive), its commands and `status` (shared).

    Restate keeps each finished pass and command for RECONCILE_RETENTION_SECONDS (an hour by default)."""
    kind = reconciler.kind
    retention = timedelta(seconds=connections.settings.reconcile_retention_seconds)
    service = restate.VirtualObject(
        kind.service_name,
        description=f"Reconciles {kind.kind} resources, one key per resource.",
        invocation_retry_policy=restate.InvocationRetryPolicy(
            initial_interval=timedelta(seconds=1),
            exponentiation_factor=2.0,
            max_interval=timedelta(seconds=30),
            max_attempts=20,
            on_max_attempts="kill",
        ),
    )

    @service.handler(journal_retention=retention, idempotency_retention=retention)
    async def reconcile(ctx: restate.ObjectContext, request: ReconcileRequest) -> ReconcileResult:
        """Converge one resource towards its spec; `{}` as input forces a full pass."""
        started = time.monotonic()
        result = await _reconcile(ctx, request, reconciler, connections, reconcile)
        elapsed = time.monotonic() - started
        logger.info(
            "%s %s (%s %s): %s %s %s",
            kind.kind,
            ctx.key(),
            request.reason,
            request.trigger or "",
            result.action,
            result.reason,
            result.message,
        )
        outcome = {"failed": "error", "skipped": "skipped", "waiting": "requeue_after"}.get(result.action, "success")
        metrics.RECONCILE_TOTAL.labels(controller=kind.controller, result=outcome).inc()
        metrics.RECONCILE_TIME.labels(controller=kind.controller).observe(elapsed)
        metrics.UPSTREAM_RECONCILIATIONS.inc()
        metrics.UPSTREAM_DURATION.labels(kind=kind.kind).observe(elapsed)
        if result.action == "failed":
            metrics.RECONCILE_ERRORS.labels(controller=kind.controller).inc()
            metrics.UPSTREAM_ERRORS.labels(kind=kind.kind, instance=ctx.key(), error=result.reason).inc()
        return result

    for name, command in reconciler.commands.items():
        _register_command(service, name, command, reconciler, connections, reconcile, retention)
    for name, query in reconciler.queries.items():
        _register_query(service, name, query)

    @service.handler(kind="shared")
    async def status(ctx: restate.ObjectSharedContext) -> dict[str, Any]:
        """The reconciler's durable state for this resource, as JSON."""
        state = await ctx.get(STATE, type_hint=ObjectState)
        return state.model_dump(mode="json") if state else {}

    return service


def _register_command(
    service: restate.VirtualObject,
    name: str,
    command: Command,
    reconciler: Reconciler,
    connections: Connections,
    reconcile: Any,
    retention: timedelta,
) -> None:
    @service.handler(name=name, journal_retention=retention)
    async def handler(ctx: restate.ObjectContext, request: CommandRequest) -> ReconcileResult:
        try:
            await command(ctx, request)
        except errors.OperatorError as exc:
            raise failures.command_error(exc) from exc
        request_ = ReconcileRequest(reason="manual", trigger=name)
        result = await _reconcile(ctx, request_, reconciler, connections, reconcile)
        logger.info(
            "%s %s (%s): %s %s %s", reconciler.kind.kind, ctx.key(), name, result.action, result.reason, result.message
        )
        return result


def _register_query(service: restate.VirtualObject, name: str, query: Query) -> None:
    @service.handler(name=name, kind="shared")
    async def handler(ctx: restate.ObjectSharedContext) -> Any:
        return await query(ctx)


async def _reconcile(
    ctx: restate.ObjectContext,
    request: ReconcileRequest,
    reconciler: Reconciler,
    connections: Connections,
    handler: Any,
) -> ReconcileResult:
    kind = reconciler.kind
    state = await ctx.get(STATE, type_hint=ObjectState) or ObjectState()
    if request.reason == "wakeup":
        if request.wakeup != state.wakeup_token:
            return ReconcileResult(action="skipped", reason="SupersededWakeup")
        state.wakeup_token = state.wakeup_at = None  # this is it: none is pending any more
    namespace, name = split_key(ctx.key())
    steps = Steps(ctx, connections)
    try:
        obj = await steps.get(kind.resource, name, namespace)
    except errors.OperatorError as failure:
        outcome, _ = on_failure(state, failure)
        return await _schedule(ctx, state, handler, outcome, "failed", kind.service_name)
    if obj is None:
        metrics.forget_resource(kind.kind, namespace or "", name)
        ctx.clear_all()
        return ReconcileResult(action="gone", reason="NotFound", message=f"{kind.kind} {ctx.key()} does not exist")
    meta = obj["metadata"]
    if state.uid != meta["uid"]:
        state = ObjectState(uid=meta["uid"])  # a new object under an old name starts afresh
    if meta.get("deletionTimestamp"):
        return await _finalize(ctx, state, steps, reconciler, obj, handler)
    if request.reason == "spec" and meta["resourceVersion"] == state.last_resource_version:
        return ReconcileResult(action="skipped", reason="AlreadyReconciled")

    action: Literal["converged", "waiting", "failed"]
    try:
        if not finalizers.has(kind, obj):
            version = await finalizers.add(steps, kind, obj)
            meta["resourceVersion"] = version or meta["resourceVersion"]  # our own write is not a change
        outcome = await reconciler.converge(steps, obj)
        action = "converged" if outcome.requeue_after is None else "waiting"
        state.transient_failures = 0
        degraded: str | None = None
    except errors.OperatorError as failure:
        (outcome, degraded), action = on_failure(state, failure), "failed"
    await _write_status(ctx, state, steps, obj, outcome, degraded)
    state.reconciles += 1
    return await _schedule(ctx, state, handler, outcome, action, kind.service_name)


async def _finalize(
    ctx: restate.ObjectContext, state: ObjectState, steps: Steps, reconciler: Reconciler, obj: Obj, handler: Any
) -> ReconcileResult:
    kind = reconciler.kind
    if not finalizers.has(kind, obj):
        ctx.clear_all()
        return ReconcileResult(action="gone", reason="NotOurs", message="being deleted without our finalizer")
    try:
        if not state.delete_requested:
            try:
                await steps.event(obj, "Normal", "DeleteRequested", f"Deleting {kind.kind} {ctx.key()}", "Deleting")
            except errors.OperatorError as failure:
                # Best effort: in a namespace being deleted Kubernetes refuses new Events, and a
                # deletion that waited for one would hold the namespace forever.
                logger.warning("could not publish DeleteRequested about %s: %s", ctx.key(), failure)
            state.delete_requested = True
            ctx.set(STATE, state)
        outcome = await reconciler.finalize(steps, obj)
        if outcome.ready:
            await finalizers.remove(steps, kind, obj)
            namespace, name = split_key(ctx.key())
            metrics.forget_resource(kind.kind, namespace or "", name)
            ctx.clear_all()
            return ReconcileResult(action="finalized", reason=outcome.reason, message=outcome.message)
        action: Literal["waiting", "failed"] = "waiting"
        degraded: str | None = None
    except errors.OperatorError as failure:
        (outcome, degraded), action = on_failure(state, failure), "failed"
    await _write_status(ctx, state, steps, obj, outcome, degraded)
    if outcome.requeue_after is None:
        outcome.requeue_after = TRANSIENT_RETRY_SECONDS
    return await _schedule(ctx, state, handler, outcome, action, kind.service_name)


def on_failure(state: ObjectState, failure: errors.OperatorError) -> tuple[Outcome, str | None]:
    """The outcome of a failed step, and the Degraded message if the resource is now degraded.

    Permanent: degraded at once, no wake-up (the next change or resync retries). Transient: retried
    with exponential backoff; after DEGRADED_AFTER failures in a row it counts as degraded too, since
    some invalid input only shows as a server error (e.g. a malformed quantity is an HTTP 500).
    """
    if isinstance(failure, errors.PermanentError):
        return Outcome(ready=False, reason=failure.reason, message=str(failure)), str(failure)
    state.transient_failures += 1
    delay = min(MAX_TRANSIENT_RETRY_SECONDS, TRANSIENT_RETRY_SECONDS * 2 ** (state.transient_failures - 1))
    outcome = Outcome(ready=False, reason=failure.reason, message=f"{failure} (retrying)", requeue_after=delay)
    return outcome, str(failure) if state.transient_failures >= DEGRADED_AFTER else None


async def _write_status(
    ctx: restate.ObjectContext,
    state: ObjectState,
    steps: Steps,
    obj: Obj,
    outcome: Outcome,
    degraded: str | None,
) -> None:
    now = rfc3339(await ctx.time())
    generation = obj["metadata"].get("generation")
    conditions = [
        status.condition(status.READY, outcome.ready, outcome.reason, outcome.message, generation),
        status.condition(
            status.PROGRESSING, not outcome.ready and not degraded, outcome.reason, outcome.message, generation
        ),
        status.condition(
            status.DEGRADED,
            degraded is not None,
            outcome.reason if degraded else "AsExpected",
            degraded or "",
            generation,
        ),
        *({**c, "observedGeneration": generation} for c in outcome.conditions),
    ]
    previous = (obj.get("status") or {}).get("conditions")
    # A failed pass computed no status: keep what the last good pass observed (an apply without those
    # fields would remove them), and let the conditions tell what went wrong.
    fields = outcome.status or {
        k: v for k, v in (obj.get("status") or {}).items() if k not in ("conditions", "observedGeneration")
    }
    body = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": obj["metadata"]["name"], "namespace": obj["metadata"].get("namespace")},
        "status": {
            **fields,
            "observedGeneration": generation,
            "conditions": status.merge(previous, conditions, now),
        },
    }
    if not body["metadata"]["namespace"]:
        del body["metadata"]["namespace"]
    try:
        if degraded and state.degraded != degraded:
            await steps.event(obj, "Warning", outcome.reason, degraded, "Reconcile", step="event Warning")

        async def apply_status() -> str | None:
            """The new resourceVersion, or None when the object changed since we read it."""
            try:
                applied = await (await steps.kube()).apply(body, subresource="status")
            except errors.Conflict:
                return None  # our status describes an old spec: the change's own event reconciles it
            return str(applied["metadata"]["resourceVersion"])

        if body["status"] == obj.get("status"):
            # It says so already: no write (a spec change landing meanwhile has its own event).
            state.last_resource_version = obj["metadata"]["resourceVersion"]
        else:
            # Written only onto the version we read, or a spec change landing meanwhile would look reconciled.
            body["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
            state.last_resource_version = await steps.run("apply status", apply_status)
    except errors.OperatorError as failure:
        logger.warning("could not write status of %s: %s", ctx.key(), failure)
    namespace, name = split_key(ctx.key())
    truth = {c["type"]: c["status"] == "True" for c in conditions[:3]}  # Ready, Progressing, Degraded
    metrics.observe_conditions(obj["kind"], namespace or "", name, truth)
    state.observed_generation = generation
    state.ready, state.reason, state.message = outcome.ready, outcome.reason, outcome.message
    state.degraded = degraded
    state.last_reconciled_at = now


def pending_wakeup_suffices(state: ObjectState, now: float, delay: float) -> bool:
    """Whether the wake-up already pending comes no later than one `delay` from `now` would.

    Then no new one is sent: each send is one more invocation, and it would only supersede the
    pending one, which still runs (to be skipped). A pass that comes early is harmless (level-based)."""
    return state.wakeup_token is not None and state.wakeup_at is not None and state.wakeup_at <= now + delay


async def _schedule(
    ctx: restate.ObjectContext, state: ObjectState, handler: Any, outcome: Outcome, action: Any, service: str
) -> ReconcileResult:
    """Persist state and, when waiting, one delayed self-send that supersedes any later one; and the
    watch of the invocations the outcome waits for."""
    if outcome.requeue_after is not None:
        delay = max(1.0, outcome.requeue_after)
        now = await ctx.time()
        if not pending_wakeup_suffices(state, now, delay):
            token = str(ctx.uuid())
            state.wakeup_token, state.wakeup_at = token, now + delay
            ctx.object_send(
                handler,
                key=ctx.key(),
                arg=ReconcileRequest(reason="wakeup", wakeup=token),
                send_delay=timedelta(seconds=delay),
            )
    else:
        state.wakeup_token = state.wakeup_at = None
    if outcome.wake_on:
        awaiting.wake_when_done(ctx, service, outcome.wake_on)
    ctx.set(STATE, state)
    return ReconcileResult(
        action=action, reason=outcome.reason, message=outcome.message, requeue_after_seconds=outcome.requeue_after
    )
