"""The whole local stack in one object: control plane, restate-server and pod runner.

Used by the pytest session fixtures and by `make dev` (through `python -m devstack`), so both
stand on exactly the same thing.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devstack import procs, tools
from devstack.cloud import TestCA
from devstack.control_plane import ControlPlane
from devstack.restate_server import RestateServer, new_hosts_file

# Claims of this class get a hostPath volume from the pod runner (a provisioner kwok does not have).
DEFAULT_STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "restate-operator.local/pod-runner",
    "allowVolumeExpansion": True,
    "volumeBindingMode": "Immediate",
}


@dataclass
class Stack:
    """`standalone_restate` is the restate-server the tests run the operator on as host processes;
    `make dev` goes without it, because the chart brings its own bootstrap Restate.
    `pod_runner_interval` is how often the pod runner syncs when no watch event woke it earlier."""

    work: Path
    standalone_restate: bool = True
    pod_runner_interval: float = 1.0
    control_plane: ControlPlane = field(init=False)
    restate: RestateServer = field(init=False)
    ca: TestCA = field(init=False)
    pod_runner: procs.Process | None = None

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        hosts_file = new_hosts_file(self.work / "hosts")
        self.control_plane = ControlPlane(self.work / "k8s", tools.control_plane_bin_dir())
        # Trusted by restate-server and the services process, so a Restate Cloud double can be played.
        self.ca = TestCA(self.work / "ca")
        self.restate = RestateServer(self.work / "restate", hosts_file, ca_bundle=self.ca.bundle)

    @property
    def hosts_file(self) -> Path:
        return self.restate.hosts_file

    def start(self) -> None:
        try:
            self.control_plane.start()
            self.control_plane.kubectl("apply", "-f", "-", input=json.dumps(DEFAULT_STORAGE_CLASS))
            if self.standalone_restate:
                self.restate.start()
            self.pod_runner = procs.start(
                "pod-runner",
                [
                    sys.executable,
                    "-m",
                    "devstack.pod_runner",
                    "--kubeconfig",
                    str(self.control_plane.kubeconfig),
                    "--hosts-file",
                    str(self.hosts_file),
                    "--work",
                    str(self.work / "pod-runner"),
                    "--interval",
                    str(self.pod_runner_interval),
                ],
                log_dir=self.work / "logs",
                cwd=tools.REPO,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.pod_runner:
            self.pod_runner.stop(timeout=20)
        self.restate.stop()
        self.control_plane.stop()

    def env(self, *, admin_url: str, ingress_url: str) -> dict[str, str]:
        """The environment contract of `.dev/env` (and of every script that sources it)."""
        path = [str(p) for p in tools.bin_path_entries()]
        return {
            "KUBECONFIG": str(self.control_plane.kubeconfig),
            "RESTATE_ADMIN_URL": admin_url,
            "RESTATE_INGRESS_URL": ingress_url,
            "PATH": os.pathsep.join([*path, os.environ.get("PATH", "")]),
        }
