"""The reconcile engine end to end: real apiserver, real restate-server, services and watcher as
real processes. RestateCloudEnvironment is the kind under test (its tunnel Deployment and Service
are the side effects); the engine is the same for every kind.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack import procs, tools
from devstack.operator import OPERATOR_NAMESPACE, Operator
from devstack.stack import Stack
from tests.helpers import apply, condition, get, sql, step_durable, warning_events

pytestmark = pytest.mark.integration

SERVICE = "CloudEnvironmentReconciler"
TOKEN_SECRET = "cloud-token"
Obj = dict[str, Any]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def environment(name: str, *, region: str = "eu", secret: str = TOKEN_SECRET, **tunnel: Any) -> Obj:
    spec: Obj = {
        "environmentId": "env_abc123",
        "region": region,
        "signingPublicKey": "publickeyv1_abc",
        "authentication": {"secret": {"name": secret, "key": "token"}},
    }
    if tunnel:
        spec["tunnel"] = tunnel
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateCloudEnvironment",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def cloud_token(operator: Operator) -> Iterator[str]:
    cp = operator.stack.control_plane
    cp.kubectl("create", "secret", "generic", TOKEN_SECRET, "-n", OPERATOR_NAMESPACE, "--from-literal=token=t0k3n")
    yield TOKEN_SECRET
    cp.kubectl("delete", "secret", TOKEN_SECRET, "-n", OPERATOR_NAMESPACE)


def wait_ready(stack: Stack, name: str, timeout: float = 60) -> Obj:
    """The resource once Ready=True for its current generation."""
    found: dict[str, Obj] = {}

    def ready() -> bool:
        obj = get(stack, "rce", name)
        cond = condition(obj, "Ready")
        if obj and cond.get("status") == "True" and cond.get("observedGeneration") == obj["metadata"]["generation"]:
            found["obj"] = obj
            return True
        return False

    procs.wait_until(f"{name} Ready", ready, timeout=timeout)
    return found["obj"]


def tunnel_env(stack: Stack, name: str) -> dict[str, str]:
    deployment = get(stack, "deployment", f"tunnel-{name}", OPERATOR_NAMESPACE)
    assert deployment is not None
    return {e["name"]: e.get("value", "") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def invocations(stack: Stack, name: str) -> list[Obj]:
    return sql(
        stack,
        "SELECT id, status, idempotency_key, invoked_by FROM sys_invocation_status "
        f"WHERE target_service_name = '{SERVICE}' AND target_service_key = '{name}' "
        "AND target_handler_name = 'reconcile'",
    )


def test_new_resource_is_reconciled_and_reports_ready(operator: Operator, cloud_token: str) -> None:
    stack, name = operator.stack, unique("ready")
    apply(stack, environment(name))
    obj = wait_ready(stack, name)
    assert {c["type"]: c["status"] for c in obj["status"]["conditions"]} == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
    }
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert "cloudenvironments.restate.dev" in obj["metadata"]["finalizers"]
    deployment = get(stack, "deployment", f"tunnel-{name}", OPERATOR_NAMESPACE)
    assert deployment is not None
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "RestateCloudEnvironment",
        obj["metadata"]["uid"],
        True,
    )
    assert tunnel_env(stack, name)["RESTATE_TUNNEL_NAME"] == obj["metadata"]["uid"]
    assert get(stack, "service", f"tunnel-{name}", OPERATOR_NAMESPACE) is not None


def test_resource_that_cannot_be_ready_says_why_and_recovers_on_manual_reconcile(operator: Operator) -> None:
    stack, name = operator.stack, unique("nosecret")
    secret = f"{name}-token"
    apply(stack, environment(name, secret=secret))

    def says_why() -> bool:
        cond = condition(get(stack, "rce", name), "Ready")
        return cond.get("status") == "False" and cond.get("reason") == "SecretNotFound"

    procs.wait_until("SecretNotFound", says_why, timeout=60)
    assert secret in condition(get(stack, "rce", name), "Ready")["message"]
    stack.control_plane.kubectl(
        "create", "secret", "generic", secret, "-n", OPERATOR_NAMESPACE, "--from-literal=token=x"
    )
    # Secrets are not watched: the documented manual reconcile picks the change up at once.
    response = httpx.post(f"{stack.restate.ingress_url}/{SERVICE}/{name}/reconcile", json={}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["action"] == "converged"
    wait_ready(stack, name, timeout=10)


def test_permanent_error_degrades_with_a_warning_event_and_no_retry_storm(operator: Operator, cloud_token: str) -> None:
    stack, name = operator.stack, unique("baddns")
    # Accepted by the CRD, rejected by the Deployment's own validation (HTTP 422).
    apply(stack, environment(name, dnsPolicy="None"))

    def degraded() -> bool:
        return condition(get(stack, "rce", name), "Degraded").get("status") == "True"

    procs.wait_until("Degraded", degraded, timeout=60)
    obj = get(stack, "rce", name)
    assert condition(obj, "Ready")["status"] == "False"
    assert "must provide `dnsConfig` when `dnsPolicy` is None" in condition(obj, "Degraded")["message"]
    events = warning_events(stack, name)
    assert [e["reason"] for e in events] == ["InvalidObject"]
    assert events[0]["reportingController"] == "restate-operator", "as upstream: event filters survive a swap"
    assert condition(obj, "Degraded")["reason"] == "InvalidObject"

    def reconciled() -> list[Obj] | None:
        """Every reconcile ran: its creation's (the watcher drops the echo of our own finalizer write)."""
        rows = invocations(stack, name)
        spec_requests = [r for r in rows if str(r.get("idempotency_key", "")).startswith("spec:")]
        return rows if spec_requests and all(r["status"] == "completed" for r in rows) else None

    settled = len(procs.wait_until("its creation reconciled", reconciled, timeout=30))
    # Long enough for a retry storm (or an echo of our own writes) to show; neither may start a reconcile.
    procs.holds_for("no reconcile without a change", lambda: len(invocations(stack, name)) == settled, seconds=5)
    assert settled <= 3
    # Nothing is lost: fixing the spec converges the same resource.
    apply(stack, environment(name, dnsPolicy="ClusterFirst"))
    obj = wait_ready(stack, name)
    assert condition(obj, "Degraded")["status"] == "False"


def test_fifty_rapid_edits_coalesce_and_end_in_the_last_state(operator: Operator, cloud_token: str) -> None:
    stack, name = operator.stack, unique("burst")
    # No tunnel pods: each edit still rewrites the tunnel Deployment, but without pods to roll its
    # status settles at once, so what is counted is the coalescing of the edits, not the Deployment
    # controller's pace on a loaded machine (with pods: up to 97 reconciles under load).
    apply(stack, environment(name, replicas=0))
    wait_ready(stack, name)
    before = len(invocations(stack, name))
    for i in range(50):
        stack.control_plane.kubectl(
            "patch", "rce", name, "--type=merge", "-p", json.dumps({"spec": {"region": f"r{i}"}})
        )
    wait_ready(stack, name)
    procs.wait_until("last edit applied", lambda: tunnel_env(stack, name)["RESTATE_CLOUD_REGION"] == "r49", timeout=30)
    during = len(invocations(stack, name)) - before
    print(f"50 edits -> {during} reconcile invocations")
    # Coalescing, not a pace: about one pass per debounce window while passes run, so the count
    # follows how long a pass takes on the machine (two full runs on one day: about 10, then 19).
    assert 1 <= during < 25


def test_watcher_down_meanwhile_then_restarted_converges(operator: Operator, cloud_token: str) -> None:
    stack = operator.stack
    changed, deleted, created = unique("changed"), unique("deleted"), unique("created")
    for name in (changed, deleted):
        apply(stack, environment(name))
        wait_ready(stack, name)
    operator.stop_watchers()
    try:
        apply(stack, environment(created))
        apply(stack, environment(changed, region="us"))
        stack.control_plane.kubectl("delete", "rce", deleted, "--wait=false")
        procs.holds_for(
            "the finalizer holds it until the operator runs", lambda: get(stack, "rce", deleted) is not None, seconds=1
        )
    finally:
        operator.start_watcher()
    wait_ready(stack, created)
    wait_ready(stack, changed)
    procs.wait_until("change applied", lambda: tunnel_env(stack, changed)["RESTATE_CLOUD_REGION"] == "us", timeout=30)
    procs.wait_until("deletion finished", lambda: get(stack, "rce", deleted) is None, timeout=60)


def test_two_watcher_replicas_cause_no_duplicate_reconciles(operator: Operator, cloud_token: str) -> None:
    stack, name = operator.stack, unique("twins")
    operator.start_watcher()
    try:
        forwarded_before = [forwarded(operator, port) for port in operator.watcher_probe_ports]
        apply(stack, environment(name))
        wait_ready(stack, name)
        apply(stack, environment(name, region="us"))
        wait_ready(stack, name)
        procs.wait_until(
            "both replicas forwarded",
            lambda: all(
                forwarded(operator, port) > before
                for port, before in zip(operator.watcher_probe_ports, forwarded_before, strict=True)
            ),
            timeout=30,
        )
        keys = [row.get("idempotency_key") for row in invocations(stack, name) if row.get("invoked_by") == "ingress"]
        assert keys
        assert len(keys) == len(set(keys)), f"an event was reconciled twice: {keys}"
    finally:
        extra = operator.watchers.pop()
        operator.watcher_probe_ports.pop()
        extra.stop()


def forwarded(operator: Operator, port: int) -> float:
    samples = operator.metrics(port)
    return sum(v for k, v in samples.items() if k.startswith("restate_watcher_forwarded_total"))


WRITES = {
    'restate_operator_kube_writes_total{kind="RestateCloudEnvironment",verb="apply"}': 1,  # finalizer
    'restate_operator_kube_writes_total{kind="Deployment",verb="apply"}': 1,
    'restate_operator_kube_writes_total{kind="Service",verb="apply"}': 1,
    'restate_operator_kube_writes_total{kind="RestateCloudEnvironment",verb="apply-status"}': 1,
}


def writes(operator: Operator) -> dict[str, float]:
    samples = operator.metrics(operator.services_probes_port)
    return {k: samples.get(k, 0.0) for k in WRITES}


def journaled(stack: Stack, invocation: str, step_prefix: str) -> bool:
    """The step's result is durable in Restate (a step still in flight may run again after a crash)."""
    return step_durable(
        sql(stack, f"SELECT index, entry_type, name FROM sys_journal WHERE id = '{invocation}'"), step_prefix
    )


@pytest.fixture
def slow_operator(operator: Operator) -> Iterator[Operator]:
    """No watchers (only the test drives reconciles) and a durable pause after every apply."""
    operator.stop_watchers()
    assert operator.services
    operator.services.stop()
    operator.start_services(STEP_DELAY_SECONDS="3")
    try:
        yield operator
    finally:
        assert operator.services
        operator.services.stop()
        operator.start_services()
        operator.start_watcher()


def start_reconcile(stack: Stack, name: str) -> str:
    response = httpx.post(f"{stack.restate.ingress_url}/{SERVICE}/{name}/reconcile/send", json={}, timeout=30)
    response.raise_for_status()
    invocation: str = response.json()["invocationId"]
    procs.wait_until(
        "the Deployment step journaled", lambda: journaled(stack, invocation, "apply Deployment"), timeout=30
    )
    return invocation


def completed(stack: Stack, invocation: str) -> bool:
    rows = sql(stack, f"SELECT status FROM sys_invocation_status WHERE id = '{invocation}'")
    return bool(rows) and rows[0]["status"] == "completed"


def assert_reconciled(stack: Stack, name: str) -> None:
    """Status written for the current generation (without watchers, readiness comes with the next wake-up)."""
    obj = get(stack, "rce", name)
    assert obj is not None
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert condition(obj, "Ready")["reason"] in ("TunnelReady", "TunnelNotReady")
    assert get(stack, "service", f"tunnel-{name}", OPERATOR_NAMESPACE) is not None


def test_restate_killed_mid_reconcile_completes_each_side_effect_once(
    slow_operator: Operator, cloud_token: str
) -> None:
    stack, name = slow_operator.stack, unique("kill-restate")
    apply(stack, environment(name))
    start = writes(slow_operator)
    invocation = start_reconcile(stack, name)
    stack.restate.kill()
    stack.restate.start()
    procs.wait_until("the reconcile completed", lambda: completed(stack, invocation), timeout=90)
    assert_reconciled(stack, name)
    end = writes(slow_operator)
    assert {k: end[k] - start[k] for k in WRITES} == WRITES


def test_services_killed_mid_reconcile_completes_each_side_effect_once(
    slow_operator: Operator, cloud_token: str
) -> None:
    stack, name = slow_operator.stack, unique("kill-services")
    apply(stack, environment(name))
    start = writes(slow_operator)
    invocation = start_reconcile(stack, name)
    before_kill = writes(slow_operator)
    assert slow_operator.services
    slow_operator.services.kill()
    slow_operator.start_services(STEP_DELAY_SECONDS="3")
    procs.wait_until("the reconcile completed", lambda: completed(stack, invocation), timeout=90)
    assert_reconciled(stack, name)
    after_restart = writes(slow_operator)
    total = {k: before_kill[k] - start[k] + after_restart[k] for k in WRITES}
    assert total == WRITES


def test_manual_reconcile_and_status_work_as_documented(operator: Operator, cloud_token: str) -> None:
    stack, name = operator.stack, unique("manual")
    apply(stack, environment(name))
    obj = wait_ready(stack, name)
    # curl -X POST "$RESTATE_INGRESS_URL/CloudEnvironmentReconciler/<name>/reconcile" \
    #      -H 'content-type: application/json' -d '{}'
    result = httpx.post(f"{stack.restate.ingress_url}/{SERVICE}/{name}/reconcile", json={}, timeout=60)
    assert result.status_code == 200
    assert result.json() == {
        "action": "converged",
        "reason": "TunnelReady",
        "message": "1/1 tunnel replicas available",
        "requeue_after_seconds": None,
    }
    # curl "$RESTATE_INGRESS_URL/CloudEnvironmentReconciler/<name>/status"
    state = httpx.get(f"{stack.restate.ingress_url}/{SERVICE}/{name}/status", timeout=30).json()
    assert state["uid"] == obj["metadata"]["uid"]
    assert state["ready"] is True
    assert state["reconciles"] >= 2
    # restate state get CloudEnvironmentReconciler <name>
    cli = subprocess.run(
        [str(tools.restate_cli_bin()), "state", "get", SERVICE, name],
        capture_output=True,
        text=True,
        timeout=30,
        env={
            "RESTATE_ADMIN_URL": stack.restate.admin_url,
            "RESTATE_INGRESS_URL": stack.restate.ingress_url,
            "CI": "true",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert cli.returncode == 0, cli.stderr
    assert obj["metadata"]["uid"] in cli.stdout


def test_deletion_removes_our_finalizer_even_when_another_manager_added_it(
    operator: Operator, cloud_token: str
) -> None:
    """Upstream adds its finalizers by JSON patch (manager "unknown"): a swap of operators must not hang deletes."""
    stack, name = operator.stack, unique("adopted")
    cp = stack.control_plane
    created = environment(name)
    created["metadata"]["finalizers"] = ["cloudenvironments.restate.dev", "example.com/keep"]
    cp.kubectl("create", "-f", "-", input=json.dumps(created))  # an Update by kubectl, not our apply
    wait_ready(stack, name)
    stored = json.loads(cp.kubectl("get", "rce", name, "-o", "json", "--show-managed-fields"))
    fields = stored["metadata"]["managedFields"]
    managers = [m["manager"] for m in fields if "f:finalizers" in json.dumps(m.get("fieldsV1", {}))]
    assert "restate-operator/finalizer" not in managers, "our finalizer was already there: we never applied it"
    cp.kubectl("delete", "rce", name, "--wait=false")

    def only_foreign_left() -> bool:
        obj = get(stack, "rce", name)
        return obj is not None and obj["metadata"].get("finalizers") == ["example.com/keep"]

    procs.wait_until("our finalizer removed, the other kept", only_foreign_left, timeout=60)
    cp.kubectl("patch", "rce", name, "--type=json", "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]')
    procs.wait_until("deleted", lambda: get(stack, "rce", name) is None, timeout=30)
