"""PNG plots of the last benchmark figures (`.bench/*.json`) into docs/performance/.

Needs matplotlib, the optional `bench` extra (`pip install -e '.[bench]'`; `make plots` does it):
kept out of the runtime and dev dependencies because only these plots use it.

    .venv/bin/python -m tests.bench.plots
"""

from __future__ import annotations

import itertools
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


def save(figure: Any, name: str) -> None:
    figure.tight_layout()
    figure.savefig(OUT / name, dpi=100)
    plt.close(figure)


def latencies() -> None:
    """Box plots of apply -> Ready: creates and rollouts (operator_cost, also --light), the floor (floor_ratio)."""
    cost, light, floor = load("operator_cost"), load("operator_cost_light"), load("floor_ratio")
    series: dict[str, list[float]] = {}
    if cost:
        series["create"] = [s * 1000 for s in cost["created_s"]]
        series["rollout"] = [s * 1000 for s in cost["rolled_s"]]
    if light:
        series["create --light"] = [s * 1000 for s in light["created_s"]]
        series["rollout --light"] = [s * 1000 for s in light["rolled_s"]]
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
    save(figure, "latency.png")


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
    save(figure, "drain-lag.png")


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
    save(figure, "scale.png")


def growth() -> None:
    """Cost per resource against N: does a resource cost more when there are more of them?"""
    found = load("scale")
    if not found:
        return
    counts = [r["count"] for r in found["results"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for phase in ("create", "rollout"):
        left.plot(counts, [r[phase]["invocations_per_resource"] for r in found["results"]], marker="o", label=phase)
        right.plot(
            counts,
            [r[phase]["operator_cpu_s"] / r["count"] for r in found["results"]],
            marker="o",
            label=f"{phase}: operator",
        )
        right.plot(
            counts,
            [r[phase]["restate_cpu_s"] / r["count"] for r in found["results"]],
            marker="x",
            linestyle=":",
            label=f"{phase}: restate-server",
        )
    left.axhline(3, linestyle="--", color="grey", linewidth=0.8, label="goal 3")
    left.set_xlabel("RestateDeployments")
    left.set_ylabel("reconcile invocations per resource")
    right.set_xlabel("RestateDeployments")
    right.set_ylabel("CPU seconds per resource")
    left.legend()
    right.legend(fontsize="small")
    save(figure, "growth.png")


def machine() -> None:
    """Who spent the machine's CPU in each scale phase: the operator's share beside the stack's own."""
    found = load("scale")
    if not found or "cpu_by_group_s" not in found["results"][0]["create"]:
        return
    bars = [
        (f"{r['count']} {phase}", r[phase]["cpu_by_group_s"])
        for r in found["results"]
        for phase in ("create", "rollout")
    ]
    groups = sorted({g for _, by in bars for g in by}, key=lambda g: -sum(by.get(g, 0.0) for _, by in bars))
    figure, axes = plt.subplots(figsize=(8, 4))
    bottoms = [0.0] * len(bars)
    colours = plt.get_cmap("tab20")
    for i, group in enumerate(groups):
        heights = [max(0.0, by.get(group, 0.0)) for _, by in bars]
        axes.bar([label for label, _ in bars], heights, bottom=bottoms, label=group, color=colours(i))
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    axes.set_ylabel("CPU seconds in the phase")
    axes.legend(fontsize="small", ncol=2)
    save(figure, "machine.png")


def idle() -> None:
    """CPU per minute and what Restate keeps, over an idle run: flat or growing?"""
    found = load("idle_cost")
    if not found or len(found["minutes"]) < 2:
        return
    minutes = found["minutes"]
    xs = list(range(1, len(minutes)))
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, label in (("operator_cpu_s", "operator"), ("restate_cpu_s", "restate-server")):
        left.plot(xs, [b[key] - a[key] for a, b in itertools.pairwise(minutes)], marker="o", label=label)
    right.plot(xs, [m["invocations"] for m in minutes[1:]], marker="o", label="invocations kept")
    right.plot(xs, [m["state_rows"] for m in minutes[1:]], marker="x", label="state rows")
    left.set_xlabel("minute")
    left.set_ylabel(f"CPU seconds per minute ({found['count']} idle resources)")
    right.set_xlabel("minute")
    right.set_ylabel("rows in the bootstrap Restate")
    left.legend()
    right.legend()
    save(figure, "idle.png")


def registrations() -> None:
    """One admin call's time against the deployments Restate already holds: the floor under any rollout."""
    found = load("registration_cost")
    if not found:
        return
    count = found["count"]
    figure, axes = plt.subplots(figsize=(7, 3.5))
    axes.plot(range(count), [s * 1000 for s in found["register_s"]], ".", markersize=2, label="register")
    held = range(count - 1, -1, -1)  # deregistered in order: the first one leaves count - 1 behind
    axes.plot(held, [s * 1000 for s in found["deregister_s"]], ".", markersize=2, label="deregister")
    axes.set_xlabel("deployments Restate holds")
    axes.set_ylabel("admin call (ms)")
    axes.legend()
    save(figure, "registration.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for plot in (latencies, drain, scale, growth, machine, idle, registrations):
        plot()
    print(f"plots in {OUT}: {', '.join(sorted(p.name for p in OUT.glob('*.png')))}")
    print("rerun: .venv/bin/python -m tests.bench.plots")


if __name__ == "__main__":
    main()
