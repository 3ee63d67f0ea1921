"""The operator's own processes on top of the stack: `python -m services` and `python -m watcher`.

The services process is registered with the stack's restate-server by its loopback URL; it keeps
its port across restarts, so a restart (or a crash test's SIGKILL and restart) needs no
re-registration. Any number of watcher replicas can run.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from dataclasses import dataclass, field

from devstack import procs, tools
from devstack.restate_server import private_hosts_argv
from devstack.stack import Stack

OPERATOR_NAMESPACE = "restate-operator"


@dataclass
class Operator:
    stack: Stack
    services_port: int = 0
    services_probes_port: int = 0
    services: procs.Process | None = None
    watchers: list[procs.Process] = field(default_factory=list)
    watcher_probe_ports: list[int] = field(default_factory=list)
    services_env: dict[str, str] = field(default_factory=dict)
    watcher_env: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable  # the interpreter (and so the packages) both processes run with
    _starts: int = 0

    @property
    def services_url(self) -> str:
        return f"http://127.0.0.1:{self.services_port}"

    def start(self) -> None:
        cp = self.stack.control_plane
        cp.kubectl("apply", "--server-side", "-f", str(tools.REPO / "crd"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        if not cp.kubectl("get", "namespace", OPERATOR_NAMESPACE, "-o", "name", check=False):
            cp.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        self.start_services()
        self.register()
        self.start_watcher()

    def start_services(self, **env: str) -> None:
        if not self.services_port:
            self.services_port, self.services_probes_port = procs.free_port(), procs.free_port()
        self._starts += 1
        self.services = procs.start(
            f"services-{self._starts}",
            # In the stack's DNS view, so it reaches RestateCluster pods by their Service names.
            private_hosts_argv(self.stack.hosts_file, [self.python, "-m", "services"]),
            log_dir=self.stack.work / "logs",
            cwd=tools.REPO,
            env={
                "KUBECONFIG": str(self.stack.control_plane.kubeconfig),
                "SERVICES_BIND": f"127.0.0.1:{self.services_port}",
                "PROBES_BIND": f"127.0.0.1:{self.services_probes_port}",
                "OPERATOR_NAMESPACE": OPERATOR_NAMESPACE,
                "SHUTDOWN_GRACE_SECONDS": "2",
                "SSL_CERT_FILE": str(self.stack.ca.bundle),  # the test CA too: a Restate Cloud double
                **self.services_env,
                **env,
            },
        )
        procs.wait_until(
            "services /readyz",
            lambda: procs.http_ok(f"http://127.0.0.1:{self.services_probes_port}/readyz"),
            timeout=30,
            process=self.services,
        )

    def register(self) -> None:
        body = json.dumps({"uri": self.services_url, "force": True}).encode()
        request = urllib.request.Request(
            f"{self.stack.restate.admin_url}/deployments", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 201)

    def start_watcher(self, **env: str) -> procs.Process:
        port = procs.free_port()
        watcher = procs.start(
            f"watcher-{len(self.watchers)}",
            [self.python, "-m", "watcher"],
            log_dir=self.stack.work / "logs",
            cwd=tools.REPO,
            env={
                "KUBECONFIG": str(self.stack.control_plane.kubeconfig),
                "RESTATE_INGRESS_URL": self.stack.restate.ingress_url,
                "PROBES_BIND": f"127.0.0.1:{port}",
                "RESYNC_SECONDS": "300",
                "OPERATOR_NAMESPACE": OPERATOR_NAMESPACE,
                "LOG_LEVEL": "DEBUG",
                **self.watcher_env,
                **env,
            },
        )
        procs.wait_until(
            "watcher /readyz", lambda: procs.http_ok(f"http://127.0.0.1:{port}/readyz"), timeout=30, process=watcher
        )
        self.watchers.append(watcher)
        self.watcher_probe_ports.append(port)
        return watcher

    def stop_watchers(self) -> None:
        while self.watchers:
            self.watchers.pop().stop()
            self.watcher_probe_ports.pop()

    def restart(self, *, services: bool, **env: str) -> None:
        """Restart the watcher (and the services process, if asked) with `env` over the usual
        environment: a fault test reroutes them through a proxy, then restores them without."""
        self.stop_watchers()
        if services and self.services:
            self.services.stop()
            self.start_services(**env)
        self.start_watcher(**env)

    def stop(self) -> None:
        self.stop_watchers()
        if self.services:
            self.services.stop()

    def metrics(self, port: int) -> dict[str, float]:
        """Prometheus samples of one of our processes, `name{labels}` -> value. The timeout is generous:
        the probes share the event loop with hundreds of passes at once in the scale benchmarks."""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples
