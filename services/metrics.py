"""Every Prometheus metric of the operator, in one place.

Names follow controller-runtime (`controller_runtime_reconcile_*`) and the upstream operator
(`restate_operator_*`), so existing dashboards work. Handlers replay, so reconcile metrics are
counted once an invocation has decided its outcome, not at each replayed step.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from services import kinds

CONTROLLERS = tuple(k.controller for k in kinds.CUSTOM)
RESULTS = ("success", "error", "requeue_after", "skipped")

RECONCILE_TOTAL = Counter(
    "controller_runtime_reconcile_total", "Reconciliations per controller and result.", ["controller", "result"]
)
RECONCILE_ERRORS = Counter("controller_runtime_reconcile_errors_total", "Reconciliations that failed.", ["controller"])
RECONCILE_TIME = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Time per reconciliation (one handler invocation attempt).",
    ["controller"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UPSTREAM_RECONCILIATIONS = Counter("restate_operator_reconciliations", "Reconciliations started (upstream name).")
UPSTREAM_ERRORS = Counter(
    "restate_operator_reconciliation_errors", "Failed reconciliations (upstream name).", ["kind", "instance", "error"]
)
UPSTREAM_DURATION = Histogram(
    "restate_operator_reconcile_duration_seconds",
    "Reconcile duration (upstream name).",
    ["kind"],
    buckets=(0.01, 0.1, 0.25, 0.5, 1, 5, 15, 60),
)
KUBE_WRITES = Counter("restate_operator_kube_writes", "Writes to the Kubernetes API.", ["kind", "verb"])
ADMIN_CALLS = Counter(
    "restate_operator_admin_calls", "Calls to Restate admin APIs by operation and outcome.", ["operation", "outcome"]
)
# Per resource, what its status conditions say (as the services replica that reconciled it last saw).
CONDITIONS = ("Ready", "Progressing", "Degraded")
RESOURCE_CONDITION = Gauge(
    "restate_operator_resource_condition",
    "1 while the resource's condition is True, else 0 (Ready, Progressing, Degraded).",
    ["kind", "resource_namespace", "resource_name", "condition"],
)

# RestateDeployment rollouts. The gauges are what the services replica that reconciled a resource last
# saw (exact with one replica, the default; with several, take `max by (resource_namespace, resource_name, phase)`).
# The resource's labels are `resource_namespace`/`resource_name`: a scrape's own `namespace` would rename them.
VERSION_PHASES = ("Pending", "Held", "Latest", "Draining", "Drained")
VERSIONS = Gauge(
    "restate_operator_deployment_versions",
    "Versions of each RestateDeployment, by phase.",
    ["resource_namespace", "resource_name", "phase"],
)
DRAINING_INVOCATIONS = Gauge(
    "restate_operator_deployment_draining_invocations",
    "Unfinished invocations that still need a superseded version of each RestateDeployment.",
    ["resource_namespace", "resource_name"],
)
VERSION_EVENTS = ("registered", "latest", "draining", "drained", "deregistered", "deleted")
VERSION_TRANSITIONS = Counter(
    "restate_operator_version_transitions",
    "What happened to RestateDeployment versions (each also an Event on the resource).",
    ["event"],
)
SELF_REGISTERED = Gauge(
    "restate_operator_self_registered", "1 once this process registered its endpoint with the bootstrap Restate."
)

# Watcher
WATCH_EVENTS = Counter("restate_watcher_events", "Watch events seen.", ["kind", "type"])
FORWARDED = Counter("restate_watcher_forwarded", "Reconcile requests forwarded to Restate.", ["kind", "reason"])
CHILD_EVENTS_DROPPED = Counter(
    "restate_watcher_child_events_dropped",
    "Child events not forwarded: nothing a reconcile decides on changed (our own writes, status steps).",
    ["kind"],
)
FORWARD_ERRORS = Counter("restate_watcher_forward_errors", "Forwards that failed (and were retried).", ["kind"])
WATCH_RESTARTS = Counter("restate_watcher_watch_restarts", "Watch streams restarted.", ["kind", "cause"])
FORWARD_LAG = Histogram(
    "restate_watcher_forward_lag_seconds",
    "From seeing an event to Restate accepting its reconcile request.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PENDING_KEYS = Gauge("restate_watcher_pending_keys", "Resources waiting to be forwarded (coalescing).")


def initialise() -> None:
    """Touch every label combination so dashboards show zeros from the start."""
    disable_created_metrics()  # type: ignore[no-untyped-call]
    for event in VERSION_EVENTS:
        VERSION_TRANSITIONS.labels(event=event)
    for controller in CONTROLLERS:
        for result in RESULTS:
            RECONCILE_TOTAL.labels(controller=controller, result=result)
        RECONCILE_ERRORS.labels(controller=controller)
        RECONCILE_TIME.labels(controller=controller)


def observe_rollout(namespace: str, name: str, phases: dict[str, int], draining_invocations: int) -> None:
    """Set one RestateDeployment's rollout gauges (idempotent, so safe during a handler's replay)."""
    for phase in VERSION_PHASES:
        VERSIONS.labels(resource_namespace=namespace, resource_name=name, phase=phase).set(phases.get(phase, 0))
    DRAINING_INVOCATIONS.labels(resource_namespace=namespace, resource_name=name).set(draining_invocations)


def forget_rollout(namespace: str, name: str) -> None:
    """A deleted RestateDeployment leaves no series behind (removing an absent one is a no-op)."""
    for phase in VERSION_PHASES:
        VERSIONS.remove(namespace, name, phase)
    DRAINING_INVOCATIONS.remove(namespace, name)


def observe_conditions(kind: str, namespace: str, name: str, true: dict[str, bool]) -> None:
    for condition in CONDITIONS:
        value = 1 if true.get(condition) else 0
        RESOURCE_CONDITION.labels(kind=kind, resource_namespace=namespace, resource_name=name, condition=condition).set(
            value
        )


def forget_resource(kind: str, namespace: str, name: str) -> None:
    for condition in CONDITIONS:
        RESOURCE_CONDITION.remove(kind, namespace, name, condition)
