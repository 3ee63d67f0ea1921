"""The control plane is real: CRDs, custom resources, controllers and kwok nodes all work."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from devstack import procs
from devstack.stack import Stack

pytestmark = pytest.mark.integration

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.stack-test.restate.dev"},
    "spec": {
        "group": "stack-test.restate.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_server_reports_its_stamped_version(stack: Stack) -> None:
    version = json.loads(stack.control_plane.kubectl("version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == "v1.35.4"


async def test_custom_resource_is_created_validated_and_read_back(kube_api: client.ApiClient, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(kube_api)
    try:
        await ext.create_custom_resource_definition(WIDGET_CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise

    async def established() -> bool:
        crd = await ext.read_custom_resource_definition(WIDGET_CRD["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    await procs.wait_until_async("the Widget CRD Established", established, timeout=30)
    custom = client.CustomObjectsApi(kube_api)
    body = {
        "apiVersion": "stack-test.restate.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3},
    }
    created = await custom.create_namespaced_custom_object("stack-test.restate.dev", "v1", namespace, "widgets", body)
    read = await custom.get_namespaced_custom_object("stack-test.restate.dev", "v1", namespace, "widgets", "w1")
    assert read["metadata"]["uid"] == created["metadata"]["uid"]
    assert read["spec"] == {"size": 3}

    invalid = {**body, "metadata": {"name": "w2"}, "spec": {"size": 0}}
    with pytest.raises(ApiException) as rejected:
        await custom.create_namespaced_custom_object("stack-test.restate.dev", "v1", namespace, "widgets", invalid)
    assert rejected.value.status == 422
    assert "should be greater than or equal to 1" in str(rejected.value.body)


async def test_replicaset_pods_become_running_and_ready_on_kwok_nodes(
    kube_api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    labels = {"app": "web"}
    await apps.create_namespaced_replica_set(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
                },
            },
        },
    )

    async def rs_ready() -> bool:
        rs = await apps.read_namespaced_replica_set("web", namespace)
        return rs.status.ready_replicas == 2 and rs.status.available_replicas == 2

    await procs.wait_until_async("both pods Running and Ready", rs_ready, timeout=60)
    pods = (await core.list_namespaced_pod(namespace, label_selector="app=web")).items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.spec.node_name.startswith("kwok-node-")
        assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
