"""A real restate-server on loopback that resolves Kubernetes Service host names.

It runs in a private mount namespace where a hosts file owned by this stack is bind-mounted over
`/etc/hosts`, so `http://<svc>.<ns>.svc.cluster.local:9080` registrations reach the processes the
pod runner starts on loopback addresses. The machine's own `/etc/hosts` is never touched.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack import procs, tools

# Appending to the file in place keeps the bind mount pointing at it (a rename would not).
_UNSHARE_SCRIPT = 'mount --bind "$0" /etc/hosts && exec "$@"'


def private_hosts_argv(hosts_file: Path, argv: list[str], binds: Sequence[tuple[Path, str]] = ()) -> list[str]:
    """`argv`, run so that it sees `hosts_file` as `/etc/hosts` (and each `(source, target)` bind mount)."""
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare.append("--map-root-user")
    mounts = "".join(f" && mount --bind {shlex.quote(str(s))} {shlex.quote(t)}" for s, t in binds)
    script = _UNSHARE_SCRIPT.replace(" && exec", mounts + " && exec")
    return [*unshare, "sh", "-c", script, str(hosts_file), *argv]


def new_hosts_file(path: Path) -> Path:
    """Start from the machine's hosts file so localhost and friends still resolve."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile("/etc/hosts", path)
    return path


@dataclass
class RestateServer:
    """One restate-server; `kill()` then `start()` restarts it on the same data and ports."""

    work: Path
    hosts_file: Path
    ingress_port: int = 0
    admin_port: int = 0
    node_port: int = 0
    ca_bundle: Path | None = None  # the roots it trusts (the stack's test CA included), else the machine's
    process: procs.Process | None = None

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> None:
        tools.require_restate()
        if not self.ingress_port:
            self.ingress_port, self.admin_port, self.node_port = (procs.free_port() for _ in range(3))
        env = {
            "RESTATE_DISABLE_TELEMETRY": "true",
            "RESTATE_LISTEN_MODE": "tcp",
            "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{self.ingress_port}",
            "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{self.admin_port}",
            "RESTATE_BIND_ADDRESS": f"127.0.0.1:{self.node_port}",
            "RESTATE_ADVERTISED_ADDRESS": f"http://127.0.0.1:{self.node_port}/",
            "RESTATE_DEFAULT_NUM_PARTITIONS": "1",
            "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "128 MB",
            "RESTATE_LOG_FILTER": "warn",
            "RESTATE_LOG_DISABLE_ANSI_CODES": "true",
            **({"SSL_CERT_FILE": str(self.ca_bundle)} if self.ca_bundle else {}),
        }
        argv = [
            str(tools.restate_server_bin()),
            "--base-dir",
            str(self.work / "data"),
            "--node-name",
            "restate-test",
            "--no-logo",
        ]
        self.process = procs.start(
            "restate-server", private_hosts_argv(self.hosts_file, argv), log_dir=self.work / "logs", env=env
        )
        procs.wait_until(
            "restate-server health",
            lambda: procs.http_ok(f"{self.admin_url}/health") and procs.http_ok(f"{self.ingress_url}/restate/health"),
            timeout=60,
            process=self.process,
        )

    def kill(self) -> None:
        if self.process:
            self.process.kill()

    def stop(self) -> None:
        if self.process:
            self.process.stop(timeout=15)
