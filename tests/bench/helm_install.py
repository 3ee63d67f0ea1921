"""Benchmark: `helm install` of the chart -> operator ready (not a test; prints numbers).

For N rounds, starts a fresh stack without the standalone restate-server, runs `helm upgrade
--install` of charts/restate-operator and measures until the operator works: the bootstrap
Restate runs, the services registered themselves with it, every watcher listed its watches.

    .venv/bin/python -m tests.bench.helm_install [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from devstack import chart
from devstack.stack import Stack
from tests.bench.common import report


def one_install() -> tuple[float, float]:
    """(helm returned, operator ready) in seconds since `helm` started, on a fresh stack."""
    with tempfile.TemporaryDirectory() as work:
        stack = Stack(Path(work), standalone_restate=False)
        try:
            stack.start()
            release = chart.ChartInstall(stack)
            started = time.monotonic()
            release.install(wait=False)
            returned = time.monotonic()
            release.wait_ready()
            return returned - started, time.monotonic() - started
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    count = parser.parse_args().rounds
    rounds = [one_install() for _ in range(count)]
    report("helm install returned", [helm for helm, _ in rounds])
    report("helm install -> operator ready", [ready for _, ready in rounds])
    print(f"rerun: .venv/bin/python -m tests.bench.helm_install --rounds {count}")


if __name__ == "__main__":
    main()
