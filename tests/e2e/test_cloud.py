"""`register.cloud` end to end, against a local double of Restate Cloud (devstack/cloud.py).

The double is the stack's restate-server behind a TLS front that demands the environment's API
token and serves the admin API and ingress under the environment's host name, plus a tunnel that
reaches the version's pods only as Restate Cloud would: through a connected tunnel client (the
RestateCloudEnvironment's Deployment, available) or the pod holding an in-process tunnel. Like
test_rollout.py, these tests share the Restate service `Versioned`: they run one after another.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from devstack import procs
from devstack.cloud import CloudDouble
from devstack.operator import OPERATOR_NAMESPACE, Operator
from devstack.stack import Stack
from tests.e2e.cloud import REGION, SECRET, environment, set_token, through_cloud
from tests.e2e.test_rollout import rsd as rollout_rsd
from tests.e2e.versioned import NAME, deployments, namespace_for, phases, pinned, versions, wait_ready
from tests.helpers import apply, condition, get, sql

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]


def rsd(namespace: str, tag: str, stack: Stack, cloud: str, **restate: Any) -> Obj:
    """test_rollout's RestateDeployment, registered through the environment `cloud`."""
    return rollout_rsd(namespace, tag, stack, register={"cloud": cloud}, **restate)


def reason(stack: Stack, namespace: str) -> tuple[str, str]:
    ready = condition(get(stack, "rsd", NAME, namespace), "Ready")
    return ready.get("reason", ""), ready.get("message", "")


def wait_reason(stack: Stack, namespace: str, wanted: str, timeout: float = 60) -> str:
    procs.wait_until(f"Ready reason {wanted}", lambda: reason(stack, namespace)[0] == wanted, timeout=timeout)
    return reason(stack, namespace)[1]


def assert_no_secret(stack: Stack, *secrets: str) -> None:
    """Scan what a person (or an attacker with read access) can see: Restate's journals and state
    (`restate sql`), the reconcilers' Events and statuses, and every log of the stack."""
    seen = {
        "journal": json.dumps(sql(stack, "SELECT * FROM sys_journal")),
        "state": json.dumps(sql(stack, "SELECT * FROM state")),
        "invocations": json.dumps(sql(stack, "SELECT * FROM sys_invocation")),
        "events": stack.control_plane.kubectl("get", "events", "-A", "-o", "json"),
        "resources": stack.control_plane.kubectl("get", "rsd,rce", "-A", "-o", "json"),
    }
    for log in (stack.work / "logs").glob("*.log"):
        seen[log.name] = log.read_text(errors="replace")
    leaks = [(where, secret) for where, text in seen.items() for secret in secrets if secret in text]
    assert leaks == []
    assert "query Restate deployments" in seen["journal"], "the scan reads the reconcilers' journals"


def test_cloud_deployment_registers_through_the_tunnel_rolls_out_and_survives_token_trouble(
    operator: Operator, cloud: CloudDouble
) -> None:
    stack = operator.stack
    env_name = f"e2e-{cloud.environment_id[:6]}"
    with namespace_for(stack, "cloud") as ns:
        # Before its RestateCloudEnvironment exists: said by name, and recovered from when it appears.
        apply(stack, rsd(ns, "v1", stack, env_name))
        message = wait_reason(stack, ns, "RestateCloudEnvironmentNotFound")
        assert f"RestateCloudEnvironment {env_name} not found" in message
        assert "spec.restate.register.cloud" in message
        apply(stack, environment(env_name, cloud.environment_id))
        procs.wait_until(
            "RestateCloudEnvironment Ready",
            lambda: condition(get(stack, "rce", env_name), "Ready").get("status") == "True",
            timeout=60,
        )
        rce = get(stack, "rce", env_name)
        assert rce is not None
        uid = rce["metadata"]["uid"]
        assert rce["status"]["adminUrl"] == f"https://{cloud.environment_id}.env.{REGION}.restate.cloud:9070"
        assert rce["status"]["tunnelName"] == uid

        v1 = wait_ready(stack, ns, timeout=90)["status"]["versions"][0]["name"]
        uris = [d["uri"] for d in deployments(stack).values()]
        assert (
            f"https://tunnel.{REGION}.restate.cloud:9080/{cloud.environment_id}/{uid}/http/"
            f"{v1}.{ns}.svc.cluster.local/9080/"
        ) in uris, uris
        answered = sum(n for (listener, status), n in cloud.requests.items() if listener == "admin" and status < 300)
        assert answered > 0, "the operator registered through the cloud admin API"
        assert through_cloud(cloud, "whoami").json() == "v1"

        # Roll out v2 with an invocation in flight on v1: it finishes on v1, then v1 drains.
        held = through_cloud(cloud, "hold", 6, send=True).json()["invocationId"]
        procs.wait_until("the long invocation runs on v1", lambda: pinned(stack, held), timeout=30)
        apply(stack, rsd(ns, "v2", stack, env_name))
        obj = wait_ready(stack, ns, timeout=90)
        v2 = next(v["name"] for v in obj["status"]["versions"] if v["phase"] == "Latest")
        assert v2 != v1
        assert through_cloud(cloud, "whoami").json() == "v2"
        with cloud.ingress() as ingress:
            procs.wait_until(
                "the long invocation finished",
                lambda: ingress.get(f"/restate/invocation/{held}/output").status_code == 200,
                timeout=60,
            )
            assert ingress.get(f"/restate/invocation/{held}/output").json() == "started on v1, finished on v1"
        procs.wait_until("v1 drained", lambda: phases(stack, ns).get(v1) == "Drained", timeout=60)
        assert not any(v1 in d["uri"] for d in deployments(stack).values()), "v1 deregistered through the cloud"

        # A wrong token: Degraded, naming the Secret, one Warning, no retry storm, the token never shown.
        set_token(stack, "wrong-token")
        message = wait_reason(stack, ns, "CloudTokenRejected")
        assert f"Secret {OPERATOR_NAMESPACE}/{SECRET}" in message, message
        assert "HTTP 401" in message, message
        degraded = condition(get(stack, "rsd", NAME, ns), "Degraded")
        assert degraded.get("status") == "True"
        refused = cloud.requests[("admin", 401)]
        time.sleep(10)
        assert cloud.requests[("admin", 401)] - refused <= 1, "a refused token is not retried in a loop"
        shown = json.dumps(get(stack, "rsd", NAME, ns)) + stack.control_plane.kubectl(
            "get", "events", "-n", ns, "-o", "json"
        )
        assert "wrong-token" not in shown
        assert "right-token" not in shown

        # Rotated: the Secret's change alone brings it back (no restart, no spec change).
        cloud.token = "rotated-token"
        set_token(stack, "rotated-token")
        wait_ready(stack, ns, timeout=60)
        assert condition(get(stack, "rsd", NAME, ns), "Degraded").get("status") == "False"
        assert through_cloud(cloud, "whoami").json() == "v2"

        # No token value anywhere the operator writes: journals, state, logs (of every process here).
        assert_no_secret(stack, "right-token", "wrong-token", "rotated-token")

        # The environment deleted: its dependants say so; its tunnel goes with it.
        stack.control_plane.kubectl("delete", "rce", env_name, "--wait=true", "--timeout=60s")
        message = wait_reason(stack, ns, "RestateCloudEnvironmentNotFound")
        assert env_name in message
        procs.wait_until(
            "tunnel Deployment collected",
            lambda: get(stack, "deployment", f"tunnel-{env_name}", OPERATOR_NAMESPACE) is None,
            timeout=60,
        )


def test_in_process_tunnel_injects_the_environment_and_registers_the_pods_own_tunnel(
    operator: Operator, cloud: CloudDouble
) -> None:
    stack = operator.stack
    env_name = f"inproc-{cloud.environment_id[:6]}"
    set_token(stack, cloud.token)
    apply(stack, environment(env_name, cloud.environment_id))
    try:
        with namespace_for(stack, "inproc") as ns:
            apply(stack, rsd(ns, "v1", stack, env_name, tunnelMode="in-process"))
            v1 = wait_ready(stack, ns, timeout=90)["status"]["versions"][0]["name"]
            uris = [d["uri"] for d in deployments(stack).values()]
            tunnel_url = f"https://tunnel.{REGION}.restate.cloud:9080/{cloud.environment_id}/{v1}/http/in-process/9080/"
            assert tunnel_url in uris, uris
            rs = get(stack, "rs", v1, ns)
            assert rs is not None
            assert rs["metadata"]["annotations"]["restate.dev/tunnel-name"] == v1
            env = {e["name"]: e["value"] for e in rs["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env == {
                "RESTATE_INPROC_TUNNEL_NAME": v1,
                "RESTATE_INPROC_ENVIRONMENT_ID": f"env_{cloud.environment_id}",
                "RESTATE_INPROC_CLOUD_REGION": REGION,
                "RESTATE_INPROC_SIGNING_PUBLIC_KEY": environment(env_name, "")["spec"]["signingPublicKey"],
            }
            assert through_cloud(cloud, "whoami").json() == "v1"

            apply(stack, rsd(ns, "v2", stack, env_name, tunnelMode="in-process"))
            obj = wait_ready(stack, ns, timeout=90)
            v2 = next(v["name"] for v in obj["status"]["versions"] if v["phase"] == "Latest")
            assert through_cloud(cloud, "whoami").json() == "v2"
            procs.wait_until("v1 drained", lambda: phases(stack, ns).get(v1) == "Drained", timeout=60)
            assert tunnel_url not in [d["uri"] for d in deployments(stack).values()]
            assert set(versions(stack, ns)) == {v1, v2}
    finally:
        stack.control_plane.kubectl("delete", "rce", env_name, "--ignore-not-found", "--wait=false")
        for deployment in deployments(stack).values():
            if "/in-process/" in deployment["uri"]:
                httpx.delete(f"{stack.restate.admin_url}/deployments/{deployment['id']}", params={"force": "true"})
