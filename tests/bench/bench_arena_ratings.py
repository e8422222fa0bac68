"""Ratings benchmark: arenastack vs FastChat 0.2.36 and evalica, side by side.

Every measurement runs in its own subprocess so peak RSS is per method. Inputs
are the same battles for everyone, in each library's native form: string
model names and winners for arenastack, a pandas frame for FastChat, string
names and Winner values for evalica (its enum conversion is not timed).

FastChat's bootstrap refits a dense logistic regression per round (minutes per
round on the real data), so it is timed over FSCHAT_ROUNDS rounds and scaled
linearly to 100; evalica's over EVALICA_ROUNDS. The JSON says which figures
are scaled. Sizes can be reduced with ARENA_BENCH_QUICK=1.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_common import RESULTS, git_sha, load_average, machine, peak_rss_mb, today

from arenastack_arena.ratings import (
    OUTCOMES,
    EloScale,
    aggregate,
    build_leaderboard,
    fit_bt,
    load_leaderbot_json,
)
from arenastack_cluster.arena_data import chatbot_arena_counts

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "arena"))
REAL = chatbot_arena_counts()
ROUNDS = 100
FSCHAT_ROUNDS = int(os.environ.get("FSCHAT_ROUNDS", "2"))
EVALICA_ROUNDS = int(os.environ.get("EVALICA_ROUNDS", "10"))
# Single fits are short enough for load spikes on a shared machine to swamp
# them: ours and evalica's are each timed FIT_REPEATS times, the best kept.
FIT_REPEATS = 3
QUICK = os.environ.get("ARENA_BENCH_QUICK") == "1"
HEADLINE = [("synthetic", 1_000_000, 50), ("real", 1_670_250, 129)]
SCALING = [
    ("synthetic", 100_000, 50),
    ("synthetic", 1_000_000, 50),
    ("synthetic", 10_000_000, 50),
    ("synthetic", 1_000_000, 500),
    ("synthetic", 10_000_000, 500),
]
if QUICK:
    HEADLINE = [("synthetic", 100_000, 50)]
    SCALING = [("synthetic", 100_000, 50), ("synthetic", 100_000, 500)]
TARGETS = {"bootstrap_vs_fschat": "<= 0.01", "fit_vs_evalica": "< 1.0"}


def battles(
    kind: str, n: int, p: int
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """(models, a, b, outcome codes) shuffled; synthetic ones from a known BT model with ties."""
    rng = np.random.default_rng(n + p)
    if kind == "real":
        counts = load_leaderbot_json(REAL)
        a, b, outcome = counts.to_battles()
        order = rng.permutation(len(a))
        return counts.models, a[order], b[order], outcome[order]
    strength = rng.normal(0.0, 1.0, p)
    a = rng.integers(0, p, n)
    b = (a + rng.integers(1, p, n)) % p
    tie = rng.random(n) < 0.2
    a_wins = rng.random(n) < 1.0 / (1.0 + np.exp(strength[b] - strength[a]))
    outcome = np.where(tie, rng.choice([2, 3], n), np.where(a_wins, 0, 1))
    return tuple(f"model-{k:03d}" for k in range(p)), a, b, outcome


def exact_elo(
    models: tuple[str, ...], a: np.ndarray, b: np.ndarray, outcome: np.ndarray
) -> np.ndarray:
    return fit_bt(aggregate(a, b, outcome, models=models)).ratings


def run_one(impl: str, kind: str, n: int, p: int) -> dict[str, float]:
    """Times one implementation on one input; returns seconds, rounds, peak RSS, accuracy."""
    models, a, b, outcome = battles(kind, n, p)
    names = np.asarray(models, dtype=object)
    xs, ys = names[a].tolist(), names[b].tolist()
    winners = np.asarray(OUTCOMES, dtype=object)[outcome].tolist()
    out: dict[str, float] = {}
    ratings: dict[str, float] | None = None
    if impl == "ours_fit":
        times = []
        for _ in range(FIT_REPEATS):
            start = time.perf_counter()
            fit = fit_bt(aggregate(xs, ys, winners))
            times.append(time.perf_counter() - start)
        out["seconds"], out["all_seconds"] = min(times), times
        ratings = fit.as_dict()
    elif impl == "ours_bootstrap":
        start = time.perf_counter()
        build_leaderboard(aggregate(xs, ys, winners), EloScale(), rounds=ROUNDS, seed=0)
        out["seconds"] = time.perf_counter() - start
        out["rounds"] = ROUNDS
    elif impl.startswith("evalica"):
        import evalica

        codes = (evalica.Winner.X, evalica.Winner.Y, evalica.Winner.Draw, evalica.Winner.Draw)
        ev_winners = [codes[k] for k in outcome.tolist()]
        if impl == "evalica_fit":
            times = []
            for _ in range(FIT_REPEATS):
                start = time.perf_counter()
                result = evalica.bradley_terry(xs, ys, ev_winners)
                times.append(time.perf_counter() - start)
            out["seconds"], out["all_seconds"] = min(times), times
            log_scores = np.log(result.scores.to_numpy())
            ratings = dict(zip(result.scores.index, 400 / math.log(10) * log_scores, strict=True))
        else:
            start = time.perf_counter()
            evalica.bootstrap(
                evalica.bradley_terry,
                xs,
                ys,
                ev_winners,
                n_resamples=EVALICA_ROUNDS,
                bootstrap_method="percentile",
                random_state=0,
            )
            out["seconds"] = time.perf_counter() - start
            out["rounds"] = EVALICA_ROUNDS
    elif impl.startswith("fschat"):
        from arena_anchors import battles_frame, load_fastchat_elo

        fastchat = load_fastchat_elo()
        frame = battles_frame(models, a, b, outcome)
        start = time.perf_counter()
        if impl == "fschat_fit":
            ratings = fastchat.compute_elo_mle_with_tie(frame).to_dict()
            out["seconds"] = time.perf_counter() - start
        else:
            fastchat.get_bootstrap_result(frame, fastchat.compute_elo_mle_with_tie, FSCHAT_ROUNDS)
            out["seconds"] = time.perf_counter() - start
            out["rounds"] = FSCHAT_ROUNDS
    else:
        raise SystemExit(f"unknown implementation {impl}")
    out["peak_rss_mb"] = peak_rss_mb()
    if ratings is not None:
        exact = exact_elo(models, a, b, outcome)
        present = [k for k, m in enumerate(models) if m in ratings]
        theirs = np.array([ratings[models[k]] for k in present])
        ours = exact[present]
        out["max_abs_elo_vs_exact_mle"] = float(
            np.abs((theirs - theirs.mean()) - (ours - ours.mean())).max()
        )
    return out


def measure(impl: str, kind: str, n: int, p: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--one", impl, kind, str(n), str(p)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if "rounds" in result and result["rounds"] != ROUNDS:
        result["measured_rounds"] = result.pop("rounds")
        result["measured_seconds"] = result["seconds"]
        result["seconds"] = result["seconds"] * ROUNDS / result["measured_rounds"]
        result["scaled_to_100_rounds"] = True
    print(f"  {impl:16s} {kind} {n:>10,} x {p:<4d} {json.dumps(result)}", flush=True)
    return result


def ratio(ours: dict, theirs: dict) -> float | None:
    if "seconds" not in ours or "seconds" not in theirs:
        return None
    return round(ours["seconds"] / theirs["seconds"], 6)


def main() -> None:
    headline = []
    for kind, n, p in HEADLINE:
        print(f"{kind} {n:,} battles x {p} models", flush=True)
        ours = {
            "fit": measure("ours_fit", kind, n, p),
            "bootstrap100": measure("ours_bootstrap", kind, n, p),
        }
        fschat = {
            "fit": measure("fschat_fit", kind, n, p),
            "bootstrap100": measure("fschat_bootstrap", kind, n, p),
        }
        evalica = {
            "fit": measure("evalica_fit", kind, n, p),
            "bootstrap100": measure("evalica_bootstrap", kind, n, p),
        }
        headline.append(
            {
                "data": kind,
                "battles": n,
                "models": p,
                "ours": ours,
                "anchor": {"fschat-0.2.36": fschat, "evalica-0.4.2": evalica},
                "ratios": {
                    "bootstrap_vs_fschat": ratio(ours["bootstrap100"], fschat["bootstrap100"]),
                    "bootstrap_vs_evalica": ratio(ours["bootstrap100"], evalica["bootstrap100"]),
                    "fit_vs_evalica": ratio(ours["fit"], evalica["fit"]),
                    "fit_vs_fschat": ratio(ours["fit"], fschat["fit"]),
                },
            }
        )
    scaling = []
    for kind, n, p in SCALING:
        print(f"scaling {n:,} x {p}", flush=True)
        scaling.append(
            {
                "battles": n,
                "models": p,
                "ours_fit": measure("ours_fit", kind, n, p),
                "ours_bootstrap100": measure("ours_bootstrap", kind, n, p),
                "evalica_fit": measure("evalica_fit", kind, n, p),
            }
        )
    write(headline, scaling)


def write(headline: list[dict], scaling: list[dict]) -> None:
    top = headline[-1]
    result = {
        "benchmark": "arena-ratings",
        "date": today(),
        "machine": machine(),
        "load_average_1m": load_average(),
        "versions": {
            "arenastack": git_sha(),
            "anchor": "fschat 0.2.36 (elo_analysis), evalica 0.4.2",
        },
        "params": {
            "bootstrap_rounds": ROUNDS,
            "fschat_rounds_timed": FSCHAT_ROUNDS,
            "evalica_rounds_timed": EVALICA_ROUNDS,
            "quick": QUICK,
        },
        "ours": top["ours"],
        "anchor": top["anchor"],
        "ratios": top["ratios"],
        "targets": TARGETS,
        "ratios_note": "ours/anchor seconds: lower is better",
        "headline": headline,
        "scaling": scaling,
    }
    (RESULTS / "arena_ratings.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "arena_ratings.md").write_text(markdown(result))
    print(markdown(result))


def fmt(entry: dict, key: str = "seconds") -> str:
    if key not in entry:
        return entry.get("error", "-")
    mark = " (scaled)" if entry.get("scaled_to_100_rounds") else ""
    return f"{entry[key]:.3f}{mark}"


def markdown(result: dict) -> str:
    lines = [
        "# Ratings benchmark: arenastack vs FastChat 0.2.36 and evalica 0.4.2",
        "",
        f"{result['date']}, {result['machine']}, load average {result['load_average_1m']}, "
        f"arenastack {result['versions']['arenastack']}. "
        "Seconds (lower is better); ratio = ours / anchor. Fit includes aggregation from "
        f"battle rows; ours and evalica fits are the best of {FIT_REPEATS} (FastChat's: one "
        f"run). Bootstrap = {ROUNDS} rounds; '(scaled)' = timed over fewer rounds "
        "and scaled linearly.",
        "",
        "| data | battles | models | what | ours s | fschat s | evalica s | ours/fschat "
        "| ours/evalica | peak RSS MB ours / fschat / evalica "
        "| max abs Elo vs exact MLE ours / fschat / evalica |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for h in result["headline"]:
        fs, ev = h["anchor"]["fschat-0.2.36"], h["anchor"]["evalica-0.4.2"]
        for what in ("fit", "bootstrap100"):
            o, f, e = h["ours"][what], fs[what], ev[what]
            acc = " / ".join(
                f"{x['max_abs_elo_vs_exact_mle']:.4g}" if "max_abs_elo_vs_exact_mle" in x else "-"
                for x in (o, f, e)
            )
            rss = " / ".join(f"{x.get('peak_rss_mb', 0):.0f}" for x in (o, f, e))
            lines.append(
                f"| {h['data']} | {h['battles']:,} | {h['models']} | {what} | {fmt(o)} "
                f"| {fmt(f)} | {fmt(e)} | {ratio(o, f)} | {ratio(o, e)} | {rss} | {acc} |"
            )
    lines += [
        "",
        f"Targets: {json.dumps(result['targets'])}",
        "",
        "## Scaling (synthetic)",
        "",
        "| battles | models | ours fit s | ours bootstrap100 s | evalica fit s | ours/evalica fit "
        "| peak RSS MB ours fit |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result["scaling"]:
        lines.append(
            f"| {s['battles']:,} | {s['models']} | {fmt(s['ours_fit'])} "
            f"| {fmt(s['ours_bootstrap100'])} | {fmt(s['evalica_fit'])} "
            f"| {ratio(s['ours_fit'], s['evalica_fit'])} | "
            f"{s['ours_fit'].get('peak_rss_mb', 0):.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        impl, kind, n, p = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(run_one(impl, kind, n, p)))
    else:
        main()
