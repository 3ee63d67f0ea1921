"""`make dev`'s contract: `up` helm-installs the operator and writes a working env file; `down` stops all."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import tools

pytestmark = pytest.mark.e2e


def stack_cli(command: str, dev_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", command],
        cwd=tools.REPO,
        env={**os.environ, "RESTATE_OPERATOR_DEV_DIR": str(dev_dir)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def session_processes(session_id: int) -> list[str]:
    """Live (not zombie) processes of the supervisor's session: the supervisor and all it started."""
    ps = subprocess.run(
        ["ps", "-o", "pid=,stat=,args=", "-s", str(session_id)], capture_output=True, text=True, check=False
    )
    return [line for line in ps.stdout.splitlines() if line.split() and not line.split()[1].startswith("Z")]


def test_dev_stack_up_serves_kubectl_and_restate_then_down_stops_everything(tmp_path: Path) -> None:
    dev_dir = tmp_path / "dev"
    up = stack_cli("up", dev_dir)
    supervisor = int((dev_dir / "supervisor.pid").read_text()) if (dev_dir / "supervisor.pid").exists() else 0
    try:
        assert up.returncode == 0, up.stderr
        assert "source .dev/env" in up.stdout
        env_file = dev_dir / "env"
        script = (
            f"source {env_file} && kubectl get nodes -o name && kubectl get pods -n restate-operator -o name"
            " && helm list -n restate-operator -q && restate dp list && echo $RESTATE_INGRESS_URL"
        )
        used = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
        )
        assert used.returncode == 0, used.stderr
        assert "node/kwok-node-0" in used.stdout
        assert "pod/restate-0" in used.stdout, "the chart's bootstrap Restate"
        assert "restate-operator\n" in used.stdout, "installed by helm"
        assert "DeploymentReconciler" in used.stdout, "the services registered themselves"
        assert re.fullmatch(r"http://127\.\d+\.\d+\.\d+:8080", used.stdout.strip().splitlines()[-1])
        assert session_processes(supervisor), "the stack should be running"
    finally:
        down = stack_cli("down", dev_dir)
    assert down.returncode == 0, down.stderr
    assert session_processes(supervisor) == []
    assert not (dev_dir / "env").exists()
