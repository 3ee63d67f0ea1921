"""`make dev` / `make dev-down`: the local stack as a background process a newcomer can play with.

    python -m devstack up     # start (idempotent), wait until ready, print what to try
    python -m devstack up --knative  # the same, plus Knative Serving (devstack/knative.py)
    python -m devstack down   # stop everything `up` started; leaves no process behind
    python -m devstack serve  # the foreground supervisor `up` runs in the background

The stack is a control plane with the pod runner, and the operator is installed on it with
`helm install charts/restate-operator` (bootstrap Restate included), exactly as a user would.
`.dev/env` (under $RESTATE_OPERATOR_DEV_DIR when set) is the contract scripts may rely on: it
exports KUBECONFIG, RESTATE_ADMIN_URL and RESTATE_INGRESS_URL (the bootstrap Restate's) and a
PATH with kubectl, helm and restate. It exists only while the stack runs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from devstack import procs, tools
from devstack.chart import NAMESPACE, RELEASE, ChartInstall
from devstack.knative import Knative
from devstack.stack import Stack

# Overridable so tests can run a second stack without touching a developer's `make dev`.
DEV = Path(os.environ.get("RESTATE_OPERATOR_DEV_DIR", tools.REPO / ".dev"))
ENV_FILE = DEV / "env"
PID_FILE = DEV / "supervisor.pid"
LOG_FILE = DEV / "supervisor.log"
EXAMPLE = tools.REPO / "examples" / "hello" / "k8s.yaml"


def render_env(env: dict[str, str], path_entries: list[Path]) -> str:
    lines = [f"export {k}={shlex.quote(v)}" for k, v in env.items() if k != "PATH"]
    lines.append(f'export PATH={shlex.quote(os.pathsep.join(map(str, path_entries)))}:"$PATH"')
    return "\n".join(lines) + "\n"


def serve(knative: bool = False) -> None:
    """Start the stack (and Knative), publish `.dev/env`, and hold everything up until SIGTERM or SIGINT."""
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    shutil.rmtree(DEV / "stack", ignore_errors=True)  # every `make dev` starts from a clean cluster
    stack = Stack(DEV / "stack", standalone_restate=False)
    release = ChartInstall(stack)
    serving = Knative(stack) if knative else None
    try:
        stack.start()
        if serving is not None:  # before the operator, so it finds Knative's CRDs from its start
            serving.start()
        # Exactly what a user runs: the chart brings the CRDs, the bootstrap Restate and the operator.
        release.install()
        stack.control_plane.kubectl("apply", "-f", str(EXAMPLE))
        env = stack.env(admin_url=release.admin_url, ingress_url=release.ingress_url)
        ENV_FILE.write_text(render_env(env, tools.bin_path_entries()))
        print("stack ready", flush=True)
        while not stopping.wait(1.0):
            dead = stack.control_plane.dead() + (serving.dead() if serving is not None else [])
            if dead:
                print(f"components exited: {', '.join(dead)}; stopping", flush=True)
                break
    finally:
        ENV_FILE.unlink(missing_ok=True)
        if serving is not None:
            serving.stop()
        stack.stop()
        PID_FILE.unlink(missing_ok=True)
        print("stack stopped", flush=True)


def _running_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


KNATIVE_HINT = """
  # Knative Serving (--knative): the real controller; Revisions' pods run here, Route URLs answer on port 80:
  kubectl get configurations,revisions,routes -A
  restate deployments register --yes http://<route>.<namespace>.svc.cluster.local
"""


def up(knative: bool = False) -> int:
    if _running_pid() is None:
        tools.control_plane_bin_dir()
        tools.require_restate()
        if knative:
            tools.knative_dir()
        DEV.mkdir(exist_ok=True)
        ENV_FILE.unlink(missing_ok=True)
        with LOG_FILE.open("ab") as log:
            supervisor = subprocess.Popen(
                [sys.executable, "-m", "devstack", "serve", *(["--knative"] if knative else [])],
                cwd=tools.REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        PID_FILE.write_text(str(supervisor.pid))
        watched = procs.Process("the stack's supervisor", supervisor, LOG_FILE)
        try:
            procs.wait_until("the stack to come up", ENV_FILE.exists, timeout=180, interval=0.2, process=watched)
        except (RuntimeError, TimeoutError) as failure:
            print(f"the stack did not come up ({LOG_FILE}): {failure}", file=sys.stderr)
            down()
            return 1
    print(f"""The local stack is up: the chart `{RELEASE}` is installed in namespace {NAMESPACE} (logs in {DEV}/stack).

Try:
  source .dev/env
  kubectl get pods -n {NAMESPACE}                  # the bootstrap Restate, the services and the watcher
  helm list -n {NAMESPACE}
  restate deployments list                          # the operator's reconcilers registered themselves
  kubectl explain restatedeployment.spec.restate

  # A RestateDeployment that registers with the bootstrap Restate (README: the rollout walkthrough):
  kubectl apply -f examples/versioned/restatedeployment.yaml
  kubectl get rsd -n versioned -o wide -w
  curl -s -X POST "$RESTATE_INGRESS_URL/Versioned/whoami"
  restate state get DeploymentReconciler versioned/versioned

  # An SDK service you register by hand:
  kubectl get pods,svc -n hello
  restate deployments register --yes http://hello.hello.svc.cluster.local:9080
  curl -s "$RESTATE_INGRESS_URL/Greeter/greet" -H 'content-type: application/json' -d '"newcomer"'

{KNATIVE_HINT if knative else ""}
  make dev-down                                      # stops everything
""")
    return 0


def down() -> int:
    pid = _running_pid()
    if pid is None:
        print("the local stack is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    try:
        procs.wait_until("the stack to stop", lambda: _running_pid() is None, timeout=90)
    except TimeoutError:
        os.killpg(pid, signal.SIGKILL)  # last resort: the supervisor's session holds every child
    PID_FILE.unlink(missing_ok=True)
    print("the local stack is stopped")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "serve"])
    parser.add_argument("--knative", action="store_true", help="also run Knative Serving (up and serve)")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.knative)
    else:
        sys.exit(up(args.knative) if args.command == "up" else down())
