"""Vote service benchmark: durable votes/s with p50/p99 on SQLite and PostgreSQL.

The anchor is the same server's trivial endpoint (GET /healthz) under the same
load generator: the ceiling this process, HTTP stack and 2 cores allow. The
load generator is wrk (C, one thread, a Lua script that makes each request
and checks each status), so the client costs the server's cores as little as
possible; the Python client the benchmark used before is measured on /healthz
beside it to show the difference.

Votes go to battles stored beforehand straight into the database (streaming
tens of thousands of battles would take longer than the measurement), in two
kinds:
- cached: the service has the battle in memory, as when the replica that
  streamed the battle takes its vote (the normal case);
- uncached: the vote must first read its battle from the database (another
  replica streamed it, or the service restarted).
Either way a vote is answered only after the transaction holding it
committed (group commit; SQLite synchronous=FULL, PostgreSQL fsync and
synchronous_commit on), and after each run every acknowledged vote is
checked to be in the database and in the vote counts.

Also: leaderboard refresh time with 1,000,000 stored votes over the real
129-model pair distribution: the plain boards (overall + categories, fit +
bootstrap) from the vote_counts table, the style-controlled board refit from
the latest 200k votes (its own slower schedule), and, as the anchor for the
refresh, the GROUP BY over the raw votes that the counts table replaced.

ARENA_BENCH_QUICK=1: short runs and 100k stored votes, to check the script.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from bench_common import RESULTS, git_sha, load_average, machine, today

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "arena"))
from arena_processes import model_double, postgres, start_service, stop  # noqa: E402

from arenastack_arena.ratings import OUTCOMES, load_leaderbot_json  # noqa: E402
from arenastack_arena.service.boards import LeaderboardCache, compute_boards  # noqa: E402
from arenastack_arena.service.db import Database, Tx  # noqa: E402
from arenastack_arena.service.metrics import Metrics  # noqa: E402
from arenastack_arena.service.settings import Settings  # noqa: E402
from arenastack_arena.service.store import Store, Vote, insert_votes, outcome_counts  # noqa: E402
from arenastack_cluster.arena_data import chatbot_arena_counts  # noqa: E402

QUICK = os.environ.get("ARENA_BENCH_QUICK") == "1"
SECONDS = 3 if QUICK else 10
CONCURRENCY = 64
# Battles per vote run: more than any run can use, so a run ends at SECONDS.
# The cached kind is bounded by the service's battle cache (50,000).
UNCACHED_BATTLES = 20_000 if QUICK else 100_000
CACHED_BATTLES = 10_000 if QUICK else 49_000
PYTHON_CLIENT_REQUESTS = 2_000 if QUICK else 10_000
STORED_VOTES = 100_000 if QUICK else 1_000_000
REAL = chatbot_arena_counts()
LUA = HERE / "arena_votes.lua"
ROWS_PER_INSERT = 500
TARGETS = {
    "sqlite_votes_per_s": ">= 2000",
    "sqlite_p99_ms": "< 50",
    "refresh_1m_seconds": "< 1",
}


# --- battles and votes stored directly --------------------------------------
def _insert_rows(tx: Tx, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    one = "(" + ", ".join("?" * len(rows[0])) + ")"
    for k in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[k : k + ROWS_PER_INSERT]
        tx.execute(
            f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(chunk))}",
            tuple(p for row in chunk for p in row),
        )


def seed_battles(database_url: str, prefix: str, n: int) -> None:
    """Stored, answered, unvoted battles (what a finished stream leaves behind)."""
    now = time.time()
    battles = [(f"{prefix}{k:07d}", "alpha", "beta", None, now) for k in range(n)]
    turns = [(f"{prefix}{k:07d}", 1, f"prompt {k}", "**answer** a", "- answer b") for k in range(n)]

    def op(tx: Tx) -> None:
        _insert_rows(tx, "battles", "id, model_a, model_b, category, created_at", battles)
        _insert_rows(tx, "turns", "battle_id, turn, prompt, answer_a, answer_b", turns)

    db = Database(database_url)
    db.start()
    try:
        asyncio.run(db.write(op))
    finally:
        db.close()


def stored_votes(database_url: str) -> tuple[int, int]:
    """(rows in votes, sum of vote_counts): equal when the counts are exact."""
    db = Database(database_url)
    try:
        return db.read_sync(
            lambda tx: (
                tx.query("SELECT COUNT(*) FROM votes")[0][0],
                tx.query("SELECT COALESCE(SUM(n), 0) FROM vote_counts")[0][0],
            )
        )
    finally:
        db.close()


# --- load generators ----------------------------------------------------------
def wrk(url: str, mode: str, prefix: str = "", count: int = 0) -> dict[str, Any]:
    """One wrk run (one thread, CONCURRENCY connections) with the Lua script.

    A run with a count ends when that many responses came back: the script
    creates a marker file and this interrupts wrk, which then reports.
    """
    args = [mode, prefix, str(count)] if count else [mode]
    seconds = SECONDS if mode != "battle" else 600
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "done"
        proc = subprocess.Popen(
            ["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{seconds}s", "--timeout", "10s"]
            + ["-s", str(LUA), url, "--", *args],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "WRK_DONE_FILE": str(marker)},
        )
        deadline = time.monotonic() + seconds + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if marker.exists():
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.02)
        out, _ = proc.communicate(timeout=60)
    match = re.search(r"^RESULT (\{.*\})$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no RESULT line:\n{out}")
    result = json.loads(match.group(1))
    result["per_s"] = round(result["requests"] / result["seconds"], 1)
    result["load_average_1m"] = load_average()
    return result


async def python_client(url: str, n: int) -> dict[str, Any]:
    """The Python (aiohttp) client this benchmark used before, on GET /healthz."""
    latencies: list[float] = []
    left = n
    async with aiohttp.ClientSession(
        url, connector=aiohttp.TCPConnector(limit=CONCURRENCY)
    ) as session:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                started = time.perf_counter()
                async with session.get("/healthz") as r:
                    await r.read()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "requests": n,
        "seconds": round(elapsed, 3),
        "per_s": round(n / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "load_average_1m": load_average(),
    }


# --- one backend --------------------------------------------------------------
def measure_backend(name: str, database_url: str, endpoint: str, tmp: Path) -> dict[str, Any]:
    # One more than the runs' counts: see arena_votes.lua.
    seed_battles(database_url, "cold", UNCACHED_BATTLES + 1)
    seed_battles(database_url, "warm", CACHED_BATTLES + 1)
    models = tmp / f"models-{name}.yaml"
    entries = "".join(f"  - name: {m}\n    endpoint: {endpoint}\n" for m in ("alpha", "beta"))
    models.write_text("models:\n" + entries)
    service = start_service(
        database_url,
        models_file=models,
        battle_rate_per_minute=10**9,
        vote_rate_per_minute=10**9,
        leaderboard_refresh_s=5.0,
        style_refresh_s=60.0,
    )
    out: dict[str, Any] = {}
    try:
        # First, so the start-up work (the leaderboard worker process) is over when timing.
        warmed = wrk(service.url, "battle", "warm", CACHED_BATTLES)
        if warmed["statuses"] != {"200": CACHED_BATTLES}:
            raise RuntimeError(f"loading the cached battles failed: {warmed['statuses']}")
        out["ceiling_healthz"] = wrk(service.url, "healthz")
        if name == "sqlite":
            out["python_client_healthz"] = asyncio.run(
                python_client(service.url, PYTHON_CLIENT_REQUESTS)
            )
        for kind, prefix, count in (
            ("votes_cached", "warm", CACHED_BATTLES),
            ("votes_uncached", "cold", UNCACHED_BATTLES),
        ):
            out[kind] = wrk(service.url, "vote", prefix, count)
            print(f"{name} {kind}: {json.dumps(out[kind])}", flush=True)
    finally:
        stop(service.proc)
    acknowledged = 0
    for kind in ("votes_cached", "votes_uncached"):
        statuses = out[kind]["statuses"]
        acknowledged += statuses.get("200", 0)
        if set(statuses) != {"200"} or any(out[kind]["socket_errors"].values()):
            raise RuntimeError(f"{name} {kind}: not every vote acknowledged: {out[kind]}")
    rows, counted = stored_votes(database_url)
    # A run ends with up to CONCURRENCY votes in flight: stored, perhaps, but not counted here.
    if not acknowledged <= rows <= acknowledged + 2 * CONCURRENCY or counted != rows:
        raise RuntimeError(
            f"{name}: {acknowledged} votes acknowledged, {rows} stored, {counted} counted"
        )
    out["stored_votes"] = rows
    for kind in ("votes_cached", "votes_uncached"):
        out[kind]["vs_ceiling"] = round(out[kind]["per_s"] / out["ceiling_healthz"]["per_s"], 3)
    print(f"{name}: {json.dumps(out)}", flush=True)
    return out


# --- leaderboard refresh at scale ---------------------------------------------
def store_synthetic_votes(database_url: str) -> None:
    counts = load_leaderbot_json(REAL)
    rng = np.random.default_rng(0)
    cells = counts.counts.ravel() / counts.counts.sum()
    draw = rng.choice(len(cells), STORED_VOTES, p=cells)
    pair, outcome = draw // 4, draw % 4
    categories = np.array([None, "coding", "math", "writing"], dtype=object)[
        rng.integers(0, 4, STORED_VOTES)
    ]
    style = rng.poisson(300, (STORED_VOTES, 8)).astype(float)
    db = Database(database_url)
    db.start()
    batch = 50_000
    try:
        for start in range(0, STORED_VOTES, batch):
            votes = [
                Vote(
                    battle_id=f"v{k}",
                    model_a=counts.models[counts.i[pair[k]]],
                    model_b=counts.models[counts.j[pair[k]]],
                    winner=OUTCOMES[outcome[k]],
                    judge="bench",
                    turn=1,
                    category=categories[k],
                    tstamp=float(k),
                    style_a=tuple(style[k, :4]),
                    style_b=tuple(style[k, 4:]),
                )
                for k in range(start, min(start + batch, STORED_VOTES))
            ]
            asyncio.run(db.write(lambda tx, votes=votes: insert_votes(tx, votes)))
    finally:
        db.close()


def group_by_votes(tx: Tx) -> list[tuple[Any, ...]]:
    """The refresh's read before the counts table: a GROUP BY over every vote."""
    return tx.query(
        "SELECT category, model_a, model_b, winner, COUNT(*) FROM votes "
        "GROUP BY category, model_a, model_b, winner"
    )


def refresh_at_scale(database_url: str) -> dict[str, Any]:
    store_synthetic_votes(database_url)
    settings = Settings(
        database_url=database_url,
        leaderboard_anchor="mixtral-8x7b-instruct-v0.1",
        leaderboard_anchor_rating=1114.0,
    )
    db = Database(database_url)
    cache = LeaderboardCache(Store(db), settings, Metrics(), None)
    parts: dict[str, float] = {}
    t0 = time.perf_counter()
    rows = db.read_sync(outcome_counts)
    parts["read_counts_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    compute_boards(rows, cache.scale, settings.leaderboard_bootstrap_rounds, None)
    parts["compute_boards_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    old_rows = db.read_sync(group_by_votes)
    parts["group_by_votes_s"] = time.perf_counter() - t2
    assert sum(r[4] for r in old_rows) == sum(r[4] for r in rows) == STORED_VOTES

    async def refreshes() -> tuple[float, float]:
        await cache.refresh()  # the first call also starts the worker process
        boards = await cache.refresh()
        assert boards.boards["overall"]["votes"] == STORED_VOTES
        started = time.perf_counter()
        await cache.refresh_style()
        return boards.seconds, time.perf_counter() - started

    load = load_average()
    refresh_s, style_s = asyncio.run(refreshes())
    cache.close()
    db.close()
    return {
        "stored_votes": STORED_VOTES,
        "count_rows": len(rows),
        "refresh_seconds": round(refresh_s, 3),
        "style_refresh_seconds": round(style_s, 3),
        "style_votes": settings.style_max_votes,
        # The refresh as it was: the same boards from a GROUP BY over every vote.
        "anchor_group_by_refresh_seconds": round(
            parts["group_by_votes_s"] + parts["compute_boards_s"], 3
        ),
        "parts": {k: round(v, 3) for k, v in parts.items()},
        "load_average_1m": load,
    }


# --- report ---------------------------------------------------------------------
def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run hack/apt.sh (package wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="arena-bench-"))
    result: dict[str, Any] = {
        "benchmark": "arena-votes",
        "date": today(),
        "machine": machine(),
        "load_average_1m": load_average(),
        "versions": {"arenastack": git_sha(), "anchor": "same server, GET /healthz"},
        "params": {
            "seconds_per_run": SECONDS,
            "concurrency": CONCURRENCY,
            "load_generator": "wrk -t1 (one thread) with tests/bench/arena_votes.lua",
            "uncached_battles": UNCACHED_BATTLES,
            "cached_battles": CACHED_BATTLES,
            "stored_votes": STORED_VOTES,
            "quick": QUICK,
        },
    }
    try:
        with model_double() as endpoint:
            result["sqlite"] = measure_backend(
                "sqlite", f"sqlite:///{tmp / 'votes.db'}", endpoint, tmp
            )
            with postgres() as pg:
                result["postgresql"] = measure_backend("postgresql", pg, endpoint, tmp)
        result["refresh_sqlite"] = refresh_at_scale(f"sqlite:///{tmp / 'million.db'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("refresh", json.dumps(result["refresh_sqlite"]), flush=True)
    s, p, f = result["sqlite"], result["postgresql"], result["refresh_sqlite"]
    result["ours"] = {
        "sqlite_votes_per_s": s["votes_uncached"]["per_s"],
        "sqlite_p50_ms": s["votes_uncached"]["p50_ms"],
        "sqlite_p99_ms": s["votes_uncached"]["p99_ms"],
        "sqlite_cached_votes_per_s": s["votes_cached"]["per_s"],
        "sqlite_cached_p99_ms": s["votes_cached"]["p99_ms"],
        "postgresql_votes_per_s": p["votes_uncached"]["per_s"],
        "postgresql_p99_ms": p["votes_uncached"]["p99_ms"],
        "postgresql_cached_votes_per_s": p["votes_cached"]["per_s"],
        "refresh_1m_seconds": f["refresh_seconds"],
        "style_refresh_seconds": f["style_refresh_seconds"],
    }
    result["anchor"] = {
        "sqlite_healthz_per_s": s["ceiling_healthz"]["per_s"],
        "sqlite_healthz_p99_ms": s["ceiling_healthz"]["p99_ms"],
        "postgresql_healthz_per_s": p["ceiling_healthz"]["per_s"],
        "refresh_1m_group_by_seconds": f["anchor_group_by_refresh_seconds"],
    }
    result["ratios"] = {
        "sqlite_votes_vs_ceiling": s["votes_uncached"]["vs_ceiling"],
        "sqlite_cached_votes_vs_ceiling": s["votes_cached"]["vs_ceiling"],
        "postgresql_votes_vs_ceiling": p["votes_uncached"]["vs_ceiling"],
        "postgresql_cached_votes_vs_ceiling": p["votes_cached"]["vs_ceiling"],
        "refresh_vs_group_by": round(
            f["refresh_seconds"] / f["anchor_group_by_refresh_seconds"], 3
        ),
        "note": "votes: throughput ours/ceiling, higher is better (1.0 = as fast as a no-op); "
        "refresh: seconds ours/anchor, lower is better",
    }
    result["targets"] = TARGETS
    (RESULTS / "arena_votes.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "arena_votes.md").write_text(markdown(result))
    print(markdown(result))


def _row(backend: str, what: str, r: dict[str, Any], ratio: str) -> str:
    return (
        f"| {backend} | {what} | {r['requests']:,} | {r['per_s']} | {r['p50_ms']} | "
        f"{r['p99_ms']} | {ratio} | {r['load_average_1m']} |"
    )


def markdown(r: dict[str, Any]) -> str:
    p = r["params"]
    lines = [
        "# Vote service benchmark"
        + (" (quick check run, ARENA_BENCH_QUICK=1)" if p["quick"] else ""),
        "",
        f"{r['date']}, {r['machine']}, load average {r['load_average_1m']} at the start, "
        f"arenastack {r['versions']['arenastack']}; {p['seconds_per_run']} s per run, "
        f"{p['concurrency']} connections, {p['load_generator']}, on the same machine. "
        "Every vote is acknowledged only after its group commit (SQLite WAL + "
        "synchronous=FULL; PostgreSQL fsync + synchronous_commit).",
        "",
        "| backend | requests | count | per s | p50 ms | p99 ms | per s vs ceiling | load avg |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("sqlite", "postgresql"):
        b = r[name]
        lines.append(_row(name, "GET /healthz (ceiling, anchor)", b["ceiling_healthz"], "1.0"))
        for kind, what in (
            ("votes_cached", "vote, battle cached"),
            ("votes_uncached", "vote, battle read from the database"),
        ):
            lines.append(_row(name, what, b[kind], str(b[kind]["vs_ceiling"])))
    py = r["sqlite"].get("python_client_healthz")
    if py:
        lines += [
            "",
            f"Load generator check, GET /healthz on the same server: wrk "
            f"{r['sqlite']['ceiling_healthz']['per_s']} req/s vs the Python aiohttp client "
            f"{py['per_s']} req/s (p50 {py['p50_ms']} ms, p99 {py['p99_ms']} ms) for "
            f"{PYTHON_CLIENT_REQUESTS:,} requests.",
        ]
    f = r["refresh_sqlite"]
    lines += [
        "",
        f"Leaderboard refresh with {f['stored_votes']:,} stored votes (SQLite, load average "
        f"{f['load_average_1m']}): plain boards (overall + categories, 100-round bootstrap) from "
        f"the vote_counts table ({f['count_rows']:,} rows), in the worker processes as the service "
        f"runs it: **{f['refresh_seconds']} s**; anchor, the same boards from the GROUP BY over "
        f"every vote that the counts table replaced: {f['anchor_group_by_refresh_seconds']} s. "
        f"Style-controlled board refit from the "
        f"latest {f['style_votes']:,} votes on its own schedule {f['style_refresh_seconds']} s; "
        f"parts {json.dumps(f['parts'])}.",
        "",
        f"Targets: {json.dumps(r['targets'])}",
        "",
        *verdicts(r),
    ]
    return "\n".join(lines) + "\n"


def verdicts(r: dict[str, Any]) -> list[str]:
    """Each target beside what was measured, for both kinds of vote."""
    s, f = r["sqlite"], r["refresh_sqlite"]
    lines = []
    for kind, what in (
        ("votes_cached", "battle cached (one SQLite replica's normal case)"),
        ("votes_uncached", "battle read from the database (after a restart)"),
    ):
        v = s[kind]
        fast, quick = v["per_s"] >= 2000, v["p99_ms"] < 50
        lines.append(
            f"- SQLite, {what}: {v['per_s']:,} votes/s ({'met' if fast else 'missed'}), "
            f"p99 {v['p99_ms']} ms ({'met' if quick else 'missed'})"
        )
    met = f["refresh_seconds"] < 1
    lines.append(
        f"- Refresh at {f['stored_votes']:,} votes: {f['refresh_seconds']} s "
        f"({'met' if met else 'missed'})"
    )
    return lines


if __name__ == "__main__":
    main()
