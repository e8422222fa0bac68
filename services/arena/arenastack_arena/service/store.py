"""The service's queries: registry, battles, turns, votes, aggregated counts."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
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
        out = asdict(self)
        del out["endpoint"], out["upstream_model"]
        return out


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

        return await self.db.read(op)

    # votes -------------------------------------------------------------------
    async def record_vote(self, vote: Vote) -> bool:
        """True if recorded, False if this battle already has a vote (exactly once)."""
        return await self.db.write(lambda tx: insert_vote(tx, vote)) > 0

    async def vote_count(self) -> int:
        return (await self.db.read(lambda tx: tx.query("SELECT COUNT(*) FROM votes")))[0][0]

    def outcome_counts(self, tx: Tx) -> list[tuple[str | None, str, str, str, int]]:
        return tx.query(
            "SELECT category, model_a, model_b, winner, COUNT(*) FROM votes "
            "GROUP BY category, model_a, model_b, winner"
        )

    def styled_votes(self, tx: Tx, limit: int) -> list[tuple[Any, ...]]:
        return tx.query(
            f"SELECT model_a, model_b, winner, {STYLE_COLUMNS} FROM votes "
            "WHERE a_tokens IS NOT NULL AND b_tokens IS NOT NULL ORDER BY tstamp DESC LIMIT ?",
            (limit,),
        )

    def export_rows(self, tx: Tx) -> list[tuple[Any, ...]]:
        return tx.query(f"SELECT {VOTE_COLUMNS} FROM votes ORDER BY tstamp, battle_id")

    async def import_votes(self, votes: list[Vote]) -> int:
        def op(tx: Tx) -> int:
            return sum(insert_vote(tx, v) for v in votes)

        return await self.db.write(op)


STYLE_COLUMNS = "a_tokens, a_headers, a_lists, a_bold, b_tokens, b_headers, b_lists, b_bold"
VOTE_COLUMNS = (
    "battle_id, model_a, model_b, winner, judge, turn, anony, language, category, tstamp, "
    + STYLE_COLUMNS
)
_NO_STYLE = (None,) * (len(STYLE_COLUMNS.split(",")) // 2)
_INSERT_VOTE = (
    f"INSERT INTO votes ({VOTE_COLUMNS}) VALUES ({', '.join('?' * len(VOTE_COLUMNS.split(',')))}) "
    "ON CONFLICT (battle_id) DO NOTHING"
)


def insert_vote(tx: Tx, v: Vote) -> int:
    styles = (*(v.style_a or _NO_STYLE), *(v.style_b or _NO_STYLE))
    return tx.execute(
        _INSERT_VOTE,
        (
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
        ),
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
