"""RestateDeployment end to end: real SDK services (examples/versioned) behind kwok pods, registered
with the real restate-server, driven by the operator's real processes.

The Restate service name `Versioned` is shared by every test here, so the tests run one after
another in file order (pytest's default; the tier sort in devstack/pytest_plugin.py is stable and
keeps it) and each removes its RestateDeployment (and with it every registration) before the next
starts. None relies on what an earlier one left behind; never run them in parallel or shuffled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack import procs
from devstack.images import VERSIONED_IMAGE
from devstack.operator import Operator
from devstack.stack import Stack
from tests.e2e.versioned import (
    NAME,
    call,
    deployments,
    namespace_for,
    output,
    phases,
    reconciler_url,
    versions,
    wait_ready,
    whoami,
)
from tests.helpers import apply, condition, get, sql, step_durable

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]


def rsd(namespace: str, tag: str, stack: Stack, autoscaling: Obj | None = None, **restate: Any) -> Obj:
    obj: Obj = {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {
                    "containers": [
                        {
                            "name": NAME,
                            "image": f"{VERSIONED_IMAGE}:{tag}",
                            "ports": [{"name": "restate", "containerPort": 9080}],
                        }
                    ]
                },
            },
            "restate": {"register": {"url": stack.restate.admin_url}, "drainDelaySeconds": 1, **restate},
        },
    }
    if autoscaling:
        obj["spec"]["autoscaling"] = autoscaling
    return obj


def latest_name(obj: Obj) -> str:
    return str(next(v["name"] for v in obj["status"]["versions"] if v["phase"] == "Latest"))


def registered_uris(stack: Stack) -> list[str]:
    return [d["uri"] for d in deployments(stack).values()]


def invocation_done(stack: Stack, invocation: str) -> bool:
    return output(stack, invocation) is not None


@pytest.fixture
def ns(operator: Operator) -> Iterator[str]:
    """A namespace for one RestateDeployment, which is deleted (and deregistered) afterwards."""
    with namespace_for(operator.stack, "rollout") as name:
        yield name


def test_v1_becomes_ready_and_serves(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack))
    obj = wait_ready(stack, ns)
    assert whoami(stack) == "v1"
    status = obj["status"]
    (version,) = status["versions"]
    assert version["phase"] == "Latest"
    assert status["deploymentId"] == version["deploymentId"]
    assert f"http://{version['name']}.{ns}.svc.cluster.local:9080/" in registered_uris(stack)
    # Without spec.selector, upstream selects a version's pods by the hash alone.
    assert status["labelSelector"] == f"pod-template-hash={version['hash']}"
    rs = get(stack, "rs", version["name"], ns)
    assert rs is not None
    assert rs["metadata"]["annotations"]["restate.dev/deployment-id"] == version["deploymentId"]
    service = get(stack, "service", version["name"], ns)
    assert service is not None
    assert service["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": version["name"],
            "uid": rs["metadata"]["uid"],
            "controller": True,
        }
    ], "owned by its ReplicaSet, as upstream's"
    stable = get(stack, "service", NAME, ns)
    assert stable is not None
    assert stable["spec"]["selector"]["pod-template-hash"] == version["hash"]


AUTOSCALING = {"maxReplicas": 4, "minReplicas": 0}


def test_v2_rollout_drains_v1_before_retiring_it(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack, autoscaling=AUTOSCALING))
    v1 = latest_name(wait_ready(stack, ns))
    held = call(stack, "hold", 8, send=True).json()["invocationId"]
    procs.wait_until(
        "the long invocation runs on v1",
        lambda: bool(
            sql(
                stack,
                f"SELECT pinned_deployment_id FROM sys_invocation_status WHERE id = '{held}' "
                "AND pinned_deployment_id IS NOT NULL",
            )
        ),
        timeout=30,
    )

    apply(stack, rsd(ns, "v2", stack, autoscaling=AUTOSCALING))
    v2 = latest_name(wait_ready(stack, ns))
    assert v2 != v1
    assert whoami(stack) == "v2"
    procs.wait_until("v1 Draining", lambda: phases(stack, ns).get(v1) == "Draining", timeout=30)
    assert versions(stack, ns)[v1]["activeInvocations"] >= 1
    rs_v1 = get(stack, "rs", v1, ns)
    assert rs_v1 is not None
    assert rs_v1["spec"]["replicas"] == 1, "a draining version keeps its pods"
    assert rs_v1["metadata"]["generation"] == 1, "a superseded version's ReplicaSet is not rewritten"
    assert "restate.dev/latest" not in rs_v1["metadata"]["labels"]
    assert any(v1 in uri for uri in registered_uris(stack)), "a draining version stays registered"
    hpa = get(stack, "hpa", v1, ns)
    assert hpa is not None, "a draining version scales with its remaining load"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": v1}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert get(stack, "hpa", v2, ns) is None, "the latest version scales with the resource itself"

    procs.wait_until("the long invocation finished", lambda: invocation_done(stack, held), timeout=30)
    output = httpx.get(f"{stack.restate.ingress_url}/restate/invocation/{held}/output", timeout=30).json()
    assert output == "started on v1, finished on v1"
    procs.wait_until("v1 Drained", lambda: phases(stack, ns).get(v1) == "Drained", timeout=30)
    assert not any(v1 in uri for uri in registered_uris(stack)), "deregistered before scale-down"
    assert get(stack, "hpa", v1, ns) is None
    rs_v1 = get(stack, "rs", v1, ns)
    assert rs_v1 is not None
    assert rs_v1["spec"]["replicas"] == 0


def test_a_draining_version_retires_on_the_news_that_its_invocations_finished(operator: Operator, ns: str) -> None:
    """Not at the next drain poll (every 10 s): `InvocationWatch` attaches to the pinned invocation
    and asks for the pass that retires the version once it finished."""
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest_name(wait_ready(stack, ns))
    # Long enough to outlast the rollout on a loaded machine: v1 must drain while it still runs.
    held = call(stack, "hold", 15, send=True).json()["invocationId"]
    pinned = f"SELECT id FROM sys_invocation_status WHERE id = '{held}' AND pinned_deployment_id IS NOT NULL"
    procs.wait_until("the invocation runs on v1", lambda: bool(sql(stack, pinned)), timeout=30)
    apply(stack, rsd(ns, "v2", stack))
    wait_ready(stack, ns)
    procs.wait_until("v1 Draining", lambda: phases(stack, ns).get(v1) == "Draining", timeout=30)
    assert not invocation_done(stack, held), "the rollout outlasted the held invocation: nothing to watch"

    procs.wait_until("the invocation finished", lambda: invocation_done(stack, held), timeout=30)
    procs.wait_until("v1 Drained", lambda: phases(stack, ns).get(v1) == "Drained", timeout=30)
    woken = sql(
        stack,
        "SELECT status FROM sys_invocation WHERE target_service_name = 'DeploymentReconciler' "
        f"AND target_service_key = '{ns}/{NAME}' AND idempotency_key LIKE 'work:%'",
    )
    assert [row["status"] for row in woken] == ["completed"], "one pass on the news, once"


def test_rollback_repromotes_v1_in_restate(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest_name(wait_ready(stack, ns))
    apply(stack, rsd(ns, "v2", stack))
    wait_ready(stack, ns)
    procs.wait_until("v1 Drained", lambda: phases(stack, ns).get(v1) == "Drained", timeout=30)
    apply(stack, rsd(ns, "v1", stack))
    obj = wait_ready(stack, ns)
    assert latest_name(obj) == v1
    assert whoami(stack) == "v1", "Ready means Restate routes new invocations to the desired version"


def test_deletion_waits_for_active_invocations_and_says_why(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest_name(wait_ready(stack, ns))
    held = call(stack, "hold", 6, send=True).json()["invocationId"]
    procs.wait_until(
        "the invocation is pinned",
        lambda: bool(
            sql(stack, f"SELECT id FROM sys_invocation_status WHERE id = '{held}' AND pinned_deployment_id IS NOT NULL")
        ),
        timeout=30,
    )
    stack.control_plane.kubectl("delete", "rsd", NAME, "-n", ns, "--wait=false")

    def blocked() -> bool:
        return condition(get(stack, "rsd", NAME, ns), "Ready").get("reason") == "DeletionBlocked"

    procs.wait_until("DeletionBlocked", blocked, timeout=30)
    message = condition(get(stack, "rsd", NAME, ns), "Ready")["message"]
    assert f"{v1} has 1 unfinished invocation(s)" in message
    assert "forceDrain" in message
    assert invocation_done(stack, held) is False
    procs.wait_until("deletion completes after the drain", lambda: get(stack, "rsd", NAME, ns) is None, timeout=60)
    (row,) = sql(stack, f"SELECT status, completion_result FROM sys_invocation_status WHERE id = '{held}'")
    assert (row["status"], row["completion_result"]) == ("completed", "success")
    assert not any(v1 in uri for uri in registered_uris(stack))


def test_breaking_change_is_degraded_with_restates_message_and_no_retry_storm(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest_name(wait_ready(stack, ns))
    apply(stack, rsd(ns, "breaking", stack))

    def degraded() -> bool:
        return condition(get(stack, "rsd", NAME, ns), "Degraded").get("status") == "True"

    procs.wait_until("Degraded", degraded, timeout=60)
    rejected = condition(get(stack, "rsd", NAME, ns), "Degraded")
    assert rejected["reason"] == "AdminCallRejected"
    assert "META0006" in rejected["message"]
    assert "changing the service type" in rejected["message"]
    key = f"{ns}/{NAME}"
    count = f"SELECT count(*) AS n FROM sys_invocation_status WHERE target_service_key = '{key}'"

    def nothing_running() -> list[Obj] | None:
        """Every reconcile of it finished (a wake-up may stay scheduled: it is counted already)."""
        rows = sql(stack, f"SELECT status FROM sys_invocation_status WHERE target_service_key = '{key}'")
        return rows if all(r["status"] in ("completed", "scheduled") for r in rows) else None

    settled = len(procs.wait_until("the rejecting reconcile finished", nothing_running, timeout=30))
    procs.holds_for(
        "a rejected registration is not retried by itself",
        lambda: sql(stack, count)[0]["n"] == settled,
        seconds=5,
    )
    assert whoami(stack) == "v1", "the old version keeps serving"
    assert phases(stack, ns)[v1] == "Latest"


def test_services_killed_between_replicaset_and_registration_registers_once(operator: Operator, ns: str) -> None:
    stack = operator.stack
    assert operator.services
    operator.services.stop()
    operator.start_services(STEP_DELAY_SECONDS="2")
    try:
        before = registrations(operator)
        apply(stack, rsd(ns, "v1", stack))
        key = f"{ns}/{NAME}"

        def replica_set_created() -> bool:
            rows = sql(
                stack,
                "SELECT j.index AS index, j.entry_type AS entry_type, j.name AS name FROM sys_journal j "
                "JOIN sys_invocation_status s ON j.id = s.id "
                f"WHERE s.target_service_key = '{key}' AND s.status != 'completed'",
            )
            return step_durable(rows, "apply ReplicaSet")

        procs.wait_until("ReplicaSet step journaled", replica_set_created, timeout=30)
        assert not any(f".{ns}.svc." in uri for uri in registered_uris(stack))
        partial = registrations(operator) - before
        assert operator.services
        operator.services.kill()
        # The same settings: the interrupted invocation replays its journal, pauses included.
        operator.start_services(STEP_DELAY_SECONDS="2")
        obj = wait_ready(stack, ns, timeout=90)
        total = partial + registrations(operator)
        assert total == 1, f"{total} registrations"
        assert [uri for uri in registered_uris(stack) if f".{ns}.svc." in uri] == [
            f"http://{latest_name(obj)}.{ns}.svc.cluster.local:9080/"
        ]
    finally:
        # Remove the resource while the settings still match, then wait until nothing of it runs:
        # a reconcile interrupted now would replay its journal without the pauses it recorded.
        stack.control_plane.kubectl("delete", "rsd", NAME, "-n", ns, "--ignore-not-found", "--wait=false")
        procs.wait_until("RestateDeployment deleted", lambda: get(stack, "rsd", NAME, ns) is None, timeout=60)
        procs.wait_until(
            "no reconcile running",
            lambda: (
                not sql(
                    stack,
                    "SELECT id FROM sys_invocation_status WHERE target_service_key = "
                    f"'{ns}/{NAME}' AND status NOT IN ('completed', 'scheduled', 'inboxed')",
                )
            ),
            timeout=60,
        )
        assert operator.services
        operator.services.stop()
        operator.start_services()


def registrations(operator: Operator) -> float:
    samples = operator.metrics(operator.services_probes_port)
    return samples.get('restate_operator_admin_calls_total{operation="register",outcome="ok"}', 0.0)


def test_held_registration_waits_for_promote(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack, registrationPolicy="Held"))

    def held() -> bool:
        return "Held" in phases(stack, ns).values()

    procs.wait_until("Held", held, timeout=60)
    assert condition(get(stack, "rsd", NAME, ns), "Ready")["reason"] == "RegistrationHeld"
    assert not any(f".{ns}.svc." in uri for uri in registered_uris(stack))
    result = httpx.post(reconciler_url(stack, ns, "promote"), json={}, timeout=60)
    assert result.status_code == 200, result.text
    obj = wait_ready(stack, ns)
    assert phases(stack, ns)[latest_name(obj)] == "Latest"
    assert whoami(stack) == "v1"


def test_pause_stops_new_registrations_until_resume(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest_name(wait_ready(stack, ns))
    assert httpx.post(reconciler_url(stack, ns, "pause"), json={}, timeout=60).status_code == 200
    apply(stack, rsd(ns, "v2", stack))

    def paused() -> bool:
        return condition(get(stack, "rsd", NAME, ns), "Ready").get("reason") == "Paused"

    procs.wait_until("Paused", paused, timeout=30)
    assert whoami(stack) == "v1"
    assert httpx.post(reconciler_url(stack, ns, "resume"), json={}, timeout=60).status_code == 200
    obj = wait_ready(stack, ns)
    assert latest_name(obj) != v1
    assert whoami(stack) == "v2"


def test_scale_subresource_resizes_only_the_latest_version(operator: Operator, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, "v1", stack))
    v1 = latest_name(wait_ready(stack, ns))
    stack.control_plane.kubectl("scale", "rsd", NAME, "-n", ns, "--replicas=2")

    def scaled() -> bool:
        rs = get(stack, "rs", v1, ns)
        obj = get(stack, "rsd", NAME, ns)
        return bool(rs and obj and rs["spec"]["replicas"] == 2 and obj["status"].get("replicas") == 2)

    procs.wait_until("scaled to 2", scaled, timeout=60)
    scale = get(stack, "rsd", NAME, ns)
    assert scale is not None
    assert scale["status"]["labelSelector"].endswith(f"pod-template-hash={v1.rsplit('-', 1)[1]}")


def test_hash_collision_moves_to_the_next_name(operator: Operator, ns: str) -> None:
    """A foreign ReplicaSet squatting on the version's name is never adopted or overwritten."""
    from services.builders import deployment as build

    stack = operator.stack
    wanted = rsd(ns, "v1", stack)
    # The hash covers the template as stored (with the apiserver's defaults, e.g. port protocol).
    stored = json.loads(
        stack.control_plane.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(wanted))
    )
    squatted = build.version_name(stored, build.version_hash(stored))
    stack.control_plane.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": squatted, "namespace": ns},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"squat": "yes"}},
                    "template": {
                        "metadata": {"labels": {"squat": "yes"}},
                        "spec": {"containers": [{"name": "c", "image": "other:1"}]},
                    },
                },
            }
        ),
    )
    apply(stack, wanted)
    obj = wait_ready(stack, ns)
    assert obj["status"]["collisionCount"] == 1
    assert latest_name(obj) != squatted
    untouched = get(stack, "rs", squatted, ns)
    assert untouched is not None
    assert untouched["spec"]["template"]["spec"]["containers"][0]["image"] == "other:1"
    assert whoami(stack) == "v1"


def side_whoami(stack: Stack) -> httpx.Response:
    return call(stack, "whoami", service="VersionedSide")


def test_superseded_version_stays_while_it_is_the_latest_for_a_service(operator: Operator, ns: str) -> None:
    """v1 serves Versioned and VersionedSide, v2 only Versioned: deregistering v1 once it drained
    would remove VersionedSide from Restate."""
    stack = operator.stack
    apply(stack, rsd(ns, "v1-side", stack))
    v1 = latest_name(wait_ready(stack, ns))
    assert side_whoami(stack).json() == "v1-side"
    apply(stack, rsd(ns, "v2", stack))
    v2 = latest_name(wait_ready(stack, ns))
    assert v2 != v1
    assert whoami(stack) == "v2"

    procs.wait_until("v1 Draining", lambda: phases(stack, ns).get(v1) == "Draining", timeout=30)

    def v1_stays() -> bool:
        """Observed only: invoking VersionedSide meanwhile would keep v1 busy, hiding a retirement."""
        assert phases(stack, ns).get(v1) == "Draining"
        assert any(v1 in uri for uri in registered_uris(stack)), "v1 is not deregistered"
        rs_v1 = get(stack, "rs", v1, ns)
        assert rs_v1 is not None
        assert rs_v1["spec"]["replicas"] == 1, "it keeps its pods while it serves"
        return True

    # drainDelaySeconds is 1: a retired v1 would be gone well within the window.
    procs.holds_for("v1 stays registered, Draining and scaled up", v1_stays, seconds=6)
    response = side_whoami(stack)
    assert response.status_code == 200, response.text
    assert response.json() == "v1-side"
    message = condition(get(stack, "rsd", NAME, ns), "Ready")["message"]
    assert f"{v1} stays: it is still the latest deployment of VersionedSide" in message


def test_users_service_named_like_the_resource_is_left_alone(operator: Operator, ns: str) -> None:
    stack = operator.stack
    users = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": ns, "labels": {"owner": "user"}},
        "spec": {"selector": {"app": "users-own"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }
    stack.control_plane.kubectl("create", "-f", "-", input=json.dumps(users))
    before = get(stack, "service", NAME, ns)
    assert before is not None
    apply(stack, rsd(ns, "v1", stack))
    obj = wait_ready(stack, ns)
    assert whoami(stack) == "v1", "the versions work without the stable Service"
    conflict = condition(obj, "StableServiceConflict")
    assert (conflict["status"], conflict["reason"]) == ("True", "ServiceNotOwned")
    assert f"Service {ns}/{NAME} exists and is not controlled by this RestateDeployment" in conflict["message"]
    after = get(stack, "service", NAME, ns)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "untouched"
    assert "ownerReferences" not in after["metadata"]
    assert after["spec"]["selector"] == {"app": "users-own"}
    events = json.loads(
        stack.control_plane.kubectl(
            "get",
            "events.events.k8s.io",
            "-n",
            ns,
            "-o",
            "json",
            f"--field-selector=regarding.name={NAME},type=Warning",
        )
    )["items"]
    assert [e["reason"] for e in events] == ["ServiceNotOwned"], "one Warning, not one per pass"
