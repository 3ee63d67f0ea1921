"""Container images the pod runner knows how to run as local processes.

A pod whose container image is listed here gets a real process, started from the repo root with
the container's literal `env`, plus `BIND_HOST` (its loopback address) and `PORT` (its first
container port, else 9080). Pods with other images stay simulated by kwok alone.
"""

from __future__ import annotations

import sys

HELLO_IMAGE = "restate-operator.local/examples/hello:0.1"
# Pods of these run a real restate-server (see pod_runner.restate_launch): RestateCluster nodes.
RESTATE_IMAGES = {"docker.io/restatedev/restate:1.7.12"}
VERSIONED_IMAGE = "restate-operator.local/examples/versioned"  # tags v1, v2, breaking

IMAGES: dict[str, list[str]] = {
    HELLO_IMAGE: [sys.executable, "-m", "examples.hello"],
    **{
        f"{VERSIONED_IMAGE}:{tag}": [sys.executable, "-m", "examples.versioned", "--version", tag]
        for tag in ("v1", "v2", "breaking")
    },
}
