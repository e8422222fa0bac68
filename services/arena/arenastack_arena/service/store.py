"""The service's queries: registry, battles, turns, votes, aggregated counts."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from arenastack_arena.service.db import Database, Tx


@dataclass(frozen=True)
class ModelEntry:
    name: str
    endpoint: str
    upstream_model: str
    display_name: str
    organization: str = ""
    license: str = ""
    price_per_mtok: float | None = None
    active: bool = True

    def public(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every field, a cost on every vote's reveal.
        return {name: getattr(self, name) for name in _PUBLIC_FIELDS}


_PUBLIC_FIELDS = tuple(
    f.name for f in fields(ModelEntry) if f.name not in ("endpoint", "upstream_model")
)


@dataclass(frozen=True)
class Vote:
    battle_id: str
    model_a: str
    model_b: str
    winner: str
    judge: str
    turn: int
    anony: bool = True
    language: str | None = None
    category: str | None = None
    tstamp: float = field(default_factory=time.time)
    # Style counts in STYLE_FEATURES order (tokens, headers, lists, bold).
    style_a: tuple[float, ...] | None = None
    style_b: tuple[float, ...] | None = None


_MODEL_COLUMNS = (
    "name, endpoint, upstream_model, display_name, organization, license, price_per_mtok, active"
)


def _model(row: tuple[Any, ...]) -> ModelEntry:
    return ModelEntry(*row[:7], active=bool(row[7]))


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db

    # registry ------------------------------------------------------------
    async def upsert_model(self, m: ModelEntry) -> None:
        def op(tx: Tx) -> None:
            tx.execute(
                f"INSERT INTO models ({_MODEL_COLUMNS}, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET endpoint = excluded.endpoint, "
                "upstream_model = excluded.upstream_model, display_name = excluded.display_name, "
                "organization = excluded.organization, license = excluded.license, "
                "price_per_mtok = excluded.price_per_mtok, active = excluded.active, "
                "updated_at = excluded.updated_at",
                (
                    m.name,
                    m.endpoint,
                    m.upstream_model,
                    m.display_name,
                    m.organization,
                    m.license,
                    m.price_per_mtok,
                    int(m.active),
                    time.time(),
                ),
            )

        await self.db.write(op)

    async def set_active(self, name: str, active: bool) -> bool:
        def op(tx: Tx) -> int:
            return tx.execute(
                "UPDATE models SET active = ?, updated_at = ? WHERE name = ?",
                (int(active), time.time(), name),
            )

        return await self.db.write(op) > 0

    async def models(self, active_only: bool = False) -> list[ModelEntry]:
        where = " WHERE active = 1" if active_only else ""
        rows = await self.db.read(
            lambda tx: tx.query(f"SELECT {_MODEL_COLUMNS} FROM models{where} ORDER BY name")
        )
        return [_model(r) for r in rows]

    async def model(self, name: str) -> ModelEntry | None:
        rows = await self.db.read(
            lambda tx: tx.query(f"SELECT {_MODEL_COLUMNS} FROM models WHERE name = ?", (name,))
        )
        return _model(rows[0]) if rows else None

    # battles ---------------------------------------------------------------
    async def create_battle(
        self, battle_id: str, model_a: str, model_b: str, category: str | None, prompt: str
    ) -> None:
        def op(tx: Tx) -> None:
            tx.execute(
                "INSERT INTO battles (id, model_a, model_b, category, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (battle_id, model_a, model_b, category, time.time()),
            )
            tx.execute(
                "INSERT INTO turns (battle_id, turn, prompt) VALUES (?, ?, ?)",
                (battle_id, 1, prompt),
            )

        await self.db.write(op)

    async def add_turn(self, battle_id: str, turn: int, prompt: str) -> None:
        await self.db.write(
            lambda tx: tx.execute(
                "INSERT INTO turns (battle_id, turn, prompt) VALUES (?, ?, ?)",
                (battle_id, turn, prompt),
            )
        )

    async def finish_turn(
        self,
        battle_id: str,
        turn: int,
        answers: tuple[str, str],
        errors: tuple[str | None, str | None],
    ) -> None:
        await self.db.write(
            lambda tx: tx.execute(
                "UPDATE turns SET answer_a = ?, answer_b = ?, error_a = ?, error_b = ? "
                "WHERE battle_id = ? AND turn = ?",
                (*answers, *errors, battle_id, turn),
            )
        )

    async def battle(self, battle_id: str) -> dict[str, Any] | None:
        def op(tx: Tx) -> dict[str, Any] | None:
            rows = tx.query(
                "SELECT model_a, model_b, category FROM battles WHERE id = ?", (battle_id,)
            )
            if not rows:
                return None
            turns = tx.query(
                "SELECT turn, prompt, answer_a, answer_b, error_a, error_b FROM turns "
                "WHERE battle_id = ? ORDER BY turn",
                (battle_id,),
            )
            vote = tx.query("SELECT winner FROM votes WHERE battle_id = ?", (battle_id,))
            model_a, model_b, category = rows[0]
            return {
                "model_a": model_a,
                "model_b": model_b,
                "category": category,
                "turns": [
                    dict(
                        zip(
                            ("turn", "prompt", "answer_a", "answer_b", "error_a", "error_b"),
                            t,
                            strict=True,
                        )
                    )
                    for t in turns
                ],
                "winner": vote[0][0] if vote else None,
            }

        return await self.db.point_read(op)

    # votes -------------------------------------------------------------------
    async def record_vote(self, vote: Vote) -> bool:
        """True if recorded, False if this battle already has a vote (exactly once)."""
        return bool(await self.db.write_bulk(insert_votes, vote))

    async def vote_count(self) -> int:
        return (await self.db.read(lambda tx: tx.query("SELECT COUNT(*) FROM votes")))[0][0]

    def export_rows(self, tx: Tx) -> list[tuple[Any, ...]]:
        return tx.query(f"SELECT {VOTE_COLUMNS} FROM votes ORDER BY tstamp, battle_id")

    async def import_votes(self, votes: list[Vote]) -> int:
        def op(tx: Tx) -> int:
            return sum(insert_votes(tx, votes))

        return await self.db.write(op)


STYLE_COLUMNS = "a_tokens, a_headers, a_lists, a_bold, b_tokens, b_headers, b_lists, b_bold"
VOTE_COLUMNS = (
    "battle_id, model_a, model_b, winner, judge, turn, anony, language, category, tstamp, "
    + STYLE_COLUMNS
)
_NO_STYLE = (None,) * (len(STYLE_COLUMNS.split(",")) // 2)
_VOTE_PARAMS = "(" + ", ".join("?" * len(VOTE_COLUMNS.split(","))) + ")"
_COUNT_KEY = "category, model_a, model_b, winner"
# Rows per multi-row statement: 500 x 18 parameters stays under every SQLite's limit.
ROWS_PER_STATEMENT = 500


def _vote_params(v: Vote) -> tuple[Any, ...]:
    styles = (*(v.style_a or _NO_STYLE), *(v.style_b or _NO_STYLE))
    return (
        v.battle_id,
        v.model_a,
        v.model_b,
        v.winner,
        v.judge,
        v.turn,
        int(v.anony),
        v.language,
        v.category,
        v.tstamp,
        *styles,
    )


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[k : k + ROWS_PER_STATEMENT] for k in range(0, len(items), ROWS_PER_STATEMENT)]


def _insert_new(tx: Tx, votes: list[Vote]) -> set[str]:
    """Inserts votes whose battle has none yet; returns the battle ids inserted."""
    inserted: set[str] = set()
    for chunk in _chunks(votes):
        ids = [v.battle_id for v in chunk]
        if tx.dialect.name == "postgresql":
            # Another replica may insert concurrently: RETURNING says what we won.
            returning = " RETURNING battle_id"
            fresh = chunk
        else:
            # BEGIN IMMEDIATE holds SQLite's write lock, so nothing can change between
            # this check and the insert; one statement instead of one per vote.
            taken = {
                r[0]
                for r in tx.query(
                    f"SELECT battle_id FROM votes WHERE battle_id IN ({', '.join('?' * len(ids))})",
                    tuple(ids),
                )
            }
            returning = ""
            fresh = [v for v in chunk if v.battle_id not in taken]
        if not fresh:
            continue
        params = tuple(p for v in fresh for p in _vote_params(v))
        count = tx.execute(
            f"INSERT INTO votes ({VOTE_COLUMNS}) VALUES {', '.join([_VOTE_PARAMS] * len(fresh))} "
            "ON CONFLICT (battle_id) DO NOTHING" + returning,
            params,
        )
        if returning:
            inserted.update(r[0] for r in tx.fetchall())
        elif count != len(fresh):
            raise RuntimeError(f"expected {len(fresh)} new votes, inserted {count}")
        else:
            inserted.update(v.battle_id for v in fresh)
    return inserted


def _add_counts(tx: Tx, votes: list[Vote]) -> None:
    """Adds votes to vote_counts, in key order so concurrent writers cannot deadlock."""
    bumps: Counter[tuple[str, str, str, str]] = Counter(
        (v.category or "", v.model_a, v.model_b, v.winner) for v in votes
    )
    rows = sorted(bumps.items())
    for chunk in _chunks(rows):
        tx.execute(
            f"INSERT INTO vote_counts ({_COUNT_KEY}, n) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk))
            + f" ON CONFLICT ({_COUNT_KEY}) DO UPDATE SET n = vote_counts.n + excluded.n",
            tuple(p for key, n in chunk for p in (*key, n)),
        )


def outcome_counts(tx: Tx) -> list[tuple[str | None, str, str, str, int]]:
    """Votes per (category, model_a, model_b, winner), kept up to date by every insert."""
    rows = tx.query("SELECT category, model_a, model_b, winner, n FROM vote_counts WHERE n > 0")
    return [(c or None, a, b, w, int(n)) for c, a, b, w, n in rows]


def styled_votes(tx: Tx, limit: int) -> list[tuple[Any, ...]]:
    """The latest ``limit`` votes with style counts: (model_a, model_b, winner, 8 counts)."""
    return tx.query(
        f"SELECT model_a, model_b, winner, {STYLE_COLUMNS} FROM votes "
        "WHERE a_tokens IS NOT NULL AND b_tokens IS NOT NULL ORDER BY tstamp DESC LIMIT ?",
        (limit,),
    )


def insert_votes(tx: Tx, votes: list[Vote]) -> list[bool]:
    """Records each battle's first vote and counts it; True per vote recorded.

    A battle gets one vote, ever: a later vote for it, in this batch or any
    other, gets False (the primary key on battle_id backs this up).
    """
    first: dict[str, Vote] = {}
    for v in votes:
        first.setdefault(v.battle_id, v)
    inserted = _insert_new(tx, list(first.values()))
    if inserted:
        _add_counts(tx, [first[b] for b in inserted])
    return [v.battle_id in inserted and first[v.battle_id] is v for v in votes]


def vote_from_row(row: tuple[Any, ...]) -> Vote:
    style_a, style_b = row[10:14], row[14:18]
    return Vote(
        *row[:6],
        anony=bool(row[6]),
        language=row[7],
        category=row[8],
        tstamp=row[9],
        style_a=None if style_a[0] is None else tuple(style_a),
        style_b=None if style_b[0] is None else tuple(style_b),
    )
