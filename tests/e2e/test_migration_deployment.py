"""Taking RestateDeployments over from the upstream operator (restate-operator 2.8.1), mid-drain.

The cluster is laid out as upstream left it (upstream-fixtures/restatedeployments-mid-drain.yaml):
two RestateDeployments with upstream's finalizer and status, each with a new and an old version
(ReplicaSet, Service owned by it, registered with the real restate-server, the deployment id
annotated), one invocation still running on greeter's old version, and hello's idle old version
carrying upstream's `restate.dev/remove-version-at`. Then our operator starts, and must: restart no
pod (no ReplicaSet template or generation change, no new ReplicaSet), keep the Services as they
are, let the drains finish (the held invocation, then the drain delay; upstream's removal time for
hello), deregister the old versions, and delete the resources when asked.

Adapted to the test stack: a namespace of its own, the stack's admin URL, drainDelaySeconds 2.
The names are computed from the templates as the API server stores them (with the fixture's
templates they are the fixture's names; `test_pod_template_is_stored_as_upstream_hashed_it` checks
that the CRD stores them as written).
"""

from __future__ import annotations

import copy
import datetime
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack import procs
from devstack.images import HELLO_IMAGE, VERSIONED_IMAGE
from devstack.operator import Operator
from devstack.stack import Stack
from services.builders import deployment as build
from tests.helpers import condition, get, sql

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
UPSTREAM_FINALIZER = "deployments.restate.dev"
HOLD_SECONDS = 25
DRAIN_DELAY = 2
REMOVE_AFTER = 20  # hello's old version: upstream's removal time, this long after our operator starts


def template(app: str, image: str, note: str | None = None) -> Obj:
    metadata: Obj = {"labels": {"app": app}}
    if note:
        metadata["annotations"] = {"example.com/note": note}
    port = {"name": "restate", "containerPort": 9080}
    return {"metadata": metadata, "spec": {"containers": [{"name": app, "image": image, "ports": [port]}]}}


# name -> (template of the current version, template of the old one); upstream-fixtures/specs.yaml
TEMPLATES = {
    "greeter": (template("greeter", f"{VERSIONED_IMAGE}:v2"), template("greeter", f"{VERSIONED_IMAGE}:v1")),
    "hello": (template("hello", HELLO_IMAGE, note="two"), template("hello", HELLO_IMAGE, note="one")),
}
FIXTURE_NAMES = {
    "greeter": ("greeter-558cd58fb5", "greeter-479f58c8d7"),
    "hello": ("hello-4bc574c475", "hello-9547b4f8f6"),
}


def rsd(name: str, namespace: str, stack: Stack) -> Obj:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"team": "shop"}},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": TEMPLATES[name][0],
            "restate": {"register": {"url": stack.restate.admin_url}, "drainDelaySeconds": DRAIN_DELAY},
        },
    }


def kubectl(stack: Stack, *args: str, body: Obj | None = None) -> str:
    return stack.control_plane.kubectl(*args, input=json.dumps(body) if body is not None else None)


def upstream_replica_set(owner: Obj, tpl: Obj, hash_: str) -> Obj:
    """As upstream POSTs it (fieldManager restate-operator): replicaset.rs, and the fixture's objects."""
    name, app = owner["metadata"]["name"], owner["spec"]["selector"]["matchLabels"]["app"]
    pod_metadata: Obj = {"labels": {**tpl["metadata"]["labels"], "pod-template-hash": hash_}}
    if tpl["metadata"].get("annotations"):
        pod_metadata["annotations"] = tpl["metadata"]["annotations"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name}-{hash_}",
            "namespace": owner["metadata"]["namespace"],
            "labels": {
                **tpl["metadata"]["labels"],
                "app.kubernetes.io/managed-by": "restate-operator",
                "pod-template-hash": hash_,
                "restate.dev/owned-by": name,
            },
            "annotations": {"restate.dev/pod-template": build.template_json({"spec": {"template": tpl}})},
            "ownerReferences": [
                {
                    "apiVersion": "restate.dev/v1beta1",
                    "kind": "RestateDeployment",
                    "name": name,
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": app, "pod-template-hash": hash_}},
            "template": {"metadata": pod_metadata, "spec": tpl["spec"]},
        },
    }


def upstream_service(owner: Obj, rs: Obj) -> Obj:
    """As upstream server-side applies it (manager restate-operator): owned by the ReplicaSet."""
    name = rs["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": rs["metadata"]["namespace"],
            "labels": {
                **owner["metadata"]["labels"],
                "app.kubernetes.io/managed-by": "restate-operator",
                "restate.dev/owned-by": owner["metadata"]["name"],
            },
            "annotations": {},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": name,
                    "uid": rs["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": rs["spec"]["selector"]["matchLabels"],
            "ports": [{"name": "restate", "port": 9080, "protocol": "TCP", "targetPort": 9080}],
        },
    }


def register(stack: Stack, name: str, namespace: str) -> str:
    """POST /deployments as upstream does (the uri only); retried until the pod answers."""
    found: dict[str, str] = {}

    def registered() -> bool:
        uri = f"http://{name}.{namespace}.svc.cluster.local:9080"
        response = httpx.post(f"{stack.restate.admin_url}/deployments", json={"uri": uri}, timeout=30)
        if response.status_code in (200, 201):
            found["id"] = response.json()["id"]
            return True
        return False

    procs.wait_until(f"{name} registered", registered, timeout=60)
    return found["id"]


def annotate(stack: Stack, kind: str, name: str, namespace: str, annotations: dict[str, str], manager: str) -> None:
    api_version = "apps/v1" if kind == "ReplicaSet" else "v1"
    partial = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
    }
    kubectl(stack, "apply", "--server-side", "--force-conflicts", f"--field-manager={manager}", "-f", "-", body=partial)


def upstream_time(moment: datetime.datetime) -> str:
    """chrono's to_rfc3339(): nanoseconds and +00:00, e.g. 2026-11-30T00:55:52.220866106+00:00."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 1000 + 123:09d}+00:00"


def registered_uris(stack: Stack) -> list[str]:
    deployments = httpx.get(f"{stack.restate.admin_url}/deployments", timeout=30).json()["deployments"]
    return [d["uri"] for d in deployments]


def registered(stack: Stack, name: str) -> bool:
    return any(f"//{name}." in uri for uri in registered_uris(stack))


def versions(stack: Stack, name: str, namespace: str) -> dict[str, Obj]:
    obj = get(stack, "rsd", name, namespace) or {}
    return {v["name"]: v for v in (obj.get("status") or {}).get("versions") or []}


def replica_sets(stack: Stack, namespace: str) -> dict[str, Obj]:
    listed = json.loads(kubectl(stack, "get", "rs", "-n", namespace, "-o", "json"))["items"]
    return {rs["metadata"]["name"]: rs for rs in listed}


def test_pod_template_is_stored_as_upstream_hashed_it(operator: Operator) -> None:
    """Upstream hashed the template as written (its CRD adds no defaults). If our CRD defaulted fields
    in it (a port's protocol, ...), every taken-over version would get a new name: a new ReplicaSet
    and a restart of every pod. The names must then be the fixture's."""
    stack = operator.stack  # (it installs our CRDs)
    for name, (current, _) in TEMPLATES.items():
        applied = rsd(name, "default", stack)
        stored = json.loads(kubectl(stack, "apply", "--dry-run=server", "-o", "json", "-f", "-", body=applied))
        assert stored["spec"]["template"] == current, "the CRD must not default anything inside spec.template"
        assert build.version_name(stored, build.version_hash(stored)) == FIXTURE_NAMES[name][0]


@pytest.fixture
def shop(operator: Operator) -> Iterator[str]:
    stack = operator.stack
    namespace = f"shop-{uuid.uuid4().hex[:6]}"
    kubectl(stack, "create", "namespace", namespace)
    yield namespace
    for name in TEMPLATES:
        kubectl(stack, "delete", "rsd", name, "-n", namespace, "--ignore-not-found", "--wait=false")
        stack.control_plane.kubectl(
            "patch", "rsd", name, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )
    for deployment in httpx.get(f"{stack.restate.admin_url}/deployments", timeout=30).json()["deployments"]:
        if f".{namespace}.svc." in deployment["uri"]:
            httpx.delete(f"{stack.restate.admin_url}/deployments/{deployment['id']}", params={"force": "true"})
    kubectl(stack, "delete", "namespace", namespace, "--wait=false")


def lay_out_upstream_objects(stack: Stack, namespace: str) -> tuple[dict[str, tuple[str, str]], str]:
    """Everything upstream would have left; returns each resource's (current, old) version names and
    the held invocation."""
    owners: dict[str, Obj] = {}
    replica_sets_: dict[str, tuple[Obj, Obj]] = {}  # rsd name -> (current, old) ReplicaSet as created
    for name, (current, old) in TEMPLATES.items():
        kubectl(stack, "apply", "-f", "-", body=rsd(name, namespace, stack))  # kubectl-client-side-apply
        owner = json.loads(kubectl(stack, "get", "rsd", name, "-n", namespace, "-o", "json"))
        owners[name] = owner
        stored_old = copy.deepcopy(owner)
        # The old template as the API server would have stored it (same defaulting as the current one).
        stored_old["spec"]["template"] = _like_stored(old, owner["spec"]["template"], current)
        created = []
        for tpl, source in ((owner["spec"]["template"], owner), (stored_old["spec"]["template"], stored_old)):
            rs = upstream_replica_set(owner, tpl, build.version_hash(source))
            created.append(
                json.loads(
                    kubectl(stack, "create", "--field-manager=restate-operator", "-o", "json", "-f", "-", body=rs)
                )
            )
        replica_sets_[name] = (created[0], created[1])
        for rs in created:
            svc = upstream_service(owner, rs)
            kubectl(stack, "apply", "--server-side", "--field-manager=restate-operator", "-f", "-", body=svc)

    def pods_ready() -> bool:
        found = replica_sets(stack, namespace)
        return len(found) == 4 and all((rs.get("status") or {}).get("readyReplicas") == 1 for rs in found.values())

    procs.wait_until("upstream's pods ready", pods_ready, timeout=60)

    ids: dict[str, str] = {}
    hello_current, hello_old = (rs["metadata"]["name"] for rs in replica_sets_["hello"])
    ids[hello_old] = register(stack, hello_old, namespace)
    ids[hello_current] = register(stack, hello_current, namespace)
    greeter_current, greeter_old = (rs["metadata"]["name"] for rs in replica_sets_["greeter"])
    ids[greeter_old] = register(stack, greeter_old, namespace)
    held = httpx.post(f"{stack.restate.ingress_url}/Versioned/hold/send", json=HOLD_SECONDS, timeout=30)
    invocation: str = held.json()["invocationId"]
    procs.wait_until(
        "the invocation is pinned to greeter's old version",
        lambda: bool(
            sql(
                stack,
                f"SELECT id FROM sys_invocation_status WHERE id = '{invocation}' "
                f"AND pinned_deployment_id = '{ids[greeter_old]}'",
            )
        ),
        timeout=30,
    )
    ids[greeter_current] = register(stack, greeter_current, namespace)

    for version, deployment_id in ids.items():
        for kind in ("ReplicaSet", "Service"):
            annotate(
                stack,
                kind,
                version,
                namespace,
                {build.DEPLOYMENT_ID_ANNOTATION: deployment_id},
                "restate-operator/deployment-id",
            )
    for name, owner in owners.items():
        for rs in replica_sets_[name]:  # upstream applies its Services again on every reconcile
            kubectl(
                stack,
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=restate-operator",
                "-f",
                "-",
                body=upstream_service(owner, rs),
            )
        current = replica_sets_[name][0]["metadata"]["name"]
        status = {
            "availableReplicas": 1,
            "conditions": [
                {
                    "lastTransitionTime": owner["metadata"]["creationTimestamp"],
                    "message": "RestateDeployment is deployed",
                    "reason": "Deployed",
                    "status": "True",
                    "type": "Ready",
                }
            ],
            "deploymentId": ids[current],
            "desiredReplicas": 1,
            "labelSelector": f"app={name},pod-template-hash={current.rsplit('-', 1)[1]}",
            "observedGeneration": owner["metadata"]["generation"],
            "readyReplicas": 1,
            "replicas": 1,
            "unavailableReplicas": 0,
        }
        body = {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        }
        kubectl(
            stack,
            "apply",
            "--server-side",
            "--subresource=status",
            "--field-manager=restate-operator",
            "-f",
            "-",
            body=body,
        )
        # Upstream adds its finalizer with a JSON patch, under no field manager of its own.
        patch = json.dumps([{"op": "add", "path": "/metadata/finalizers", "value": [UPSTREAM_FINALIZER]}])
        kubectl(stack, "patch", "rsd", name, "-n", namespace, "--type=json", "-p", patch)
    names = {name: (rs[0]["metadata"]["name"], rs[1]["metadata"]["name"]) for name, rs in replica_sets_.items()}
    return names, invocation


def _like_stored(old: Obj, stored_current: Obj, current: Obj) -> Obj:
    """`old` with whatever the API server added to `current` when storing it (nothing, if the CRD adds nothing)."""
    if stored_current == current:
        return old
    stored = copy.deepcopy(stored_current)
    stored["metadata"] = copy.deepcopy(old["metadata"])
    stored["spec"]["containers"][0]["image"] = old["spec"]["containers"][0]["image"]
    return stored


def test_taking_over_mid_drain_restarts_nothing_and_finishes_the_drains(operator: Operator, shop: str) -> None:
    stack, namespace = operator.stack, shop
    operator.stop()  # nothing of ours runs while upstream's objects are laid out
    try:
        names, invocation = lay_out_upstream_objects(stack, namespace)
        current = {name: pair[0] for name, pair in names.items()}
        old = {name: pair[1] for name, pair in names.items()}
        before = replica_sets(stack, namespace)
        services = {n: get(stack, "service", n, namespace) for n in before}
        remove_at = time.time() + REMOVE_AFTER
        stamp = upstream_time(datetime.datetime.fromtimestamp(remove_at, datetime.UTC))
        annotate(
            stack,
            "ReplicaSet",
            old["hello"],
            namespace,
            {build.REMOVE_AT_ANNOTATION: stamp},
            "restate-operator/remove-version-at",
        )
    finally:
        operator.start_services()
        operator.start_watcher()

    def adopted() -> bool:
        greeter, hello = versions(stack, "greeter", namespace), versions(stack, "hello", namespace)
        return (
            greeter.get(current["greeter"], {}).get("phase") == "Latest"
            and greeter.get(old["greeter"], {}).get("phase") == "Draining"
            and hello.get(current["hello"], {}).get("phase") == "Latest"
            and old["hello"] in hello
        )

    procs.wait_until("both resources adopted, greeter's old version Draining", adopted, timeout=30)
    seen = time.time()
    greeter = versions(stack, "greeter", namespace)
    assert greeter[old["greeter"]]["activeInvocations"] >= 1
    deployment_id = before[current["greeter"]]["metadata"]["annotations"][build.DEPLOYMENT_ID_ANNOTATION]
    assert greeter[current["greeter"]]["deploymentId"] == deployment_id, "upstream's registration is kept"
    assert httpx.post(f"{stack.restate.ingress_url}/Versioned/whoami", timeout=30).json() == "v2"
    for name in names:
        obj = get(stack, "rsd", name, namespace)
        assert obj is not None
        assert condition(obj, "Ready")["status"] == "True", condition(obj, "Ready")
        assert obj["status"]["labelSelector"] == f"app={name},pod-template-hash={current[name].rsplit('-', 1)[1]}"

    def hello_old_stays() -> bool:
        phase = versions(stack, "hello", namespace)[old["hello"]]["phase"]
        assert phase == "Draining", "upstream's removal time counts"
        assert registered(stack, old["hello"])
        return True

    # Our own drain delay passes; upstream's removal time for hello's idle old version has not yet.
    window = max(0.0, seen + DRAIN_DELAY + 3 - time.time())
    procs.holds_for("hello's old version stays until upstream's removal time", hello_old_stays, seconds=window)
    assert time.time() < remove_at - 1, "the stack was too slow for this check"

    def unchanged(which: list[str]) -> None:
        now = replica_sets(stack, namespace)
        assert sorted(now) == sorted(before), "no second ReplicaSet"
        for n in which:
            assert now[n]["metadata"]["uid"] == before[n]["metadata"]["uid"]
            assert now[n]["metadata"]["generation"] == before[n]["metadata"]["generation"], f"{n} was rewritten"
            assert now[n]["spec"]["template"] == before[n]["spec"]["template"], f"{n}'s pods would restart"

    unchanged(list(before))
    for name in names:
        svc, was = get(stack, "service", current[name], namespace), services[current[name]]
        assert svc is not None
        assert was is not None
        assert svc["metadata"]["resourceVersion"] == was["metadata"]["resourceVersion"], f"{current[name]} rewritten"

    procs.wait_until(
        "the held invocation finished on the old version",
        lambda: (
            httpx.get(f"{stack.restate.ingress_url}/restate/invocation/{invocation}/output", timeout=30).status_code
            == 200
        ),
        timeout=HOLD_SECONDS + 30,
    )
    output = httpx.get(f"{stack.restate.ingress_url}/restate/invocation/{invocation}/output", timeout=30).json()
    assert output == "started on v1, finished on v1"

    def drained(name: str) -> bool:
        return versions(stack, name, namespace).get(old[name], {}).get("phase") == "Drained"

    procs.wait_until("greeter's old version Drained", lambda: drained("greeter"), timeout=30)
    procs.wait_until("hello's old version Drained", lambda: drained("hello"), timeout=REMOVE_AFTER + 30)
    for name in names:
        assert not registered(stack, old[name]), f"{old[name]} is deregistered"
        assert registered(stack, current[name])
        assert replica_sets(stack, namespace)[old[name]]["spec"]["replicas"] == 0
    unchanged([current["greeter"], current["hello"]])

    kubectl(stack, "delete", "rsd", "greeter", "hello", "-n", namespace, "--wait=false")
    procs.wait_until(
        "every version deregistered",
        lambda: not any(f".{namespace}.svc." in u for u in registered_uris(stack)),
        timeout=60,
    )
    # Upstream's finalizer entry was added by a JSON patch (another field manager): removing it must work too.
    procs.wait_until(
        "both resources deleted",
        lambda: all(get(stack, "rsd", name, namespace) is None for name in names),
        timeout=60,
    )
