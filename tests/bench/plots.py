"""PNG plots of the last benchmark figures (`.bench/*.json`) into docs/performance/.

Needs matplotlib, the optional `bench` extra (`pip install -e '.[bench]'`; `make plots` does it):
kept out of the runtime and dev dependencies because only these plots use it.

    .venv/bin/python -m tests.bench.plots
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from tests.bench.common import RESULTS

OUT = Path(__file__).resolve().parents[2] / "docs" / "performance"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def latencies() -> None:
    """Box plots of apply -> Ready: creates, rollouts (operator_cost), and the floor (floor_ratio)."""
    cost, floor = load("operator_cost"), load("floor_ratio")
    series: dict[str, list[float]] = {}
    if cost:
        series["create"] = [s * 1000 for s in cost["created_s"]]
        series["rollout"] = [s * 1000 for s in cost["rolled_s"]]
    if floor:
        series["RestateCluster"] = [s * 1000 for s in floor["cluster_s"]]
        series["floor"] = [s * 1000 for s in floor["floor_s"]]
    if not series:
        return
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.boxplot(list(series.values()), tick_labels=list(series))
    axes.axhline(1100, linestyle="--", color="grey", linewidth=0.8, label="create goal 1100 ms")
    axes.axhline(2000, linestyle=":", color="grey", linewidth=0.8, label="rollout goal 2000 ms")
    axes.set_ylabel("apply -> Ready (ms)")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(OUT / "latency.png", dpi=100)
    plt.close(figure)


def drain() -> None:
    lag = load("drain_lag")
    if not lag:
        return
    figure, axes = plt.subplots(figsize=(7, 3))
    axes.plot([s * 1000 for s in lag["lag_s"]], marker="o")
    axes.axhline(1000, linestyle="--", color="grey", linewidth=0.8, label="goal 1000 ms")
    axes.set_xlabel("rollout")
    axes.set_ylabel(f"lag beyond drainDelaySeconds={lag['drain_delay_s']} (ms)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(OUT / "drain-lag.png", dpi=100)
    plt.close(figure)


def scale() -> None:
    """Resources Ready over time, per N and phase."""
    found = load("scale")
    if not found:
        return
    figure, axes = plt.subplots(figsize=(7, 4))
    for result in found["results"]:
        for phase, times in result["ready_at_s"].items():
            ordered = sorted(times)
            axes.plot(ordered, range(1, len(ordered) + 1), label=f"{result['count']} {phase}")
    axes.axvline(60, linestyle="--", color="grey", linewidth=0.8, label="goal 60 s")
    axes.set_xlabel("seconds since the phase's first apply (create, then rollout to v2)")
    axes.set_ylabel("RestateDeployments Ready")
    axes.legend()
    figure.tight_layout()
    figure.savefig(OUT / "scale.png", dpi=100)
    plt.close(figure)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for plot in (latencies, drain, scale):
        plot()
    print(f"plots in {OUT}: {', '.join(sorted(p.name for p in OUT.glob('*.png')))}")
    print("rerun: .venv/bin/python -m tests.bench.plots")


if __name__ == "__main__":
    main()
