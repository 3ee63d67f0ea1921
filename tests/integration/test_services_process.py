"""`python -m services` as Kubernetes runs it: probes, and a clean exit on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from devstack import procs, tools
from devstack.stack import Stack

pytestmark = pytest.mark.integration


def test_services_serve_probes_and_exit_cleanly_on_sigterm(stack: Stack) -> None:
    port, probes = procs.free_port(), procs.free_port()
    process = procs.start(
        "services-sigterm",
        [sys.executable, "-m", "services"],
        log_dir=stack.work / "logs",
        cwd=tools.REPO,
        env={
            "KUBECONFIG": str(stack.control_plane.kubeconfig),
            "SERVICES_BIND": f"127.0.0.1:{port}",
            "PROBES_BIND": f"127.0.0.1:{probes}",
        },
    )
    try:
        procs.wait_until(
            "readyz", lambda: procs.http_ok(f"http://127.0.0.1:{probes}/readyz"), timeout=30, process=process
        )
        assert procs.http_ok(f"http://127.0.0.1:{probes}/healthz")
        # A discovery request makes the SDK install its own SIGTERM handler, which must not swallow ours.
        assert procs.http_ok(f"http://127.0.0.1:{port}/health")
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(timeout=10) == 0
    except subprocess.TimeoutExpired:
        pytest.fail(f"services ignored SIGTERM:\n{process.log_tail()}")
    finally:
        process.stop()
