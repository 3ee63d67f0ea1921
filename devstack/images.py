"""Container images the pod runner knows how to run as local processes.

A pod whose container image is listed here gets a real process, started from the repo root with
the container's literal `env`, plus `BIND_HOST` (its loopback address) and `PORT` (its first
container port, else 9080). The operator's own image (any tag) runs the container's `python -m …`
command with this checkout's code, so `make dev` runs what is in the working tree. Pods with other
images stay simulated by kwok alone.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

HELLO_IMAGE = "restate-operator.local/examples/hello:0.1"
# Pods of these run a real restate-server (see pod_runner.restate_launch): RestateCluster nodes.
RESTATE_IMAGES = {"docker.io/restatedev/restate:1.7.12"}
VERSIONED_IMAGE = "restate-operator.local/examples/versioned"  # tags v1, v2, breaking, v1-side (+VersionedSide)

IMAGES: dict[str, list[str]] = {
    HELLO_IMAGE: [sys.executable, "-m", "examples.hello"],
    **{
        f"{VERSIONED_IMAGE}:{tag}": [sys.executable, "-m", "examples.versioned", "--version", tag]
        for tag in ("v1", "v2", "breaking", "v1-side")
    },
}

OPERATOR_IMAGE = "restate-operator.local/restate-operator"
# The light benchmark image (any tag is the version): every such pod is served by one shared
# process (devstack.bench_server), as the Restate service its container's SERVICE_NAME env names.
BENCH_IMAGE = "restate-operator.local/bench/light"


def operator_argv(container: Mapping[str, Any]) -> list[str] | None:
    """`python -m <module>` of an operator-image container, run with this interpreter; None for other images."""
    repository = container["image"].rsplit(":", 1)[0] if "/" in container["image"] else container["image"]
    command = [*(container.get("command") or []), *(container.get("args") or [])]
    if repository != OPERATOR_IMAGE or command[:2] != ["python", "-m"]:
        return None
    return [sys.executable, *command[1:]]


def runs_process(image: str) -> bool:
    """Whether the pod runner runs an SDK or operator process for `image` and lets it decide readiness.

    Not restate-server pods (`RESTATE_IMAGES`): they keep kwok's instant readiness, because the
    RestateCluster tests drive nodes through states (never provisioned, decommissioning) in which
    a real node never turns Ready, and the operator's own gates there are Running pods."""
    return image in IMAGES or image.startswith(OPERATOR_IMAGE + ":") or image.startswith(BENCH_IMAGE + ":")


def kwok_runs_process_template() -> str:
    """The same test as `runs_process`, for kwok's Go templates: sets `$runs` for the pod."""
    listed = " ".join(f'"{image}"' for image in sorted(IMAGES))
    return (
        "{{ $runs := false }}{{ range .spec.containers }}"
        f'{{{{ if or (has .image (list {listed})) (hasPrefix "{OPERATOR_IMAGE}:" .image)'
        f' (hasPrefix "{BENCH_IMAGE}:" .image) }}}}'
        "{{ $runs = true }}{{ end }}{{ end }}"
    )
