"""A real Kubernetes control plane as plain processes on loopback.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which plays kubelet for
simulated nodes: pods bound to them become Running and Ready). Each instance owns a work
directory with its PKI, kubeconfig, data and logs; it never reads or writes `~/.kube`.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from devstack import images, procs

ADMIN_TOKEN = "restate-operator-admin"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(pki: Path) -> None:
    """A CA, an apiserver serving certificate for loopback, and the service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "30",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=restate-operator-test-ca",
        cwd=pki,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "apiserver.key",
        "-out",
        "apiserver.csr",
        "-subj",
        "/CN=kube-apiserver",
        cwd=pki,
    )
    (pki / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "apiserver.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-out",
        "apiserver.crt",
        "-extfile",
        "san.ext",
        cwd=pki,
    )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    (pki / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin-uid,"system:masters"\n')


def kubeconfig_yaml(server: str, ca_file: Path) -> str:
    """A kubeconfig as JSON (which is YAML), so no YAML library is needed to write it."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
            "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        },
        indent=2,
    )


_READY_CONDITIONS = """        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
"""
_CONTAINER_READY = """        name: {{ .name | Quote }}
        ready: true
"""


def honest_stages(source: Path, target: Path) -> Path:
    """kwok's stages, except that a pod the pod runner runs a process for starts Running but not Ready.

    kwok's `pod-ready` stage marks every pod Ready at once, before any process listens; for the pods
    whose image the runner runs (`images.runs_process`), the runner sets Ready itself when the
    process answers its readiness probe (or port), so every latency measured here is honest."""
    docs = source.read_text().split("\n---\n")
    index = next(i for i, doc in enumerate(docs) if "name: pod-ready\n" in doc)
    stage = docs[index]
    if stage.count(_READY_CONDITIONS) != 1 or stage.count(_CONTAINER_READY) != 2:  # containers, init containers
        raise RuntimeError(f"{source}: kwok's pod-ready stage changed shape; update devstack/control_plane.py")
    ready = '{{ if $runs }}"False"{{ else }}"True"{{ end }}'
    stage = stage.replace(
        "      {{ $now := Now }}\n", "      {{ $now := Now }}\n      " + images.kwok_runs_process_template() + "\n", 1
    )
    stage = stage.replace(_READY_CONDITIONS, _READY_CONDITIONS.replace('status: "True"', f"status: {ready}"))
    stage = stage.replace(_CONTAINER_READY, _CONTAINER_READY.replace("ready: true", "ready: {{ not $runs }}"), 1)
    docs[index] = stage
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n---\n".join(docs))
    return target


def kwok_node(name: str) -> dict[str, object]:
    """A simulated node that kwok keeps Ready; roomy enough for every test to schedule on it."""
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "spec": {},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


@dataclass
class ControlPlane:
    """One running control plane; `start()` returns when it serves and has Ready nodes."""

    work: Path
    bin_dir: Path
    nodes: int = 2
    processes: list[procs.Process] = field(default_factory=list)
    api_port: int = 0
    _argv: dict[str, list[str | Path]] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.work / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.work / "pki" / "ca.crt"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def kubectl_result(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the control plane's own kubectl against this cluster, whatever its exit code."""
        return subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Run kubectl; returns stdout, raises on failure unless `check` is false."""
        result = self.kubectl_result(*args, input=input)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        pki, logs = self.work / "pki", self.work / "logs"
        make_pki(pki)
        etcd_port, peer_port = procs.free_port(), procs.free_port()
        self.api_port = procs.free_port()
        self.kubeconfig.write_text(kubeconfig_yaml(self.server, self.ca_file))
        kc = str(self.kubeconfig)

        etcd = self._spawn(
            "etcd",
            [
                self.bin_dir / "etcd",
                "--name=node0",
                f"--data-dir={self.work / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=node0=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",
                "--auto-compaction-retention=1",
                "--log-level=warn",
            ],
            logs,
        )
        procs.wait_until(
            "etcd", lambda: procs.http_ok(f"http://127.0.0.1:{etcd_port}/health"), timeout=30, process=etcd
        )

        apiserver = self._spawn(
            "kube-apiserver",
            [
                self.bin_dir / "kube-apiserver",
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/20",  # the scale benchmark needs ~3 Services a resource
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
            ],
            logs,
        )
        procs.wait_until(
            "kube-apiserver /readyz",
            lambda: procs.http_ok(f"{self.server}/readyz", ca_file=self.ca_file),
            timeout=90,
            process=apiserver,
        )

        self._spawn(
            "kube-controller-manager",
            [
                self.bin_dir / "kube-controller-manager",
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--use-service-account-credentials=false",
                "--controllers=*,-horizontal-pod-autoscaler-controller",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-deployment-syncs=10",
            ],
            logs,
        )
        self._spawn(
            "kube-scheduler",
            [
                self.bin_dir / "kube-scheduler",
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--leader-elect=false",
            ],
            logs,
        )
        self._spawn(
            "kwok",
            [
                self.bin_dir / "kwok",
                f"--kubeconfig={kc}",
                f"--config={honest_stages(self.bin_dir / 'kwok-stages.yaml', self.work / 'kwok-stages.yaml')}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                "--cidr=10.0.0.0/16",
                "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{procs.free_port()}",
            ],
            logs,
        )

        for i in range(self.nodes):
            self.kubectl("apply", "-f", "-", input=json.dumps(kwok_node(f"kwok-node-{i}")))
        procs.wait_until("nodes Ready", self._nodes_ready, timeout=60)
        procs.wait_until(
            "serviceaccount default/default",
            lambda: bool(self.kubectl("get", "serviceaccount", "default", "-n", "default", "-o", "name", check=False)),
            timeout=60,
        )

    def _spawn(self, name: str, argv: list[str | Path], logs: Path) -> procs.Process:
        process = procs.start(name, argv, log_dir=logs)
        self.processes.append(process)
        self._argv[name] = argv
        return process

    def kill(self, name: str) -> None:
        """SIGKILL one component (`etcd`, `kube-apiserver`, ...), for crash tests; `revive` brings it back."""
        next(p for p in self.processes if p.name == name).kill()

    def revive(self, name: str) -> None:
        """Start a killed component again with its arguments (etcd keeps its data directory) and wait
        until the apiserver answers again."""
        index = next(i for i, p in enumerate(self.processes) if p.name == name)
        old = self.processes[index]
        old.kill()
        self.processes[index] = procs.start(name, self._argv[name], log_dir=old.log.parent)
        procs.wait_until(
            "kube-apiserver /readyz after a restart",
            lambda: procs.http_ok(f"{self.server}/readyz", ca_file=self.ca_file),
            timeout=90,
            process=self.processes[index],
        )

    def _nodes_ready(self) -> bool:
        nodes = json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"]
        ready = [
            n
            for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        ]
        return len(ready) >= self.nodes

    def dead(self) -> list[str]:
        """Names of components that have exited (a healthy plane returns [])."""
        return [p.name for p in self.processes if not p.alive()]

    def stop(self) -> None:
        """Stop every component in reverse start order."""
        while self.processes:
            self.processes.pop().stop()
