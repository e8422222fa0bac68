"""Judged battles: an LLM judge's verdicts on two answers, stored once per battleId.

They go through the same group-committing writer and the same insert-once and
counting helpers as votes: ``judged_battles`` holds the battle as posted (for
the export and the style board), ``game_counts`` its games per source,
category, pair and winner (for the boards), in the same transaction.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from arenastack_arena.service.agreement import battle_outcome, decided
from arenastack_arena.service.db import Tx
from arenastack_arena.service.sources import HUMAN
from arenastack_arena.service.store import (
    COUNT_KEY,
    ROWS_PER_STATEMENT,
    STYLE_COLUMNS,
    add_counts,
    insert_once,
)
from arenastack_arena.service.style_features import total_style

JUDGED_COLUMNS = (
    "id, evaluation, run, arena_battle_id, source, category, model_a, model_b, "
    "turns, judgments, games, consistent, outcome, tstamp, " + STYLE_COLUMNS
)
_EXPORT_COLUMNS = (
    "id, evaluation, run, arena_battle_id, source, category, model_a, model_b, "
    "turns, judgments, games, consistent, tstamp"
)
GAME_KEY = ("source", *COUNT_KEY)
GAME_VALUES = ("games", "battles")


@dataclass(frozen=True)
class JudgedBattle:
    """One judged battle as posted; the JSON texts are made before the writer gets it."""

    id: str
    evaluation: str
    run: int
    arena_battle_id: str | None
    source: str
    category: str | None
    model_a: str
    model_b: str
    turns: str
    judgments: str
    games: tuple[tuple[str, int], ...]
    consistent: bool | None
    style_a: tuple[float, ...]
    style_b: tuple[float, ...]
    tstamp: float = field(default_factory=time.time)

    @classmethod
    def create(
        cls,
        turns: list[dict[str, str]],
        judgments: list[dict[str, Any]],
        games: list[tuple[str, int]],
        **fields: Any,
    ) -> JudgedBattle:
        # Style counts and JSON are made here, on the request's side: in the writer
        # thread they would hold the GIL while votes wait for their commit.
        return cls(
            turns=json.dumps(turns, ensure_ascii=False),
            judgments=json.dumps(judgments, ensure_ascii=False),
            games=tuple(games),
            style_a=total_style([t["answerA"] for t in turns]),
            style_b=total_style([t["answerB"] for t in turns]),
            **fields,
        )

    @property
    def outcome(self) -> str | None:
        return battle_outcome([winner for winner, _ in self.games])


def _params(b: JudgedBattle) -> tuple[Any, ...]:
    games = json.dumps([{"winner": w, "weight": n} for w, n in b.games])
    consistent = None if b.consistent is None else int(b.consistent)
    return (
        b.id,
        b.evaluation,
        b.run,
        b.arena_battle_id,
        b.source,
        b.category,
        b.model_a,
        b.model_b,
        b.turns,
        b.judgments,
        games,
        consistent,
        b.outcome,
        b.tstamp,
        *b.style_a,
        *b.style_b,
    )


def _count_games(tx: Tx, battles: list[JudgedBattle]) -> None:
    bumps: defaultdict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for b in battles:
        cell = (b.source, b.category or "", b.model_a, b.model_b)
        for winner, weight in b.games:
            bumps[(*cell, winner)][0] += weight
        if b.outcome is not None:
            bumps[(*cell, b.outcome)][1] += 1
    add_counts(tx, "game_counts", GAME_KEY, {k: (g, n) for k, (g, n) in bumps.items()}, GAME_VALUES)


def insert_judged(tx: Tx, battles: list[JudgedBattle]) -> list[bool]:
    """Bulk handler: stores each battleId once and counts its games; True per battle stored."""
    return insert_once(
        tx, "judged_battles", JUDGED_COLUMNS, battles, lambda b: b.id, _params, _count_games
    )


# --- reads for the boards --------------------------------------------------------
def game_counts(tx: Tx) -> list[tuple[str, str | None, str, str, str, int, int]]:
    """(source, category, model_a, model_b, winner, weighted games, battles) rows."""
    rows = tx.query(
        f"SELECT source, {', '.join(COUNT_KEY)}, games, battles FROM game_counts "
        "WHERE games > 0 OR battles > 0"
    )
    return [(s, c or None, a, b, w, int(g), int(n)) for s, c, a, b, w, g, n in rows]


def judge_sources(tx: Tx) -> list[str]:
    rows = tx.query("SELECT DISTINCT source FROM game_counts WHERE battles > 0")
    return sorted(r[0] for r in rows)


def styled_games(
    tx: Tx, source: str | None, limit: int
) -> tuple[list[tuple[Any, ...]], Counter[str]]:
    """The latest ``limit`` decided battles of a judge (any judge if None) as style rows.

    Rows are (model_a, model_b, winner, 8 style counts), one per game repeated by its
    weight, as Arena-Hard's style control counts a strong win; the Counter holds battles
    per model, for the preliminary threshold.
    """
    where = "source = ? AND " if source else ""
    rows = tx.query(
        f"SELECT model_a, model_b, games, {STYLE_COLUMNS} FROM judged_battles "
        f"WHERE {where}outcome IS NOT NULL ORDER BY tstamp DESC LIMIT ?",
        ((source,) if source else ()) + (limit,),
    )
    out: list[tuple[Any, ...]] = []
    battles: Counter[str] = Counter()
    for a, b, games, *style in rows:
        for game in json.loads(games):
            out.extend([(a, b, game["winner"], *style)] * int(game["weight"]))
        battles.update((a, b))
    return out, battles


# --- reads for the runner ------------------------------------------------------------
def battle_ids(tx: Tx, evaluation: str) -> list[str]:
    rows = tx.query(
        "SELECT id FROM judged_battles WHERE evaluation = ? ORDER BY tstamp, id", (evaluation,)
    )
    return [r[0] for r in rows]


def export_page(
    tx: Tx, evaluation: str, after: tuple[float, str] | None, limit: int
) -> list[tuple[Any, ...]]:
    """The evaluation's battles after ``after`` (tstamp, id), in that order."""
    if after is None:
        where, params = "", ()
    else:
        where, params = " AND (tstamp > ? OR (tstamp = ? AND id > ?))", (after[0], *after)
    return tx.query(
        f"SELECT {_EXPORT_COLUMNS} FROM judged_battles WHERE evaluation = ?{where} "
        "ORDER BY tstamp, id LIMIT ?",
        (evaluation, *params, limit),
    )


def export_line(row: tuple[Any, ...]) -> str:
    """A stored battle as the body it was posted with, plus its tstamp."""
    (bid, evaluation, run, arena_id, source, category, a, b, turns, judgments, games) = row[:11]
    consistent, tstamp = row[11:]
    return json.dumps(
        {
            "evaluation": evaluation,
            "run": run,
            "battleId": bid,
            "arenaBattleId": arena_id,
            "source": source,
            "category": category,
            "modelA": a,
            "modelB": b,
            "turns": json.loads(turns),
            "judgments": json.loads(judgments),
            "games": json.loads(games),
            "consistent": None if consistent is None else bool(consistent),
            "tstamp": tstamp,
        },
        ensure_ascii=False,
    )


def voted_pair(tx: Tx, arena_battle_id: str) -> tuple[str, str] | None:
    """The two models of a human-voted arena battle, or None if it has no vote."""
    rows = tx.query("SELECT model_a, model_b FROM votes WHERE battle_id = ?", (arena_battle_id,))
    return (rows[0][0], rows[0][1]) if rows else None


# Any turn of the battle without both answers (cut off, failed) makes it unfit to re-judge.
_INCOMPLETE = (
    "SELECT 1 FROM turns t WHERE t.battle_id = v.battle_id AND (t.answer_a IS NULL OR "
    "t.answer_b IS NULL OR t.error_a IS NOT NULL OR t.error_b IS NOT NULL)"
)


def arena_battles(tx: Tx, category: str | None, limit: int) -> list[dict[str, Any]]:
    """Human-voted battles with complete answers, newest vote first (``fromArena``)."""
    where = "b.category = ? AND " if category else ""
    heads = tx.query(
        "SELECT v.battle_id, b.category, v.model_a, v.model_b, v.winner FROM votes v "
        f"JOIN battles b ON b.id = v.battle_id WHERE {where}NOT EXISTS ({_INCOMPLETE}) "
        "ORDER BY v.tstamp DESC, v.battle_id LIMIT ?",
        ((category,) if category else ()) + (limit,),
    )
    turns: dict[str, list[dict[str, str]]] = {h[0]: [] for h in heads}
    ids = list(turns)
    for k in range(0, len(ids), ROWS_PER_STATEMENT):
        chunk = tuple(ids[k : k + ROWS_PER_STATEMENT])
        for battle_id, prompt, answer_a, answer_b in tx.query(
            "SELECT battle_id, prompt, answer_a, answer_b FROM turns "
            f"WHERE battle_id IN ({', '.join('?' * len(chunk))}) ORDER BY battle_id, turn",
            chunk,
        ):
            turns[battle_id].append({"prompt": prompt, "answerA": answer_a, "answerB": answer_b})
    return [
        {"id": bid, "category": c, "modelA": a, "modelB": b, "turns": turns[bid], "winner": w}
        for bid, c, a, b, w in heads
    ]


def agreement_outcomes(tx: Tx, a: str, b: str, category: str | None) -> Iterable[tuple[str, str]]:
    """Pairs of decided outcomes (see agreement.decided) of sources a and b on the same battles.

    A judged battle is matched with the human vote on its arenaBattleId, and two
    judges' battles only through the same arenaBattleId.
    """
    if HUMAN in (a, b):
        judge = b if a == HUMAN else a
        cat = " AND j.category = ?" if category else ""
        rows = tx.query(
            "SELECT v.model_a, v.model_b, v.winner, j.model_a, j.model_b, j.outcome "
            "FROM judged_battles j JOIN votes v ON v.battle_id = j.arena_battle_id "
            f"WHERE j.source = ? AND j.outcome IS NOT NULL{cat}",
            (judge, *((category,) if category else ())),
        )
        if a != HUMAN:
            rows = [r[3:] + r[:3] for r in rows]
    else:
        cat = " AND j1.category = ? AND j2.category = ?" if category else ""
        rows = tx.query(
            "SELECT j1.model_a, j1.model_b, j1.outcome, j2.model_a, j2.model_b, j2.outcome "
            "FROM judged_battles j1 JOIN judged_battles j2 "
            "ON j2.arena_battle_id = j1.arena_battle_id "
            "WHERE j1.source = ? AND j2.source = ? AND j1.outcome IS NOT NULL "
            f"AND j2.outcome IS NOT NULL{cat}",
            (a, b, *((category, category) if category else ())),
        )
    return [(decided(*r[:3]), decided(*r[3:])) for r in rows]
