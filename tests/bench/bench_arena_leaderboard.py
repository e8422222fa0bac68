"""The real August 2024 leaderboard (mixtral-8x7b-instruct-v0.1 anchored at 1114).

Writes tests/bench/results/arena_leaderboard.{json,md}: ratings with 95%
bootstrap (1,000 rounds) and sandwich intervals, public ranks and vote counts.
"""

from __future__ import annotations

import json
import time

from bench_common import RESULTS, git_sha, machine, today

from arenastack_arena.ratings import EloScale, build_leaderboard, load_leaderbot_json
from arenastack_arena.ratings.__main__ import markdown_table
from arenastack_cluster.arena_data import chatbot_arena_counts

DATA = chatbot_arena_counts()
ANCHOR, ANCHOR_RATING, ROUNDS, SEED = "mixtral-8x7b-instruct-v0.1", 1114.0, 1000, 0


def main() -> None:
    counts = load_leaderbot_json(DATA)
    scale = EloScale(anchor=ANCHOR, anchor_rating=ANCHOR_RATING)
    started = time.perf_counter()
    boot = build_leaderboard(counts, scale, method="bootstrap", rounds=ROUNDS, seed=SEED)
    boot_seconds = time.perf_counter() - started
    sandwich = {r.model: r for r in build_leaderboard(counts, scale, method="sandwich").rows}
    rows = [
        {
            **r.as_dict(),
            "sandwich_lower": sandwich[r.model].lower,
            "sandwich_upper": sandwich[r.model].upper,
            "sandwich_rank": sandwich[r.model].rank,
        }
        for r in boot.rows
    ]
    result = {
        "benchmark": "arena-leaderboard",
        "date": today(),
        "machine": machine(),
        "versions": {"arenastack": git_sha()},
        "params": {
            "data": DATA.name,
            "battles": counts.n_battles,
            "models": counts.n_models,
            "anchor": ANCHOR,
            "anchor_rating": ANCHOR_RATING,
            "bootstrap_rounds": ROUNDS,
            "seed": SEED,
            "confidence": 0.95,
        },
        "ours": {"bootstrap_seconds": round(boot_seconds, 3)},
        "rows": rows,
    }
    (RESULTS / "arena_leaderboard.json").write_text(json.dumps(result, indent=1) + "\n")
    md = (
        f"# Arena leaderboard, {DATA.name}\n\n"
        f"{counts.n_battles:,} battles, {counts.n_models} models; "
        f"{ANCHOR} anchored at {ANCHOR_RATING:.0f}; 95% intervals from {ROUNDS} bootstrap rounds "
        f"(seed {SEED}); ranks by the public rule. Computed in {boot_seconds:.2f} s.\n\n"
        + markdown_table(boot)
    )
    (RESULTS / "arena_leaderboard.md").write_text(md)
    print(markdown_table(boot, 15))


if __name__ == "__main__":
    main()
