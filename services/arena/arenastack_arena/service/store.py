"""The service's queries: registry, battles, turns, votes, aggregated counts."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from arenastack_arena.service.db import Database, Tx

T = TypeVar("T")


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
NO_STYLE = (None,) * (len(STYLE_COLUMNS.split(",")) // 2)
COUNT_KEY = ("category", "model_a", "model_b", "winner")
# Rows per multi-row statement: 500 rows of up to 24 columns stay under SQLite's
# 32,766 parameters (since 3.32) and PostgreSQL's 65,535.
ROWS_PER_STATEMENT = 500


def _vote_params(v: Vote) -> tuple[Any, ...]:
    styles = (*(v.style_a or NO_STYLE), *(v.style_b or NO_STYLE))
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


def _placeholders(width: int) -> str:
    return "(" + ", ".join("?" * width) + ")"


def insert_new(tx: Tx, table: str, columns: str, rows: list[tuple[Any, ...]]) -> set[str]:
    """Inserts the rows whose key is not in ``table`` yet; returns the keys inserted.

    The key is the first of ``columns``, the table's primary key, and each row's first value.
    """
    key = columns.split(",", 1)[0].strip()
    one = _placeholders(len(columns.split(",")))
    inserted: set[str] = set()
    for chunk in _chunks(rows):
        if tx.dialect.name == "postgresql":
            # Another replica may insert concurrently: RETURNING says what we won.
            returning = f" RETURNING {key}"
            fresh = chunk
        else:
            # BEGIN IMMEDIATE holds SQLite's write lock, so nothing can change between
            # this check and the insert; one statement instead of one per row.
            ids = tuple(row[0] for row in chunk)
            taken = {
                r[0]
                for r in tx.query(
                    f"SELECT {key} FROM {table} WHERE {key} IN ({', '.join('?' * len(ids))})",
                    ids,
                )
            }
            returning = ""
            fresh = [row for row in chunk if row[0] not in taken]
        if not fresh:
            continue
        count = tx.execute(
            f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(fresh))} "
            f"ON CONFLICT ({key}) DO NOTHING" + returning,
            tuple(p for row in fresh for p in row),
        )
        if returning:
            inserted.update(r[0] for r in tx.fetchall())
        elif count != len(fresh):
            raise RuntimeError(f"expected {len(fresh)} new rows in {table}, inserted {count}")
        else:
            inserted.update(row[0] for row in fresh)
    return inserted


def add_counts(
    tx: Tx,
    table: str,
    keys: tuple[str, ...],
    bumps: dict[tuple[str, ...], tuple[int, ...]],
    values: tuple[str, ...] = ("n",),
) -> None:
    """Adds each key's amounts to the ``values`` columns of a counts table.

    In key order, so that concurrent writers cannot deadlock.
    """
    key_list, value_list = ", ".join(keys), ", ".join(values)
    one = _placeholders(len(keys) + len(values))
    update = ", ".join(f"{v} = {table}.{v} + excluded.{v}" for v in values)
    for chunk in _chunks(sorted(bumps.items())):
        tx.execute(
            f"INSERT INTO {table} ({key_list}, {value_list}) VALUES "
            + ", ".join([one] * len(chunk))
            + f" ON CONFLICT ({key_list}) DO UPDATE SET {update}",
            tuple(p for key, amounts in chunk for p in (*key, *amounts)),
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


def insert_once(
    tx: Tx,
    table: str,
    columns: str,
    items: list[T],
    key: Callable[[T], str],
    params: Callable[[T], tuple[Any, ...]],
    count: Callable[[Tx, list[T]], None],
) -> list[bool]:
    """Stores each key's first item and counts it; True per item stored.

    A key is stored once, ever: a later item with it, in this batch or any
    other, gets False (the table's primary key backs this up).
    """
    keys = [key(item) for item in items]
    first: dict[str, int] = {}
    for n, k in enumerate(keys):
        first.setdefault(k, n)
    inserted = insert_new(tx, table, columns, [params(items[n]) for n in first.values()])
    if inserted:
        count(tx, [items[n] for k, n in first.items() if k in inserted])
    return [k in inserted and first[k] == n for n, k in enumerate(keys)]


def _count_votes(tx: Tx, votes: list[Vote]) -> None:
    tally = Counter((v.category or "", v.model_a, v.model_b, v.winner) for v in votes)
    add_counts(tx, "vote_counts", COUNT_KEY, {key: (n,) for key, n in tally.items()})


def insert_votes(tx: Tx, votes: list[Vote]) -> list[bool]:
    """Records each battle's first vote and counts it in vote_counts; True per vote recorded."""
    return insert_once(
        tx, "votes", VOTE_COLUMNS, votes, lambda v: v.battle_id, _vote_params, _count_votes
    )


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
