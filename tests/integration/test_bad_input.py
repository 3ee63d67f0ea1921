"""Bad input at run time, as a new user meets it: what admission cannot know, the operator must
report on the resource itself. For every `runtime` case of `bad_input_cases`: Ready=False and
Degraded=True for the current generation with a message that names the cause (no Python repr),
exactly one Warning Event saying the same, nothing of the version half-applied (no ReplicaSet, no
Service), and the operator still healthy. Then the cases only a live stack shows: an unreachable
or non-Restate admin URL, and a fixed spec that recovers.

All cases are applied at once and checked one by one, so the module costs one reconcile round,
not one per case; one operator serves them all. Covered elsewhere: a Restate that rejects a
version (META0006, `tests/e2e/test_rollout.py::test_breaking_change_is_degraded_...`) and a Service
of the resource's name owned by someone else (`tests/e2e/test_rollout.py`, the stable Service
conflict); a missing RestateCluster / RestateCloudEnvironment target is the lead's `targets.py`.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack import procs
from devstack.operator import Operator
from devstack.stack import Stack
from tests.helpers import apply, condition, get
from tests.integration.bad_input_cases import CASES, Case, build, rsd

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
RUNTIME = [c for c in CASES if c.where == "runtime" and c.kind == "RestateDeployment"]
REPR = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Timeout)\(")


def rsd_name(case: Case) -> str:
    return f"bad-{case.id}"[:52].rstrip("-")


@pytest.fixture(scope="module")
def ns(operator: Operator) -> Iterator[str]:
    name = f"bad-rt-{uuid.uuid4().hex[:6]}"
    operator.stack.control_plane.kubectl("create", "namespace", name)
    yield name
    operator.stack.control_plane.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def applied(operator: Operator, ns: str) -> dict[str, Obj]:
    """Every run-time case applied at once (the operator reconciles them side by side)."""
    stack, objs = operator.stack, {}
    for case in RUNTIME:
        obj = build(case, name="svc", namespace=ns, admin_url=stack.restate.admin_url)
        if case.name is None:
            obj["metadata"]["name"] = rsd_name(case)
        else:
            obj["metadata"]["name"] = case.name
        apply(stack, obj)
        objs[case.id] = obj
    return objs


def events_about(stack: Stack, namespace: str, name: str) -> list[Obj]:
    listed = stack.control_plane.kubectl(
        "get", "events.events.k8s.io", "-n", namespace, "-o", "json", f"--field-selector=regarding.name={name}"
    )
    return [e for e in json.loads(listed)["items"] if e.get("type") == "Warning"]


def wait_degraded(stack: Stack, namespace: str, name: str, timeout: float = 90) -> Obj:
    found: dict[str, Obj] = {}

    def degraded() -> bool:
        obj = get(stack, "rsd", name, namespace)
        cond = condition(obj, "Degraded")
        if obj and cond.get("status") == "True" and cond.get("observedGeneration") == obj["metadata"]["generation"]:
            found["obj"] = obj
            return True
        return False

    procs.wait_until(f"{namespace}/{name} Degraded", degraded, timeout=timeout)
    return found["obj"]


def owned(stack: Stack, kind: str, namespace: str, uid: str) -> list[str]:
    listed = json.loads(stack.control_plane.kubectl("get", kind, "-n", namespace, "-o", "json"))["items"]
    return [
        o["metadata"]["name"]
        for o in listed
        if any(ref.get("uid") == uid for ref in o["metadata"].get("ownerReferences") or [])
    ]


def assert_readable(message: str) -> None:
    assert not REPR.search(message), message
    assert "[Errno" not in message, message
    assert "Traceback" not in message, message


@pytest.mark.parametrize("case", RUNTIME, ids=lambda c: c.id)
def test_bad_input_admission_cannot_know_is_degraded_with_one_warning_and_nothing_applied(
    operator: Operator, ns: str, applied: dict[str, Obj], case: Case
) -> None:
    stack, name = operator.stack, applied[case.id]["metadata"]["name"]
    obj = wait_degraded(stack, ns, name)
    degraded, ready = condition(obj, "Degraded"), condition(obj, "Ready")
    assert ready["status"] == "False"
    print(f"\nbad-input {case.id}: {degraded['message']}")
    assert case.says in degraded["message"], degraded["message"]
    assert "fix the field it names in this resource's spec" in degraded["message"], "what to do"
    assert " /apis/" not in degraded["message"], "no request path in front of the apiserver's own words"
    assert_readable(degraded["message"])
    warnings = events_about(stack, ns, name)
    assert [e["note"] for e in warnings] == [degraded["message"]], "exactly one Warning Event, saying the same"
    uid = obj["metadata"]["uid"]
    assert owned(stack, "rs", ns, uid) == [], "no ReplicaSet of a version that cannot be built"
    assert procs.http_ok(f"http://127.0.0.1:{operator.services_probes_port}/healthz")


@pytest.fixture(scope="module")
def not_restate() -> Iterator[str]:
    """An HTTP server that is not Restate (it answers every request like a web server's 404 page)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def _page(self) -> None:
            body = b"<html><body>404 Not Found</body></html>"
            self.send_response(404)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _page

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, name="not-restate", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def wait_condition_message(stack: Stack, namespace: str, name: str, type_: str, needle: str) -> Obj:
    found: dict[str, Obj] = {}

    def says() -> bool:
        cond = condition(get(stack, "rsd", name, namespace), type_)
        if needle in (cond.get("message") or ""):
            found["cond"] = cond
            return True
        return False

    procs.wait_until(f"{name} {type_} saying {needle!r}", says, timeout=60)
    return found["cond"]


def test_an_unreachable_register_url_names_the_url_the_cause_and_the_fix(operator: Operator, ns: str) -> None:
    """Regression: it read `TransientError: query Restate deployments: Unavailable("query:
    ConnectError('[Errno -2] Name or service not known')") (retrying)`. The first call to the admin
    API is the registration, once the pods are ready (a pass asks Restate nothing before that)."""
    stack, url = operator.stack, "http://restate.nowhere.invalid:9070"
    apply(stack, rsd("unreachable", ns, url))
    ready = wait_condition_message(stack, ns, "unreachable", "Ready", "does not resolve")
    assert ready["status"] == "False"
    assert ready["reason"] == "TransientError"
    step, _, said = ready["message"].partition(": ")
    assert step.startswith("register unreachable-"), step  # the step names the version it registers
    assert said == (
        f"Restate admin API {url} did not answer (register): its host name does not resolve; check that "
        "the URL names a Restate admin API (port 9070) the operator can reach (retrying)"
    )
    assert_readable(ready["message"])


def test_an_admin_url_that_is_not_restate_is_degraded_at_once_and_says_so(
    operator: Operator, ns: str, not_restate: str
) -> None:
    stack = operator.stack
    apply(stack, rsd("not-restate", ns, not_restate))
    obj = wait_degraded(stack, ns, "not-restate", timeout=60)
    message = condition(obj, "Degraded")["message"]
    assert "is not a Restate admin API's; point register at Restate's admin API (port 9070" in message
    assert not_restate in message
    assert_readable(message)
    assert len(events_about(stack, ns, "not-restate")) == 1


def test_fixing_the_spec_recovers(operator: Operator, ns: str, applied: dict[str, Obj], not_restate: str) -> None:
    """A degraded resource whose spec is fixed converges without a restart: Degraded clears once the
    operator gets past the step that failed (here: its ReplicaSet exists)."""
    stack = operator.stack
    obj = applied["port-too-big"]
    name = obj["metadata"]["name"]
    wait_degraded(stack, ns, name)
    fixed = rsd(name, ns, stack.restate.admin_url)
    apply(stack, fixed)

    def recovered() -> bool:
        current = get(stack, "rsd", name, ns)
        cond = condition(current, "Degraded")
        return bool(
            current
            and cond.get("status") == "False"
            and cond.get("observedGeneration") == current["metadata"]["generation"]
            and owned(stack, "rs", ns, current["metadata"]["uid"])
        )

    procs.wait_until(f"{name} recovered", recovered, timeout=60)
    assert httpx.get(f"http://127.0.0.1:{operator.services_probes_port}/readyz", timeout=10).status_code == 200


def huge(name: str, namespace: str, admin_url: str, size: int) -> Obj:
    obj = rsd(name, namespace, admin_url)
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "BLOB", "value": "x" * size}]
    return obj


def test_a_huge_template_is_degraded_with_the_size_limit_it_hits(operator: Operator, ns: str) -> None:
    """A 1.4 MiB spec (under etcd's 1.5 MiB) is stored, but each version's ReplicaSet carries the
    template twice, once as its `restate.dev/pod-template` annotation (as upstream's), and
    annotations are limited to 256 KiB: Degraded at once, saying why and what to do, and no ReplicaSet."""
    stack = operator.stack
    body = json.dumps(huge("huge", ns, stack.restate.admin_url, 1_400_000))
    stack.control_plane.kubectl("create", "-f", "-", input=body)  # not apply: its annotation would be too big
    obj = wait_degraded(stack, ns, "huge")
    message = condition(obj, "Degraded")["message"]
    assert re.search(r"spec\.template is 13\d\d KiB as JSON", message), message
    assert "limits an object's annotations to 256 KiB: make the template smaller" in message
    assert len(message) <= 500
    assert_readable(message)
    assert owned(stack, "rs", ns, obj["metadata"]["uid"]) == []
    assert len(events_about(stack, ns, "huge")) == 1


def test_a_spec_beyond_the_object_limit_is_refused_by_the_apiserver(operator: Operator, ns: str) -> None:
    stack = operator.stack
    body = json.dumps(huge("too-huge", ns, stack.restate.admin_url, 1_700_000))
    result = stack.control_plane.kubectl_result("create", "-f", "-", input=body)
    assert result.returncode != 0
    assert "too large" in result.stderr.lower(), result.stderr[:300]
    assert get(stack, "rsd", "too-huge", ns) is None
