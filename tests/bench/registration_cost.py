"""Benchmark: what one registration costs restate-server as the deployments it holds grow.

A rollout of N resources is N registrations and N deregistrations, and Restate's admin API
rewrites its schema registry on each. If one costs more the more deployments Restate holds, that
bounds how fast any operator can roll out many resources at once. No operator, no Kubernetes: a
bare restate-server and the light benchmark server (one process, a service per address, as in the
scale benchmark). Registers `--count` deployments one at a time, each its own service, then
deregisters them all, timing every admin call. Prints the p50 per block of 100 calls.

    .venv/bin/python -m tests.bench.registration_cost [--count 1000]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

from devstack import procs
from devstack.restate_server import RestateServer, new_hosts_file
from tests import light
from tests.bench.common import percentile, record

BLOCK = 100


def timed(call: httpx.Request, http: httpx.Client) -> float:
    started = time.monotonic()
    response = http.send(call)
    response.raise_for_status()
    return time.monotonic() - started


def distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(procs.free_port())
    return sorted(ports)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def print_blocks(label: str, seconds: list[float]) -> None:
    for start in range(0, len(seconds), BLOCK):
        block = [s * 1000 for s in seconds[start : start + BLOCK]]
        print(f"{label} {start + 1}-{start + len(block)}: p50 {percentile(block, 0.5):.0f} ms, max {max(block):.0f} ms")


def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        restate = RestateServer(work / "restate", new_hosts_file(work / "hosts"))
        ports = distinct_free_ports(count)
        table = work / "table.json"
        table.write_text(json.dumps({f"127.0.0.1:{p}": [light.service(i), "v1"] for i, p in enumerate(ports)}))
        server = procs.start(
            "bench-server", [sys.executable, "-m", "devstack.bench_server", "--table", table], log_dir=work / "logs"
        )
        try:
            procs.wait_until("the bench services", lambda: all(map(listening, ports)), timeout=120, process=server)
            restate.start()  # after the bench services bound their ports, so its own free ports are others
            with httpx.Client(base_url=restate.admin_url, timeout=120) as http:
                register = []
                for port in ports:
                    call = http.build_request("POST", "/deployments", json={"uri": f"http://127.0.0.1:{port}/"})
                    register.append(timed(call, http))
                deployments = http.get("/deployments").json()["deployments"]
                ids = [d["id"] for d in deployments]
                deregister = [
                    timed(http.build_request("DELETE", f"/deployments/{i}", params={"force": "true"}), http)
                    for i in ids
                ]
        finally:
            restate.stop()
            server.stop()
    print_blocks("register", register)
    print_blocks("deregister", deregister)
    print(f"all {count}: register {sum(register):.1f} s, deregister {sum(deregister):.1f} s (one at a time)")
    record("registration_cost", count=count, register_s=register, deregister_s=deregister)
    print(f"rerun: .venv/bin/python -m tests.bench.registration_cost --count {count}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    main(parser.parse_args().count)
