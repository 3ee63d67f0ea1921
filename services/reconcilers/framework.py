"""The reconcile engine every kind runs on.

Each kind is a Restate VirtualObject `<Kind>Reconciler`, keyed by the resource (`name` for
cluster-scoped kinds, `namespace/name` for namespaced ones), so Restate gives every resource one
exclusive lane, a journal, retries and durable timers. The `reconcile` handler:

    read the object ─┬─ gone ─────────────────────────────► forget its state
                     ├─ being deleted ─► kind.finalize ─┬─► remove finalizer, forget
                     │                                  └─► status + wake-up later
                     └─ alive ─► ensure finalizer ─► kind.converge ─► status ─► wake-up if waiting

Guarantees: every side effect is a journaled step (never repeated once it succeeded, even across
crashes of the services process or of Restate); an invocation never waits unboundedly (waiting is
a delayed self-send, superseded by later ones); permanent errors set Degraded and emit a Warning
Event once, and are retried only on the next change or periodic resync; transient errors are
retried a few times inside the step, then the resource is woken up again later.
Assumptions: several requests may arrive for one change (watcher replicas, resyncs): a `spec`
request for a resourceVersion already reconciled is skipped without any write.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, ParamSpec, TypeVar

import restate
from pydantic import BaseModel, Field
from restate.exceptions import RetryableError

from services import metrics, status
from services.clients import errors
from services.clients.kube import Kube, Obj, Resource
from services.deps import Deps

logger = restate.getLogger(__name__)  # type: ignore[no-untyped-call]  # silent during replay

P = ParamSpec("P")
T = TypeVar("T")

STATE = "state"
PERMANENT = 422  # status code of the TerminalError that marks a permanent step failure
CANCELLED = 409
FINALIZER_MANAGER = "restate-operator/finalizer"
STEP_OPTIONS: restate.RunOptions[Any] = restate.RunOptions(
    max_attempts=4,
    initial_retry_interval=timedelta(milliseconds=200),
    retry_interval_factor=2.0,
    max_retry_interval=timedelta(seconds=5),
)
TRANSIENT_RETRY_SECONDS = 30.0
MAX_TRANSIENT_RETRY_SECONDS = 600.0
DEGRADED_AFTER = 3

Reason = Literal["spec", "child", "resync", "wakeup", "manual"]


class ReconcileRequest(BaseModel):
    """Why a reconcile was asked for. Identity is the object key; the state is always re-read."""

    reason: Reason = Field(default="manual", description="spec, child, resync, wakeup or manual (forced).")
    trigger: str | None = Field(default=None, description="What the watcher saw, e.g. Deployment/ns/name@123.")
    wakeup: str | None = Field(default=None, description="Token of a scheduled wake-up (internal).")


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
    reconciles: int = 0
    last_reconciled_at: str | None = None
    delete_requested: bool = False
    transient_failures: int = 0


# Condition reasons for permanent failures, by error class (upstream's AdminCallRejected included).
FAILURE_REASONS = {"Rejected": "AdminCallRejected", "Invalid": "InvalidObject", "Forbidden": "Forbidden"}


class StepFailed(Exception):
    def __init__(self, step: str, message: str, *, permanent: bool, error: str | None = None) -> None:
        super().__init__(f"{step}: {message}")
        self.step, self.message, self.permanent, self.error = step, message, permanent, error

    @property
    def reason(self) -> str:
        if not self.permanent:
            return "TransientError"
        return FAILURE_REASONS.get(self.error or "", "ReconcileFailed")


def _guard(action: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Map our error classes onto Restate's: permanent -> terminal, Retry-After -> retry delay."""

    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await action(*args, **kwargs)
        except errors.PermanentError as exc:
            raise restate.TerminalError(
                exc.message, status_code=PERMANENT, metadata={"error": type(exc).__name__}
            ) from exc
        except errors.TransientError as exc:
            if exc.retry_after:
                raise RetryableError(exc.message, retry_after=timedelta(seconds=exc.retry_after)) from exc
            raise

    return guarded


def rfc3339(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Steps:
    """Journaled side effects of one invocation; what a kind's converge and finalize use."""

    ctx: restate.ObjectContext
    deps: Deps

    async def run(self, name: str, action: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            result: T = await self.ctx.run_typed(name, _guard(action), STEP_OPTIONS, *args, **kwargs)
        except restate.TerminalError as exc:
            if exc.status_code == CANCELLED:
                raise
            error = (exc.metadata or {}).get("error")
            raise StepFailed(name, exc.message, permanent=exc.status_code == PERMANENT, error=error) from exc
        return result

    async def kube(self) -> Kube:
        return await self.deps.kube()

    async def apply(self, obj: Obj) -> Obj:
        """Server-side apply one child; returns a small summary (the journal keeps it)."""
        meta = obj["metadata"]
        where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]

        async def apply() -> Obj:
            return summary(await (await self.kube()).apply(obj))

        applied = await self.run(f"apply {obj['kind']} {where}", apply)
        await self.pause()
        return applied

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
        async def get() -> Obj | None:
            return await (await self.kube()).get(res, name, namespace)

        return await self.run(f"get {res.kind} {namespace + '/' if namespace else ''}{name}", get)

    async def secret_keys(self, name: str, namespace: str) -> list[str] | None:
        async def keys() -> list[str] | None:
            return await (await self.kube()).secret_keys(name, namespace)

        return await self.run(f"check Secret {namespace}/{name}", keys)

    async def pause(self) -> None:
        """A durable pause between steps when STEP_DELAY_SECONDS is set (fault-injection tests)."""
        delay = self.deps.settings.step_delay_seconds
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


Converge = Callable[[Steps, Obj], Awaitable[Outcome]]


class CommandRequest(BaseModel):
    """Input of a manual command handler (promote, pause, ...): which version, when it matters."""

    version: str | None = Field(default=None, description="A version name (<resource>-<hash>) or hash.")


Command = Callable[[restate.ObjectContext, CommandRequest], Awaitable[None]]


@dataclass(frozen=True)
class Kind:
    """What a kind plugs into the engine. `commands` become extra exclusive handlers that change the
    reconciler's state, then run a full reconcile and return its result."""

    resource: Resource
    controller: str
    finalizer: str
    converge: Converge
    finalize: Converge
    commands: Mapping[str, Command] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.resource.kind

    @property
    def service_name(self) -> str:
        """`ClusterReconciler` for RestateCluster, ...: Restate reserves service names starting with "restate"."""
        return f"{self.resource.kind.removeprefix('Restate')}Reconciler"


def split_key(key: str) -> tuple[str | None, str]:
    namespace, _, name = key.rpartition("/")
    return namespace or None, name


def object_key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def reconciler(kind: Kind, deps: Deps) -> restate.VirtualObject:
    """The VirtualObject for `kind`, with handlers `reconcile` (exclusive) and `status` (shared)."""
    service = restate.VirtualObject(
        kind.service_name,
        description=f"Reconciles {kind.name} resources, one key per resource.",
        invocation_retry_policy=restate.InvocationRetryPolicy(
            initial_interval=timedelta(seconds=1),
            exponentiation_factor=2.0,
            max_interval=timedelta(seconds=30),
            max_attempts=20,
            on_max_attempts="kill",
        ),
    )

    @service.handler(journal_retention=timedelta(hours=1), idempotency_retention=timedelta(hours=1))
    async def reconcile(ctx: restate.ObjectContext, request: ReconcileRequest) -> ReconcileResult:
        """Converge one resource towards its spec; `{}` as input forces a full pass."""
        started = time.monotonic()
        result = await _reconcile(ctx, request, kind, deps, reconcile)
        elapsed = time.monotonic() - started
        logger.info(
            "%s %s (%s %s): %s %s %s",
            kind.name,
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
        metrics.UPSTREAM_DURATION.labels(kind=kind.name).observe(elapsed)
        if result.action == "failed":
            metrics.RECONCILE_ERRORS.labels(controller=kind.controller).inc()
            metrics.UPSTREAM_ERRORS.labels(kind=kind.name, instance=ctx.key(), error=result.reason).inc()
        return result

    for name, command in kind.commands.items():
        _register_command(service, name, command, kind, deps, reconcile)

    @service.handler(kind="shared")
    async def status(ctx: restate.ObjectSharedContext) -> dict[str, Any]:
        """The reconciler's durable state for this resource, as JSON."""
        state = await ctx.get(STATE, type_hint=ObjectState)
        return state.model_dump(mode="json") if state else {}

    return service


def _register_command(
    service: restate.VirtualObject, name: str, command: Command, kind: Kind, deps: Deps, reconcile: Any
) -> None:
    @service.handler(name=name, journal_retention=timedelta(hours=1))
    async def handler(ctx: restate.ObjectContext, request: CommandRequest) -> ReconcileResult:
        await command(ctx, request)
        return await _reconcile(ctx, ReconcileRequest(reason="manual", trigger=name), kind, deps, reconcile)


async def _reconcile(
    ctx: restate.ObjectContext,
    request: ReconcileRequest,
    kind: Kind,
    deps: Deps,
    handler: Any,
) -> ReconcileResult:
    state = await ctx.get(STATE, type_hint=ObjectState) or ObjectState()
    if request.reason == "wakeup" and request.wakeup != state.wakeup_token:
        return ReconcileResult(action="skipped", reason="SupersededWakeup")
    namespace, name = split_key(ctx.key())
    steps = Steps(ctx, deps)
    try:
        obj = await steps.get(kind.resource, name, namespace)
    except StepFailed as failure:
        outcome, _ = on_failure(state, failure)
        return _schedule(ctx, state, handler, outcome, "failed")
    if obj is None:
        ctx.clear_all()
        return ReconcileResult(action="gone", reason="NotFound", message=f"{kind.name} {ctx.key()} does not exist")
    meta = obj["metadata"]
    if state.uid != meta["uid"]:
        state = ObjectState(uid=meta["uid"])  # a new object under an old name starts afresh
    if meta.get("deletionTimestamp"):
        return await _finalize(ctx, state, steps, kind, obj, handler)
    if request.reason == "spec" and meta["resourceVersion"] == state.last_resource_version:
        return ReconcileResult(action="skipped", reason="AlreadyReconciled")

    action: Literal["converged", "waiting", "failed"]
    try:
        if kind.finalizer not in (meta.get("finalizers") or []):
            version = await steps.run("add finalizer", _add_finalizer, deps, obj, kind.finalizer)
            meta["resourceVersion"] = version or meta["resourceVersion"]  # our own write is not a change
        outcome = await kind.converge(steps, obj)
        action = "converged" if outcome.requeue_after is None else "waiting"
        state.transient_failures = 0
        degraded: str | None = None
    except StepFailed as failure:
        (outcome, degraded), action = on_failure(state, failure), "failed"
    await _write_status(ctx, state, steps, obj, outcome, degraded)
    state.reconciles += 1
    return _schedule(ctx, state, handler, outcome, action)


async def _finalize(
    ctx: restate.ObjectContext, state: ObjectState, steps: Steps, kind: Kind, obj: Obj, handler: Any
) -> ReconcileResult:
    if kind.finalizer not in (obj["metadata"].get("finalizers") or []):
        ctx.clear_all()
        return ReconcileResult(action="gone", reason="NotOurs", message="being deleted without our finalizer")
    try:
        if not state.delete_requested:
            await steps.run(
                "event DeleteRequested",
                _event,
                steps.deps,
                obj,
                "Normal",
                "DeleteRequested",
                f"Deleting {kind.name} {ctx.key()}",
                "Deleting",
            )
            state.delete_requested = True
            ctx.set(STATE, state)
        outcome = await kind.finalize(steps, obj)
        if outcome.ready:
            await steps.run("remove finalizer", _remove_finalizer, steps.deps, kind, obj)
            ctx.clear_all()
            return ReconcileResult(action="finalized", reason=outcome.reason, message=outcome.message)
        action: Literal["waiting", "failed"] = "waiting"
        degraded: str | None = None
    except StepFailed as failure:
        (outcome, degraded), action = on_failure(state, failure), "failed"
    await _write_status(ctx, state, steps, obj, outcome, degraded)
    if outcome.requeue_after is None:
        outcome.requeue_after = TRANSIENT_RETRY_SECONDS
    return _schedule(ctx, state, handler, outcome, action)


def on_failure(state: ObjectState, failure: StepFailed) -> tuple[Outcome, str | None]:
    """The outcome of a failed step, and the Degraded message if the resource is now degraded.

    Permanent: degraded at once, no wake-up (the next change or resync retries). Transient: retried
    with exponential backoff; after DEGRADED_AFTER failures in a row it counts as degraded too, since
    some invalid input only shows as a server error (e.g. a malformed quantity is an HTTP 500).
    """
    if failure.permanent:
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
            await steps.run("event Warning", _event, steps.deps, obj, "Warning", outcome.reason, degraded, "Reconcile")

        async def apply_status() -> str | None:
            """The new resourceVersion, or None when the object changed since we read it."""
            try:
                applied = await (await steps.kube()).apply(body, subresource="status")
            except errors.Conflict:
                return None  # our status describes an old spec: the change's own event reconciles it
            return str(applied["metadata"]["resourceVersion"])

        # Written only onto the version we read, or a spec change landing meanwhile would look reconciled.
        body["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
        state.last_resource_version = await steps.run("apply status", apply_status)
    except StepFailed as failure:
        logger.warning("could not write status of %s: %s", ctx.key(), failure)
    state.observed_generation = generation
    state.ready, state.reason, state.message = outcome.ready, outcome.reason, outcome.message
    state.degraded = degraded
    state.last_reconciled_at = now


def _schedule(
    ctx: restate.ObjectContext, state: ObjectState, handler: Any, outcome: Outcome, action: Any
) -> ReconcileResult:
    """Persist state and, when waiting, one delayed self-send that supersedes any earlier one."""
    if outcome.requeue_after is not None:
        delay = max(1.0, outcome.requeue_after)
        token = str(ctx.uuid())
        state.wakeup_token = token
        ctx.object_send(
            handler,
            key=ctx.key(),
            arg=ReconcileRequest(reason="wakeup", wakeup=token),
            send_delay=timedelta(seconds=delay),
        )
    else:
        state.wakeup_token = None
    ctx.set(STATE, state)
    return ReconcileResult(
        action=action, reason=outcome.reason, message=outcome.message, requeue_after_seconds=outcome.requeue_after
    )


async def _remove_finalizer(deps: Deps, kind: Kind, obj: Obj) -> bool:
    meta = obj["metadata"]
    return await (await deps.kube()).remove_finalizer(
        kind.resource, meta["name"], meta.get("namespace"), kind.finalizer
    )


async def _add_finalizer(deps: Deps, obj: Obj, finalizer: str) -> str | None:
    """Own our finalizer under our finalizer field manager (others' entries are untouched).

    Returns the new resourceVersion, None when the object is gone."""
    meta = obj["metadata"]
    patch: Obj = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {"name": meta["name"]}}
    if meta.get("namespace"):
        patch["metadata"]["namespace"] = meta["namespace"]
    patch["metadata"]["finalizers"] = [finalizer]
    try:
        applied = await (await deps.kube()).apply(patch, field_manager=FINALIZER_MANAGER)
    except errors.NotFound:
        return None  # deleted meanwhile: nothing left to hold
    return str(applied["metadata"]["resourceVersion"])


async def _event(deps: Deps, obj: Obj, type_: str, reason: str, note: str, action: str) -> None:
    await (await deps.kube()).event(
        obj, type_=type_, reason=reason, note=note, action=action, reporting_instance=deps.settings.pod_name
    )
