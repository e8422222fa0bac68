"""Pair sampling benchmark: battles an evaluation needs to recover a known ranking, adaptive
pair sampling (ours, the ArenaEvaluation `battles.mode: adaptive`) against uniform all-pairs
(the anchor: every pair equally often, as FastChat's and Arena-Hard's pairwise runs do).

Verdicts are simulated from known Bradley-Terry strengths (natural-log units), so the true
ranking is known; a seed counts as recovered from the battle after which the fitted ranking's
Kendall tau against the truth stays >= the accuracy at every later check up to the budget.
Each regime runs many seeds, three times (the simulation is deterministic per seed, so the
three runs differ only in time); the figure is the median over seeds of the battles needed.
Target: adaptive needs at least 30% fewer battles (ratio <= 0.70) for the same accuracy.
"""

from __future__ import annotations

import json
import time

import numpy as np
from bench_common import git_sha, load_average, machine, quick_run, today

from arenastack_arena.evaluation.simulation import battles_to_recover

ACCURACY = 0.9
TARGET = "<= 0.70"
# (name, strengths, tie rate): a spread field, a close field, and the close one with ties.
REGIMES = [
    ("8 models, spread 0.5", [0.5 * k for k in range(8)], 0.0),
    ("8 models, spread 0.3", [0.3 * k for k in range(8)], 0.0),
    ("8 models, spread 0.3, 20% ties", [0.3 * k for k in range(8)], 0.2),
    ("12 models, spread 0.3", [0.3 * k for k in range(12)], 0.0),
]
SAMPLERS = {"ours": "adaptive", "anchor": "uniform"}


def main() -> None:
    quick, _, out_dir = quick_run(__doc__.splitlines()[0], "bench-sampling-")
    seeds = list(range(6 if quick else 30))
    budget = 800 if quick else 3000
    regimes = REGIMES[:1] if quick else REGIMES
    load_start = load_average()
    results = []
    for name, strengths, ties in regimes:
        row: dict = {"regime": name, "models": len(strengths), "tie_rate": ties}
        for side, sampler in SAMPLERS.items():
            times = []
            for _ in range(1 if quick else 3):
                started = time.perf_counter()
                recovery = battles_to_recover(
                    strengths, sampler, seeds, accuracy=ACCURACY, budget=budget, tie_rate=ties
                )
                times.append(time.perf_counter() - started)
            row[side] = {
                "median_battles": recovery.median,
                "recovered_seeds": recovery.recovered,
                "seeds": len(seeds),
                "seconds_median": round(float(np.median(times)), 2),
            }
        ours, anchor = row["ours"]["median_battles"], row["anchor"]["median_battles"]
        row["ratio"] = round(ours / anchor, 3) if np.isfinite(ours / anchor) else None
        results.append(row)
        print(f"{name}: adaptive {ours:g} vs uniform {anchor:g} battles "
              f"(ratio {row['ratio']}, target {TARGET})", flush=True)  # fmt: skip
    record = {
        "benchmark": "arena-sampling",
        "date": today(),
        "machine": machine(),
        "versions": {"arenastack": git_sha(), "anchor": "uniform all-pairs (FastChat, Arena-Hard)"},
        "params": {"accuracy_kendall_tau": ACCURACY, "budget": budget, "seeds": len(seeds),
                   "runs": 1 if quick else 3, "load_average_start": load_start,
                   "load_average_end": load_average()},
        "results": results,
        "ratios": {r["regime"]: r["ratio"] for r in results},
        "targets": {"median battles, adaptive / uniform": TARGET},
    }  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "arena_sampling.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [
        "# Pair sampling: battles to recover a known ranking",
        "",
        f"{record['date']}, {record['machine']}, arenastack {record['versions']['arenastack']}; "
        f"Kendall tau >= {ACCURACY} held to the budget ({budget}), median over "
        f"{len(seeds)} seeds; load {load_start} at the start. Ratio = adaptive / uniform "
        f"(lower is better), target {TARGET}.",
        "",
        "| regime | adaptive (ours) | uniform (anchor) | ratio | seeds recovered (ours / anchor) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['regime']} | {r['ours']['median_battles']:g} | "
            f"{r['anchor']['median_battles']:g} | {r['ratio']} | "
            f"{r['ours']['recovered_seeds']} / {r['anchor']['recovered_seeds']} |"
        )
    (out_dir / "arena_sampling.md").write_text("\n".join(lines) + "\n")
    print(f"results in {out_dir}")


if __name__ == "__main__":
    main()
