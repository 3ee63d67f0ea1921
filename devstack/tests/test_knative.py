"""The real Knative Serving controller on the stack: a Configuration and a cluster-local Route serve a real SDK.

Revisions, Deployments, Route URLs and traffic come from Knative's own reconcilers; only the
PodAutoscaler and KIngress statuses and the Route host's mapping are played (devstack/knative.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from kubernetes_asyncio import client

from devstack import hosts, procs
from devstack.images import VERSIONED_IMAGE
from devstack.knative import Knative
from devstack.stack import Stack

pytestmark = pytest.mark.e2e

SERVING = ("serving.knative.dev", "v1")
MANIFEST_V3 = "application/vnd.restate.endpointmanifest.v3+json"


def configuration(name: str, tag: str) -> dict[str, Any]:
    container = {"image": f"{VERSIONED_IMAGE}:{tag}", "ports": [{"name": "h2c", "containerPort": 9080}]}
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Configuration",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


def cluster_local_route(name: str, config_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Route",
        "metadata": {"name": name, "labels": {"networking.knative.dev/visibility": "cluster-local"}},
        "spec": {"traffic": [{"configurationName": config_name, "percent": 100, "latestRevision": True}]},
    }


def ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def test_configuration_and_route_reach_the_sdk_and_follow_a_new_revision(
    stack: Stack, knative: Knative, kube_api: client.ApiClient, namespace: str
) -> None:
    custom = client.CustomObjectsApi(kube_api)

    async def get(plural: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = await custom.get_namespaced_custom_object(*SERVING, namespace, plural, name)
        return obj

    async def ready_revision(name: str) -> dict[str, Any]:
        revision = await get("revisions", name)
        return revision if ready(revision) else {}  # falsy: not yet

    async def route_serving(revision: str) -> dict[str, Any]:
        route = await get("routes", "versioned")
        current = route["metadata"]["generation"] == (route.get("status") or {}).get("observedGeneration")
        traffic = (route.get("status") or {}).get("traffic") or []
        return route if current and ready(route) and [t["revisionName"] for t in traffic] == [revision] else {}

    await custom.create_namespaced_custom_object(
        *SERVING, namespace, "configurations", configuration("versioned", "v1")
    )
    await custom.create_namespaced_custom_object(
        *SERVING, namespace, "routes", cluster_local_route("versioned", "versioned")
    )

    revision = await procs.wait_until_async(
        "Revision versioned-00001 Ready", lambda: ready_revision("versioned-00001"), timeout=60
    )
    assert revision["metadata"]["labels"]["serving.knative.dev/configuration"] == "versioned"
    route = await procs.wait_until_async(
        "Route Ready on versioned-00001", lambda: route_serving("versioned-00001"), timeout=60
    )
    host = f"versioned.{namespace}.svc.cluster.local"
    url = f"http://{host}"
    assert route["status"]["url"] == url
    v1_address = hosts.entries(stack.hosts_file)[host]  # mapped before the Route turned Ready

    # HTTP/2 with prior knowledge (h2c) from here, through the Route's port 80, to the revision's SDK process.
    async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as h2c:
        manifest = await h2c.get(f"http://{v1_address}/discover", headers={"host": host, "accept": MANIFEST_V3})
    assert manifest.status_code == 200, manifest.text
    assert manifest.http_version == "HTTP/2"
    assert manifest.json()["protocolMode"] == "BIDI_STREAM"  # the SDK saw HTTP/2
    assert [s["name"] for s in manifest.json()["services"]] == ["Versioned"]

    deployments: set[str] = set()
    async with httpx.AsyncClient(timeout=30) as http:

        async def register(force: bool) -> str:
            response = await http.post(f"{stack.restate.admin_url}/deployments", json={"uri": url, "force": force})
            assert response.status_code in (200, 201), response.text
            assert "Versioned" in [s["name"] for s in response.json()["services"]]
            deployment_id: str = response.json()["id"]
            deployments.add(deployment_id)
            return deployment_id

        async def whoami() -> str:
            response = await http.post(f"{stack.restate.ingress_url}/Versioned/whoami")
            assert response.status_code == 200, response.text
            answer: str = response.json()
            return answer

        try:
            await register(force=False)
            assert await whoami() == "v1"

            # A new template: Knative cuts versioned-00002, and the Route (latestRevision) moves to it.
            patch = [
                {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": f"{VERSIONED_IMAGE}:v2"}
            ]
            await custom.patch_namespaced_custom_object(*SERVING, namespace, "configurations", "versioned", patch)
            await procs.wait_until_async(
                "Revision versioned-00002 Ready", lambda: ready_revision("versioned-00002"), timeout=60
            )
            route = await procs.wait_until_async(
                "Route moved to versioned-00002", lambda: route_serving("versioned-00002"), timeout=60
            )
            assert route["status"]["url"] == url
            v2_address = hosts.entries(stack.hosts_file)[host]
            assert v2_address != v1_address, "the host follows the Route to the new revision's pod"

            await register(force=True)  # same URL, new definitions
            assert await whoami() == "v2"
        finally:
            for deployment_id in deployments:
                await http.delete(f"{stack.restate.admin_url}/deployments/{deployment_id}", params={"force": "true"})


async def test_deleting_a_configuration_cascades_to_its_revisions_deployments_and_pods(
    knative: Knative, kube_api: client.ApiClient, namespace: str
) -> None:
    custom, apps = client.CustomObjectsApi(kube_api), client.AppsV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    await asyncio.to_thread(knative.wait_for_garbage_collector)
    await custom.create_namespaced_custom_object(*SERVING, namespace, "configurations", configuration("doomed", "v1"))

    async def revision_ready() -> bool:
        revision = await custom.get_namespaced_custom_object(*SERVING, namespace, "revisions", "doomed-00001")
        return ready(revision)

    await procs.wait_until_async("Revision doomed-00001 Ready", revision_ready, timeout=60)
    await custom.delete_namespaced_custom_object(*SERVING, namespace, "configurations", "doomed")

    async def all_gone() -> bool:
        revisions = await custom.list_namespaced_custom_object(*SERVING, namespace, "revisions")
        deployments = await apps.list_namespaced_deployment(namespace)
        pods = await core.list_namespaced_pod(namespace)
        return not revisions["items"] and not deployments.items and not pods.items

    await procs.wait_until_async("the Revision, its Deployment and pods deleted", all_gone, timeout=60)
