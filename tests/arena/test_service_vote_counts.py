"""Votes are recorded once per battle in bulk, and vote_counts always equals a GROUP BY of them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from arena_client import battle
from arena_support import BACKENDS, fresh_pg_database

import arenastack_arena.service.db as db_module
from arenastack_arena.ratings import OUTCOMES
from arenastack_arena.service.db import Database, Tx
from arenastack_arena.service.migrations import MIGRATIONS
from arenastack_arena.service.store import Vote, insert_votes, outcome_counts

COUNTS_MIGRATION = 4
CATEGORIES = (None, "math")


def comparable(rows: list[tuple]) -> list[tuple[str, str, str, str, int]]:
    """Sorted, with no category as '' (None does not sort among strings)."""
    return sorted((c or "", a, b, w, int(n)) for c, a, b, w, n in rows)


def group_by(tx: Tx) -> list[tuple[str, str, str, str, int]]:
    return comparable(
        tx.query(
            "SELECT category, model_a, model_b, winner, COUNT(*) FROM votes "
            "GROUP BY category, model_a, model_b, winner"
        )
    )


def counts(db: Database) -> list[tuple[str, str, str, str, int]]:
    return comparable(db.read_sync(outcome_counts))


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'counts.db'}"
    else:
        yield fresh_pg_database(request.getfixturevalue("postgres_url"), "arena_vote_counts")


def vote(battle_id: str, k: int, category: str | None = None) -> Vote:
    return Vote(
        battle_id=battle_id,
        model_a=f"m{k % 3}",
        model_b=f"m{(k + 1) % 3}",
        winner=OUTCOMES[k % len(OUTCOMES)],
        judge="test",
        turn=1,
        category=category,
    )


def test_migration_backfills_counts_from_existing_votes(database_url, monkeypatch):
    monkeypatch.setattr(db_module, "MIGRATIONS", MIGRATIONS[: COUNTS_MIGRATION - 1])
    db = Database(database_url)
    db.start()

    def old_votes(tx: Tx) -> None:
        for k in range(40):
            tx.execute(
                "INSERT INTO votes (battle_id, model_a, model_b, winner, judge, turn, anony, "
                "category, tstamp) VALUES (?, ?, ?, ?, 'old', 1, 1, ?, ?)",
                (f"old{k}", f"m{k % 3}", f"m{(k + 1) % 3}", OUTCOMES[k % 4], CATEGORIES[k % 2], k),
            )

    asyncio.run(db.write(old_votes))
    db.close()
    monkeypatch.undo()

    db = Database(database_url)
    db.start()
    try:
        expected = db.read_sync(group_by)
        assert sum(r[4] for r in expected) == 40
        assert counts(db) == expected
        asyncio.run(db.write_bulk(insert_votes, vote("new0", 1, "math")))
        assert counts(db) == db.read_sync(group_by)
    finally:
        db.close()


def test_bulk_insert_records_each_battle_once_and_counts_it(database_url):
    db = Database(database_url)
    db.start()
    try:
        first = [vote(f"b{k}", k, [None, "coding"][k % 2]) for k in range(700)]
        # Same battles again in the same batch and a later one: never a second vote.
        again = [vote("b0", 1), vote("b1", 2, "coding")]
        results = asyncio.run(db.write(lambda tx: insert_votes(tx, first + again)))
        assert results == [True] * len(first) + [False, False]
        later = asyncio.run(db.write(lambda tx: insert_votes(tx, [vote("b5", 3), vote("c0", 0)])))
        assert later == [False, True]

        async def concurrently() -> list[bool]:
            same = [vote("d0", k) for k in range(20)] + [vote(f"e{k}", k) for k in range(50)]
            return await asyncio.gather(*(db.write_bulk(insert_votes, v) for v in same))

        outcomes = asyncio.run(concurrently())
        assert outcomes[:20].count(True) == 1 and all(outcomes[20:])
        rows = db.read_sync(group_by)
        assert sum(r[4] for r in rows) == 700 + 1 + 1 + 50
        assert counts(db) == rows
        b0 = db.read_sync(lambda tx: tx.query("SELECT winner FROM votes WHERE battle_id = 'b0'"))
        assert b0 == [(OUTCOMES[0],)]
    finally:
        db.close()


def test_concurrent_votes_on_the_service_count_once(arena):
    with arena.client() as c, ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda n: battle(c, f"count me {n}", "counts")[0], range(8)))

        def post(battle_id: str) -> int:
            with arena.client() as client:
                return client.post(
                    f"/api/battles/{battle_id}/vote", json={"winner": "model_b"}
                ).status_code

        statuses = list(pool.map(post, [b for b in ids for _ in range(4)]))
    assert statuses.count(200) == len(ids) and statuses.count(409) == 3 * len(ids)
    db = Database(arena.database_url)
    try:
        counted = db.read_sync(
            lambda tx: tx.query("SELECT SUM(n) FROM vote_counts WHERE category = 'counts'")
        )
        assert counted[0][0] == len(ids)
        assert counts(db) == db.read_sync(group_by)
    finally:
        db.close()
