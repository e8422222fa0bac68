"""Vote service benchmark: durable votes/s with p50/p99 on SQLite and PostgreSQL.

The anchor is the same server's trivial endpoint (GET /healthz) under the same
load generator: the ceiling this process, HTTP stack and 2 cores allow. Votes
go to battles stored beforehand straight into the database (creating them via
streamed battles would take longer than the measurement), so every vote also
reads its battle from the database: the service's cache-miss path, the harder
one. A vote is answered only after its transaction committed (group commit).

Also: leaderboard refresh time with 1,000,000 stored votes over the real
129-model pair distribution (GROUP BY + fit + 100-round bootstrap + category
boards + style-controlled fit on the latest 200k votes).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
from bench_common import RESULTS, git_sha, load_average, machine, today

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "arena"))
from arena_processes import model_double, postgres, start_service, stop  # noqa: E402

from arenastack_arena.ratings import OUTCOMES, load_leaderbot_json  # noqa: E402
from arenastack_arena.service.boards import (  # noqa: E402
    LeaderboardCache,
    board_payload,
    counts_from_rows,
    style_payload,
)
from arenastack_arena.service.db import Database  # noqa: E402
from arenastack_arena.service.metrics import Metrics  # noqa: E402
from arenastack_arena.service.settings import Settings  # noqa: E402
from arenastack_arena.service.store import Store, Vote, insert_vote  # noqa: E402

QUICK = os.environ.get("ARENA_BENCH_QUICK") == "1"
VOTES = 4_000 if QUICK else 20_000
CONCURRENCY = 64
STORED_VOTES = 100_000 if QUICK else 1_000_000
REAL = HERE.parents[1].parent / "shared" / "data" / "arena" / "chatbotarena_20240814.json"
TARGETS = {"sqlite_votes_per_s": ">= 2000", "sqlite_p99_ms": "< 50", "refresh_1m_seconds": "< 1"}


def seed_battles(database_url: str, n: int) -> list[str]:
    """Stored, answered, unvoted battles (what a finished stream leaves behind)."""
    db = Database(database_url)
    db.start()
    ids = [f"bench{k:07d}" for k in range(n)]

    def op(tx) -> None:
        for k, battle_id in enumerate(ids):
            tx.execute(
                "INSERT INTO battles (id, model_a, model_b, category, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (battle_id, "alpha", "beta", None, time.time()),
            )
            tx.execute(
                "INSERT INTO turns (battle_id, turn, prompt, answer_a, answer_b) "
                "VALUES (?, ?, ?, ?, ?)",
                (battle_id, 1, f"prompt {k}", "**answer** a", "- answer b"),
            )

    asyncio.run(db.write(op))
    db.close()
    return ids


async def load(url: str, paths: list[tuple[str, str, dict | None]]) -> dict[str, float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(paths))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def worker() -> None:
            while queue:
                method, path, body = queue.pop()
                started = time.perf_counter()
                async with session.request(method, path, json=body) as r:
                    await r.read()
                latencies.append(time.perf_counter() - started)
                statuses[r.status] = statuses.get(r.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "requests": len(paths),
        "seconds": round(elapsed, 3),
        "per_s": round(len(paths) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def measure_backend(name: str, database_url: str, endpoint: str, tmp: Path) -> dict:
    ids = seed_battles(database_url, VOTES)
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
    try:
        ceiling = asyncio.run(load(service.url, [("GET", "/healthz", None)] * VOTES))
        winners = [OUTCOMES[k % 4] for k in range(VOTES)]
        votes = asyncio.run(
            load(
                service.url,
                [
                    ("POST", f"/api/battles/{b}/vote", {"winner": w})
                    for b, w in zip(ids, winners, strict=True)
                ],
            )
        )
    finally:
        stop(service.proc)
    assert votes["statuses"] == {"200": VOTES}, votes["statuses"]
    print(f"{name}: votes {votes} | ceiling {ceiling}", flush=True)
    return {
        "votes": votes,
        "ceiling_healthz": ceiling,
        "ratio_votes_per_s_vs_ceiling": round(votes["per_s"] / ceiling["per_s"], 3),
    }


def refresh_at_scale(database_url: str) -> dict:
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
    for start in range(0, STORED_VOTES, batch):
        end = min(start + batch, STORED_VOTES)

        def op(tx, start=start, end=end) -> None:
            for k in range(start, end):
                p = pair[k]
                insert_vote(
                    tx,
                    Vote(
                        battle_id=f"v{k}",
                        model_a=counts.models[counts.i[p]],
                        model_b=counts.models[counts.j[p]],
                        winner=OUTCOMES[outcome[k]],
                        judge="bench",
                        turn=1,
                        category=categories[k],
                        tstamp=float(k),
                        style_a=tuple(style[k, :4]),
                        style_b=tuple(style[k, 4:]),
                    ),
                )

        asyncio.run(db.write(op))
    settings = Settings(
        database_url=database_url,
        leaderboard_anchor="mixtral-8x7b-instruct-v0.1",
        leaderboard_anchor_rating=1114.0,
        style_refresh_s=0.0,
    )
    cache = LeaderboardCache(Store(db), settings, Metrics(), None)

    async def timed() -> dict[str, float]:
        times = {}
        t0 = time.perf_counter()
        rows = await cache.store.db.read(cache.store.outcome_counts)
        times["group_by_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        overall = counts_from_rows([r[1:] for r in rows])
        board = board_payload(overall, cache.scale, settings.leaderboard_bootstrap_rounds)
        times["overall_board_s"] = time.perf_counter() - t1
        assert board["votes"] == STORED_VOTES
        t2 = time.perf_counter()
        styled = await cache.store.db.read(
            lambda tx: cache.store.styled_votes(tx, settings.style_max_votes)
        )
        times["style_rows_s"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        style_payload(styled, cache.scale)
        times["style_fit_s"] = time.perf_counter() - t3
        return times

    parts = asyncio.run(timed())

    async def refresh_twice() -> float:
        await cache.refresh()  # the first call also starts the worker process
        return (await cache.refresh()).seconds

    full_seconds = asyncio.run(refresh_twice())
    cache.close()
    db.close()
    return {
        "stored_votes": STORED_VOTES,
        "refresh_seconds": round(full_seconds, 3),
        "parts": {k: round(v, 3) for k, v in parts.items()},
        "overall_seconds": round(parts["group_by_s"] + parts["overall_board_s"], 3),
    }


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="arena-bench-"))
    result: dict = {
        "benchmark": "arena-votes",
        "date": today(),
        "machine": machine(),
        "load_average_1m": load_average(),
        "versions": {"arenastack": git_sha(), "anchor": "same server, GET /healthz"},
        "params": {
            "votes": VOTES,
            "concurrency": CONCURRENCY,
            "stored_votes": STORED_VOTES,
            "quick": QUICK,
        },
    }
    with model_double() as endpoint:
        result["sqlite"] = measure_backend("sqlite", f"sqlite:///{tmp / 'votes.db'}", endpoint, tmp)
        with postgres() as pg:
            result["postgresql"] = measure_backend("postgresql", pg, endpoint, tmp)
    result["refresh_sqlite"] = refresh_at_scale(f"sqlite:///{tmp / 'million.db'}")
    print("refresh", result["refresh_sqlite"], flush=True)
    s = result["sqlite"]
    result["ours"] = {  # noqa: RUF100
        "sqlite_votes_per_s": s["votes"]["per_s"],
        "sqlite_p50_ms": s["votes"]["p50_ms"],
        "sqlite_p99_ms": s["votes"]["p99_ms"],
        "postgresql_votes_per_s": result["postgresql"]["votes"]["per_s"],
        "postgresql_p99_ms": result["postgresql"]["votes"]["p99_ms"],
        "refresh_1m_seconds": result["refresh_sqlite"]["refresh_seconds"],
    }
    result["anchor"] = {
        "healthz_per_s_sqlite_run": s["ceiling_healthz"]["per_s"],
        "healthz_p99_ms_sqlite_run": s["ceiling_healthz"]["p99_ms"],
    }
    result["ratios"] = {
        "sqlite_votes_vs_ceiling": s["ratio_votes_per_s_vs_ceiling"],
        "postgresql_votes_vs_ceiling": result["postgresql"]["ratio_votes_per_s_vs_ceiling"],
        "note": "throughput ours/ceiling: higher is better (1.0 = as fast as a no-op)",
    }
    result["targets"] = TARGETS
    (RESULTS / "arena_votes.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "arena_votes.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    lines = [
        "# Vote service benchmark",
        "",
        f"{r['date']}, {r['machine']}, load average {r['load_average_1m']}, "
        f"arenastack {r['versions']['arenastack']}; "
        f"{r['params']['votes']:,} requests per run, {CONCURRENCY} concurrent clients, "
        "load generator on the same machine.",
        "",
        "| backend | votes/s | p50 ms | p99 ms | ceiling (GET /healthz) req/s "
        "| ceiling p50 / p99 ms | votes/ceiling |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for name in ("sqlite", "postgresql"):
        v, c = r[name]["votes"], r[name]["ceiling_healthz"]
        lines.append(
            f"| {name} | {v['per_s']} | {v['p50_ms']} | {v['p99_ms']} | {c['per_s']} | "
            f"{c['p50_ms']} / {c['p99_ms']} | {r[name]['ratio_votes_per_s_vs_ceiling']} |"
        )
    f = r["refresh_sqlite"]
    lines += [
        "",
        f"Leaderboard refresh with {f['stored_votes']:,} stored votes (SQLite): "
        f"{f['refresh_seconds']} s in all (overall + category boards + style control); "
        f"overall board alone {f['overall_seconds']} s; parts {json.dumps(f['parts'])}.",
        "",
        f"Targets: {json.dumps(r['targets'])}",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
