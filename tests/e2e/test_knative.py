"""RestateDeployment in Knative mode, end to end, against the real Knative Serving controller.

What runs for real: Knative Serving's controller (devstack/knative.py) turns our Configuration into
Revisions, Deployments and pods (kwok; the pod runner runs the SDK process), and our Route into a
KIngress; restate-server registers and invokes the Route URL. What the stack plays: the autoscaler's
PodAutoscaler status and the networking layer's KIngress status, and the Route host names mapped
to the serving Revision's pod (see devstack/knative.py).

The Restate service `Versioned` is shared with tests/e2e/test_rollout.py, so these tests run one
after another in file order, and each removes its RestateDeployment (and every registration) first.
The first test starts without Knative installed and installs it midway.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack import procs
from devstack.cloud import CloudDouble
from devstack.images import VERSIONED_IMAGE
from devstack.knative import Knative
from devstack.operator import Operator
from devstack.stack import Stack
from tests.e2e.cloud import REGION, environment, through_cloud
from tests.e2e.versioned import (
    NAME,
    call,
    deployments,
    namespace_for,
    output,
    phases,
    pinned,
    reconciler_url,
    wait_ready,
    whoami,
)
from tests.helpers import apply, condition, get

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]


def rsd(
    namespace: str, stack: Stack, image_tag: str, *, tag: str | None = "v1", port: str = "h2c", history: int = 0
) -> Obj:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {
            "name": NAME,
            "namespace": namespace,
            "annotations": {"serving.knative.dev/rollout-duration": "0s"},
        },
        "spec": {
            "deploymentMode": "knative",
            "revisionHistoryLimit": history,
            **({"knative": {"tag": tag, "maxScale": 3}} if tag else {}),
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {
                    "containers": [
                        {
                            "name": "versioned",
                            "image": f"{VERSIONED_IMAGE}:{image_tag}",
                            "ports": [{"name": port, "containerPort": 9080}],
                        }
                    ]
                },
            },
            "restate": {"register": {"url": stack.restate.admin_url}, "drainDelaySeconds": 1},
        },
    }


@pytest.fixture
def ns(operator: Operator) -> Iterator[str]:
    """A namespace for one RestateDeployment, which is deleted (and deregistered) afterwards."""
    with namespace_for(operator.stack, "kn", timeout=90) as name:
        yield name


def test_without_knative_it_says_what_to_install_and_proceeds_once_installed(
    operator: Operator, ns: str, request: pytest.FixtureRequest
) -> None:
    stack = operator.stack
    crd = stack.control_plane.kubectl_result("get", "crd", "configurations.serving.knative.dev")
    if crd.returncode == 0:
        pytest.skip("Knative Serving was installed before this test; it checks the operator without it first")
    apply(stack, rsd(ns, stack, "v1"))

    def not_installed() -> bool:
        return condition(get(stack, "rsd", NAME, ns), "Ready").get("reason") == "KnativeNotInstalled"

    procs.wait_until("KnativeNotInstalled", not_installed, timeout=60)
    message = condition(get(stack, "rsd", NAME, ns), "Ready")["message"]
    assert "install Knative Serving" in message
    assert "nothing was created" in message

    request.getfixturevalue("knative")  # installs the CRDs and starts the controller; the operator keeps running
    obj = wait_ready(stack, ns, timeout=150)
    assert obj["status"]["knative"]["configurationName"] == f"{NAME}-v1"
    assert whoami(stack) == "v1"


def test_v1_registers_its_route_url_and_serves(operator: Operator, knative: Knative, ns: str) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, stack, "v1"))
    obj = wait_ready(stack, ns)
    status = obj["status"]
    url = f"http://{NAME}-v1.{ns}.svc.cluster.local"
    assert status["knative"] == {
        "configurationName": f"{NAME}-v1",
        "routeName": f"{NAME}-v1",
        "url": url,
        "latestRevision": f"{NAME}-v1-00001",
    }
    (version,) = status["versions"]
    assert (version["name"], version["tag"], version["phase"]) == (f"{NAME}-v1", "v1", "Latest")
    assert deployments(stack)[status["deploymentId"]]["uri"] in (url, f"{url}/")
    assert whoami(stack) == "v1"
    assert (status["desiredReplicas"], status["readyReplicas"]) == (1, 1)

    configuration = get(stack, "configurations.serving.knative.dev", f"{NAME}-v1", ns)
    assert configuration is not None
    annotations = configuration["metadata"]["annotations"]
    assert annotations["restate.dev/deployment-id"] == status["deploymentId"]
    assert annotations["restate.dev/tag"] == "v1"
    assert "serving.knative.dev/rollout-duration" not in annotations, "a Route setting, kept off the Configuration"
    template = configuration["spec"]["template"]["metadata"]["annotations"]
    assert (template["autoscaling.knative.dev/min-scale"], template["autoscaling.knative.dev/max-scale"]) == ("0", "3")
    route = get(stack, "routes.serving.knative.dev", f"{NAME}-v1", ns)
    assert route is not None
    assert route["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    assert route["metadata"]["ownerReferences"][0]["kind"] == "Configuration"
    assert route["metadata"]["annotations"]["serving.knative.dev/rollout-duration"] == "0s"


def test_v2_under_a_new_tag_rolls_out_while_v1_drains_then_v1_is_deleted(
    operator: Operator, knative: Knative, ns: str
) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, stack, "v1"))
    v1_id = wait_ready(stack, ns)["status"]["deploymentId"]
    held = call(stack, "hold", 8, send=True).json()["invocationId"]
    procs.wait_until("the long invocation runs on v1", lambda: pinned(stack, held), timeout=30)

    apply(stack, rsd(ns, stack, "v2", tag="v2"))
    obj = wait_ready(stack, ns)
    assert obj["status"]["deploymentId"] != v1_id
    assert whoami(stack) == "v2"
    procs.wait_until("v1 Draining", lambda: phases(stack, ns).get(f"{NAME}-v1") == "Draining", timeout=30)
    assert v1_id in deployments(stack), "a draining tag stays registered"
    assert get(stack, "configurations.serving.knative.dev", f"{NAME}-v1", ns) is not None

    procs.wait_until("the long invocation finished", lambda: output(stack, held) is not None, timeout=60)
    assert output(stack, held) == "started on v1, finished on v1", "nothing lost: v1 served it to the end"
    procs.wait_until("v1 deregistered", lambda: v1_id not in deployments(stack), timeout=60)
    knative.wait_for_garbage_collector()  # a foreground deletion waits for the collector to know Knative's kinds
    procs.wait_until(
        "v1's Configuration deleted (revisionHistoryLimit 0)",
        lambda: get(stack, "configurations.serving.knative.dev", f"{NAME}-v1", ns) is None,
        timeout=90,
    )
    assert whoami(stack) == "v2"
    assert list(phases(stack, ns)) == [f"{NAME}-v2"]


def test_an_in_place_update_keeps_the_tag_and_re_registers_only_when_services_change(
    operator: Operator, knative: Knative, ns: str
) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, stack, "v1"))
    first = wait_ready(stack, ns)
    deployment_id = first["status"]["deploymentId"]
    config_name = f"{NAME}-v1"

    def registered_at() -> str:
        configuration = get(stack, "configurations.serving.knative.dev", config_name, ns) or {}
        return str(configuration["metadata"]["annotations"]["restate.dev/registered-at"])

    # The same services: a new Revision, the same registration.
    before = registered_at()
    apply(stack, rsd(ns, stack, "v2"))
    procs.wait_until("Revision 2 serves", lambda: whoami(stack) == "v2", timeout=90)
    obj = wait_ready(stack, ns)
    assert obj["status"]["knative"]["latestRevision"] == f"{config_name}-00002"
    assert obj["status"]["deploymentId"] == deployment_id
    assert registered_at() == before, "same services: not registered again"

    # Another service appears: registered again, in place (same id), so Restate knows it (upstream: never).
    apply(stack, rsd(ns, stack, "v1-side"))
    procs.wait_until(
        "VersionedSide is known to Restate",
        lambda: call(stack, "whoami", service="VersionedSide").is_success,
        timeout=90,
    )
    assert whoami(stack, "VersionedSide") == "v1-side"
    obj = wait_ready(stack, ns)
    assert obj["status"]["deploymentId"] == deployment_id
    services = {s["name"] for s in deployments(stack)[deployment_id]["services"]}
    assert services == {"Versioned", "VersionedSide"}


def test_a_port_knative_cannot_route_is_degraded_with_nothing_created(
    operator: Operator, knative: Knative, ns: str
) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, stack, "v1", port="restate"))

    def degraded() -> bool:
        return condition(get(stack, "rsd", NAME, ns), "Degraded").get("status") == "True"

    procs.wait_until("Degraded", degraded, timeout=60)
    cond = condition(get(stack, "rsd", NAME, ns), "Degraded")
    assert cond["reason"] == "InvalidRestateConfig"
    assert "no port is named h2c… or http1… (found 'restate')" in cond["message"]
    listed = stack.control_plane.kubectl("get", "configurations.serving.knative.dev", "-n", ns, "-o", "name")
    assert listed.strip() == "", "nothing is created for an invalid template"
    # Nothing is lost: fixing the port converges the same resource.
    apply(stack, rsd(ns, stack, "v1"))
    wait_ready(stack, ns)
    assert whoami(stack) == "v1"


def test_abort_serves_the_previous_tag_again_from_its_own_configuration(
    operator: Operator, knative: Knative, ns: str
) -> None:
    stack = operator.stack
    apply(stack, rsd(ns, stack, "v1", history=2))
    wait_ready(stack, ns)
    apply(stack, rsd(ns, stack, "v2", tag="v2", history=2))
    assert wait_ready(stack, ns)["status"]["latestVersion"] == f"{NAME}-v2"
    procs.wait_until("v1 Drained", lambda: phases(stack, ns).get(f"{NAME}-v1") == "Drained", timeout=60)

    response = httpx.post(reconciler_url(stack, ns, "abort"), json={}, timeout=60)
    assert response.status_code == 200, response.text
    procs.wait_until("v1 serves again", lambda: whoami(stack) == "v1", timeout=90)
    obj = wait_ready(stack, ns)
    assert (obj["status"]["latestVersion"], obj["status"]["pinnedVersion"]) == (f"{NAME}-v1", f"{NAME}-v1")
    configuration = get(stack, "configurations.serving.knative.dev", f"{NAME}-v1", ns)
    assert configuration is not None
    image = configuration["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":v1"), "the tag is served as it was, not rewritten with the spec's template"
    assert get(stack, "configurations.serving.knative.dev", f"{NAME}-v2", ns) is not None, "kept for inspection"


def test_with_register_cloud_the_route_is_registered_through_the_tunnel(
    operator: Operator, knative: Knative, ns: str, cloud: CloudDouble
) -> None:
    stack = operator.stack
    env_name = f"kn-{cloud.environment_id[:6]}"
    apply(stack, environment(env_name, cloud.environment_id))
    try:
        obj = rsd(ns, stack, "v1")
        obj["spec"]["restate"]["register"] = {"cloud": env_name}
        apply(stack, obj)
        ready = wait_ready(stack, ns, timeout=120)
        rce = get(stack, "rce", env_name)
        assert rce is not None
        route_host = ready["status"]["knative"]["url"].removeprefix("http://")
        tunnelled = (
            f"https://tunnel.{REGION}.restate.cloud:9080/{cloud.environment_id}/{rce['metadata']['uid']}/http/"
            f"{route_host}/80/"
        )
        assert tunnelled in [d["uri"] for d in deployments(stack).values()]
        assert through_cloud(cloud, "whoami").json() == "v1"
    finally:
        stack.control_plane.kubectl("delete", "rsd", NAME, "-n", ns, "--wait=true", "--timeout=90s")
        stack.control_plane.kubectl("delete", "rce", env_name, "--ignore-not-found", "--wait=false")
