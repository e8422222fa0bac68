"""Command line: a leaderboard from aggregated counts or battle JSON lines.

python -m arenastack_arena.ratings COUNTS.json --anchor NAME --anchor-rating 1114
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from arenastack_arena.ratings.counts import PairCounts, aggregate, load_leaderbot_json
from arenastack_arena.ratings.leaderboard import DEFAULT_ROUNDS, Leaderboard, build_leaderboard
from arenastack_arena.ratings.scale import EloScale


def load_counts(path: Path) -> PairCounts:
    """Aggregate JSON ({models, X, Y}) or Chatbot Arena battles, one JSON object per line."""
    if path.suffix == ".jsonl":
        a, b, w = [], [], []
        with path.open() as lines:
            for line in lines:
                if line.strip():
                    row = json.loads(line)
                    a.append(row["model_a"])
                    b.append(row["model_b"])
                    w.append(row["winner"])
        return aggregate(a, b, w)
    return load_leaderbot_json(path)


def markdown_table(board: Leaderboard, limit: int | None = None) -> str:
    lines = [
        "| rank | model | rating | 95% CI | votes |",
        "|---:|---|---:|---|---:|",
    ]
    for row in board.rows[:limit]:
        ci = f"+{row.upper - row.rating:.1f} / -{row.rating - row.lower:.1f}"
        flag = " (flagged)" if row.flagged else ""
        lines.append(f"| {row.rank} | {row.model}{flag} | {row.rating:.1f} | {ci} | {row.votes} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("--anchor")
    parser.add_argument("--anchor-rating", type=float, default=1000.0)
    parser.add_argument("--method", choices=("bootstrap", "sandwich"), default="bootstrap")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        counts = load_counts(args.input)
        board = build_leaderboard(
            counts,
            EloScale(anchor=args.anchor, anchor_rating=args.anchor_rating),
            method=args.method,
            rounds=args.rounds,
            seed=args.seed,
        )
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(board.as_dict(), indent=1) if args.json else markdown_table(board), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
