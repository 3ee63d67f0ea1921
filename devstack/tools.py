"""Where the stack's binaries live, and how they get there.

The Kubernetes binaries are built from Go modules into a cache outside the repo, keyed by
version (`build-control-plane.sh`), and so are the Knative Serving controller with its CRDs and
ConfigMaps (`build-knative.sh`, from `knative/`) and Prometheus' promtool, which the chart tests run
on the alerting rules (`build-promtool.sh`); restate-server, the restate CLI and restatectl come from their npm
packages, pinned, in the git-ignored `.tools/`. `python -m devstack.tools` installs whatever is
missing and prints where everything is; the fixtures only locate, and fail with the command to run.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESTATE_VERSION = "1.7.12"
NPM_PREFIX = REPO / ".tools" / "npm"
BUILD_SCRIPT = Path(__file__).resolve().with_name("build-control-plane.sh")
KNATIVE_BUILD_SCRIPT = Path(__file__).resolve().with_name("build-knative.sh")
PROMTOOL_BUILD_SCRIPT = Path(__file__).resolve().with_name("build-promtool.sh")
K8S_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
)


def runtime_python() -> Path:
    """An interpreter with exactly the image's packages (requirements.lock), made once per lock in
    `.tools/`: what the benchmarks run the operator with. The dev virtualenv also has the test tools,
    and restate-sdk imports its test harness (testcontainers, docker, requests) when they are there."""
    lock = REPO / "requirements.lock"
    home = REPO / ".tools" / f"runtime-{hashlib.sha256(lock.read_bytes()).hexdigest()[:12]}"
    python = home / "bin" / "python"
    if not (home / "complete").exists():
        venv.create(home, clear=True, with_pip=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--require-hashes", "--only-binary=:all:", "-r", str(lock)], check=True)
        (home / "complete").touch()
    return python


class MissingTool(RuntimeError):
    """A binary the stack needs is not installed; the message says how to install it."""


def restate_server_bin() -> Path:
    return NPM_PREFIX / "node_modules/@restatedev/restate-server-linux-x64/bin/restate-server"


def restate_cli_bin() -> Path:
    return NPM_PREFIX / "node_modules/@restatedev/restate-linux-x64/bin/restate"


def restatectl_bin() -> Path:
    """restatectl, which the restate image ships too: the chart's provisioning Job runs it."""
    return NPM_PREFIX / "node_modules/@restatedev/restatectl-linux-x64/bin/restatectl"


def _installed_restate_version() -> str | None:
    manifest = NPM_PREFIX / "node_modules/@restatedev/restate-server/package.json"
    binaries = (restate_server_bin(), restate_cli_bin(), restatectl_bin())
    if not manifest.exists() or not all(binary.exists() for binary in binaries):
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


def ensure_restate() -> None:
    """Install the pinned restate-server and CLI from npm unless they are already there."""
    if _installed_restate_version() == RESTATE_VERSION:
        return
    NPM_PREFIX.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(NPM_PREFIX),
            "--no-audit",
            "--no-fund",
            "--no-save",
            f"@restatedev/restate-server@{RESTATE_VERSION}",
            f"@restatedev/restate@{RESTATE_VERSION}",
            f"@restatedev/restatectl@{RESTATE_VERSION}",
        ],
        check=True,
        stdout=sys.stderr,
    )


def ensure_control_plane() -> Path:
    """Build (or find cached) Kubernetes binaries; returns their directory."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def control_plane_bin_dir() -> Path:
    """The cached Kubernetes binaries, without building; MissingTool when absent."""
    out = subprocess.run(["bash", str(BUILD_SCRIPT), "--print-dir"], check=True, stdout=subprocess.PIPE, text=True)
    path = Path(out.stdout.strip())
    missing = [b for b in K8S_BINARIES if not (path / b).exists()]
    if missing:
        raise MissingTool(f"missing {', '.join(missing)} in {path}: run `make tools` (builds them once)")
    return path


def ensure_knative() -> Path:
    """Build (or find cached) the Knative Serving controller, CRDs and ConfigMaps; returns their directory."""
    out = subprocess.run(["bash", str(KNATIVE_BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def knative_dir() -> Path:
    """The cached Knative Serving build, without building; MissingTool when absent or built from older source."""
    out = subprocess.run(["bash", str(KNATIVE_BUILD_SCRIPT), "--check"], stdout=subprocess.PIPE, text=True, check=False)
    path = Path(out.stdout.strip())
    if out.returncode != 0:
        raise MissingTool(f"no current Knative Serving controller in {path}: run `make tools` (builds it once)")
    return path


def ensure_promtool() -> Path:
    """Build (or find cached) promtool; returns the binary."""
    out = subprocess.run(["bash", str(PROMTOOL_BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "promtool"


def promtool_bin() -> Path:
    """The cached promtool, without building; MissingTool when absent."""
    out = subprocess.run(
        ["bash", str(PROMTOOL_BUILD_SCRIPT), "--print-dir"], check=True, stdout=subprocess.PIPE, text=True
    )
    path = Path(out.stdout.strip()) / "promtool"
    if not path.exists():
        raise MissingTool(f"no promtool at {path}: run `make tools` (builds it once)")
    return path


def require_restate() -> None:
    if _installed_restate_version() != RESTATE_VERSION:
        raise MissingTool(f"restate {RESTATE_VERSION} is not in {NPM_PREFIX}: run `make tools`")


def bin_path_entries() -> list[Path]:
    """Directories holding kubectl, helm and restate, for a PATH."""
    return [control_plane_bin_dir(), restate_cli_bin().parent]


if __name__ == "__main__":
    ensure_restate()
    k8s = ensure_control_plane()
    knative = ensure_knative()
    promtool = ensure_promtool()
    print(f"kubernetes binaries: {k8s}")
    print(f"knative serving:     {knative}")
    print(f"promtool:            {promtool}")
    print(f"restate-server:      {restate_server_bin()}")
    print(f"restate CLI:         {restate_cli_bin()}")
    print(f"restatectl:          {restatectl_bin()}")
