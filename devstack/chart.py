"""The operator installed on the stack the way users install it: `helm install charts/restate-operator`.

The pod runner runs the chart's pods: the bootstrap Restate as a real restate-server, the services
and watcher with this checkout's code under their own ServiceAccount tokens (so the chart's RBAC
is what the apiserver enforces). Nothing else starts the operator: the services register
themselves with the bootstrap Restate, as they do in a real cluster.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import hosts, procs, tools
from devstack.stack import Stack

CHART = tools.REPO / "charts" / "restate-operator"
RELEASE = "restate-operator"
NAMESPACE = "restate-operator"
RECONCILERS = {"ClusterReconciler", "DeploymentReconciler", "CloudEnvironmentReconciler"}


@dataclass
class ChartInstall:
    stack: Stack
    release: str = RELEASE
    namespace: str = NAMESPACE

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the stack's helm against this cluster; raises with helm's own message unless `check` is false."""
        result = subprocess.run(
            [
                str(tools.control_plane_bin_dir() / "helm"),
                "--kubeconfig",
                str(self.stack.control_plane.kubeconfig),
                "--namespace",
                self.namespace,
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args[:2])} failed: {result.stderr.strip()}")
        return result

    def install(self, *values: str, files: Sequence[Path] = (), wait: bool = True) -> None:
        """`helm upgrade --install` with values `files` (`-f`) and `--set` style `values` over them;
        then wait until the operator works."""
        args = [arg for path in files for arg in ("--values", str(path))]
        args += [arg for value in values for arg in ("--set", value)]
        self.helm("upgrade", "--install", self.release, str(CHART), "--create-namespace", *args)
        if wait:
            self.wait_ready()

    def uninstall(self) -> None:
        self.helm("uninstall", self.release, "--wait", "--timeout", "120s")

    def host(self, service: str) -> str | None:
        """The loopback address a Service of the release resolves to (the pod runner's hosts file)."""
        return hosts.entries(self.stack.hosts_file).get(f"{service}.{self.namespace}.svc.cluster.local")

    @property
    def admin_url(self) -> str:
        return f"http://{self.host('restate')}:9070"

    @property
    def ingress_url(self) -> str:
        return f"http://{self.host('restate')}:8080"

    def pods(self) -> list[dict[str, Any]]:
        """The pod runner's processes of this release's namespace (name, ip, port, pid, alive)."""
        state = json.loads((self.stack.work / "pod-runner" / "state.json").read_text())
        return [p for p in state if p["namespace"] == self.namespace]

    def registered(self) -> bool:
        """The bootstrap Restate knows every reconciler (the services registered themselves)."""
        with urllib.request.urlopen(f"{self.admin_url}/deployments", timeout=5) as response:
            deployments = json.loads(response.read())["deployments"]
        known = {s["name"] for d in deployments for s in d.get("services", [])}
        return known >= RECONCILERS

    def watchers_ready(self, replicas: int | None = None) -> bool:
        """Every watcher pod listed its watches; with `replicas`, exactly that many run (none of an
        older template still stopping)."""
        ready = [
            procs.http_ok(f"http://{p['ip']}:8082/readyz")
            for p in self.pods()
            if p["name"].startswith(f"{self.release}-watcher-")
        ]
        return bool(ready) and all(ready) and replicas in (None, len(ready))

    def rolled_out(self, timeout: float) -> dict[str, int]:
        """Wait until every Deployment of the release runs its current template, as `helm upgrade
        --wait` would (right after an upgrade the old pods still answer); their replicas by name."""
        cp = self.stack.control_plane
        listed = json.loads(cp.kubectl("get", "deployments", "-n", self.namespace, "-o", "json"))["items"]
        for deployment in listed:
            name = deployment["metadata"]["name"]
            cp.kubectl("rollout", "status", f"deployment/{name}", "-n", self.namespace, f"--timeout={timeout:.0f}s")
        return {d["metadata"]["name"]: int(d["spec"].get("replicas", 1)) for d in listed}

    def wait_ready(self, timeout: float = 120) -> None:
        """Bootstrap Restate up, services registered, the new pods of an upgrade in place, every
        watcher replica listed its watches."""
        procs.wait_until("the bootstrap Restate", lambda: self.host("restate") is not None, timeout=timeout)
        procs.wait_until("the services to register themselves", self.registered, timeout=timeout)
        replicas = self.rolled_out(timeout).get(f"{self.release}-watcher")
        procs.wait_until("the watchers to be ready", lambda: self.watchers_ready(replicas), timeout=timeout)

    def logs(self, pod_prefix: str) -> str:
        """The log of the first pod-runner process whose pod name starts with `pod_prefix`."""
        for log in sorted(Path(self.stack.work / "pod-runner" / "pods").glob(f"{self.namespace}_{pod_prefix}*.log")):
            return log.read_text(errors="replace")
        return ""
