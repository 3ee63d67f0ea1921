"""A real SDK service behind a simulated pod: registered by its Service URL, invoked through the ingress."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx
import pytest
from kubernetes_asyncio import client, config

from devstack import hosts, procs, tools
from devstack.images import HELLO_IMAGE
from devstack.stack import Stack

pytestmark = pytest.mark.e2e


async def restate_cli(stack: Stack, *args: str) -> str:
    """Run the real `restate` CLI against the stack's server; returns stdout, raises on failure."""
    env = {
        **os.environ,
        "RESTATE_ADMIN_URL": stack.restate.admin_url,
        "RESTATE_INGRESS_URL": stack.restate.ingress_url,
        "CI": "true",
    }
    process = await asyncio.create_subprocess_exec(
        str(tools.restate_cli_bin()),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"restate {' '.join(args)} failed ({process.returncode}): {stderr.decode()}")
    return stdout.decode()


def hello_objects(namespace: str) -> tuple[dict[str, object], dict[str, object]]:
    labels = {"app": "hello"}
    replica_set = {
        "metadata": {"name": "hello", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "hello",
                            "image": HELLO_IMAGE,
                            "ports": [{"containerPort": 9080, "name": "http"}],
                        },
                    ]
                },
            },
        },
    }
    service = {
        "metadata": {"name": "hello", "namespace": namespace},
        "spec": {"selector": labels, "ports": [{"port": 9080, "targetPort": 9080, "name": "http"}]},
    }
    return replica_set, service


async def test_sdk_service_behind_a_pod_is_registered_and_invoked(
    stack: Stack, kube_api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    replica_set, service = hello_objects(namespace)
    await core.create_namespaced_service(namespace, service)
    await apps.create_namespaced_replica_set(namespace, replica_set)
    host = f"hello.{namespace}.svc.cluster.local"

    async def resolvable() -> bool:
        return host in hosts.entries(stack.hosts_file)

    await procs.wait_until_async(f"{host} in the hosts file", resolvable, timeout=60)
    uri = f"http://{host}:9080"

    async with httpx.AsyncClient(timeout=30) as http:

        async def registered() -> str:
            response = await http.post(f"{stack.restate.admin_url}/deployments", json={"uri": uri, "force": False})
            response.raise_for_status()
            deployment_id: str = response.json()["id"]
            return deployment_id

        deployment_id = await procs.wait_until_async("registered with Restate", registered, timeout=30, interval=0.5)
        try:
            greeting = await http.post(f"{stack.restate.ingress_url}/Greeter/greet", json="kube")
            assert greeting.status_code == 200, greeting.text
            assert greeting.json() == "Hello, kube! (greeting #1)"
            again = await http.post(f"{stack.restate.ingress_url}/Greeter/greet", json="kube")
            assert again.json() == "Hello, kube! (greeting #2)"

            listed = await restate_cli(stack, "deployments", "list")
            assert deployment_id in listed
            assert host in listed
        finally:
            await http.delete(f"{stack.restate.admin_url}/deployments/{deployment_id}", params={"force": "true"})

    # Scaling the ReplicaSet to zero stops the process and drops the host name.
    await apps.patch_namespaced_replica_set_scale("hello", namespace, {"spec": {"replicas": 0}})

    async def unresolvable() -> bool:
        return host not in hosts.entries(stack.hosts_file)

    await procs.wait_until_async(f"{host} gone from the hosts file", unresolvable, timeout=60)
    state = json.loads((stack.work / "pod-runner" / "state.json").read_text())
    assert [p for p in state if p["namespace"] == namespace] == []


async def test_pods_start_and_services_resolve_on_watch_events_not_on_the_poll(tmp_path: Path) -> None:
    """With an hour between polls, a pod created after the runner started can only run, turn
    Ready and have its Service resolve because a watch event (or its probe) woke a sync."""
    own = Stack(tmp_path / "stack", standalone_restate=False, pod_runner_interval=3600)
    own.start()
    try:
        api = await config.new_client_from_config(config_file=str(own.control_plane.kubeconfig))
        try:
            apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
            replica_set, service = hello_objects("default")
            await core.create_namespaced_service("default", service)
            await apps.create_namespaced_replica_set("default", replica_set)

            async def ready_and_resolvable() -> bool:
                pods = (await core.list_namespaced_pod("default", label_selector="app=hello")).items
                ready = [
                    c for p in pods for c in (p.status.conditions or []) if c.type == "Ready" and c.status == "True"
                ]
                return bool(ready) and "hello.default.svc.cluster.local" in hosts.entries(own.hosts_file)

            await procs.wait_until_async("the pod Ready and its Service resolvable", ready_and_resolvable, timeout=90)
        finally:
            await api.close()
    finally:
        own.stop()
