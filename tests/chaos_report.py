"""`python -m tests.chaos_report results.jsonl`: the fault matrix of `make chaos` as a Markdown table
(runs, passes, recovery p50 and max per scenario), for docs/reliability.md. A run that failed
wrote no line, so passes are lines here and runs are what CHAOS_ROUNDS asked for."""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else ".chaos/results.jsonl")
    rows: dict[str, list[float]] = defaultdict(list)
    windows: dict[str, float] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        result = json.loads(line)
        rows[str(result["scenario"])].append(float(result["recovery_s"]))
        windows[str(result["scenario"])] = float(result["window_s"])
    print("| fault | window (s) | passed | recovery p50 (s) | recovery max (s) |")
    print("|---|---|---|---|---|")
    for scenario, times in rows.items():
        print(
            f"| {scenario} | {windows[scenario]:g} | {len(times)} | {statistics.median(times):.1f} | {max(times):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
