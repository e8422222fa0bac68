"""Votes as JSON lines in the public Chatbot Arena battle format.

Exported fields: question_id, model_a, model_b, winner, judge, turn, anony,
language, tstamp, category and conv_metadata with the style counts
(sum_assistant_{a,b}_tokens, header_count_{a,b}, list_count_{a,b},
bold_count_{a,b}). Import accepts the same lines, and the public dump's
nested count objects (summed), and is idempotent on question_id.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from arenastack_arena.ratings import OUTCOMES
from arenastack_arena.service.sources import MAX_NAME
from arenastack_arena.service.store import Vote

_STYLE_KEYS = ("sum_assistant_{}_tokens", "header_count_{}", "list_count_{}", "bold_count_{}")


def vote_to_line(v: Vote) -> str:
    meta: dict[str, Any] = {"turns": v.turn}
    for side, style in (("a", v.style_a), ("b", v.style_b)):
        if style is not None:
            for key, value in zip(_STYLE_KEYS, style, strict=True):
                meta[key.format(side)] = value
    return json.dumps(
        {
            "question_id": v.battle_id,
            "model_a": v.model_a,
            "model_b": v.model_b,
            "winner": v.winner,
            "judge": v.judge,
            "turn": v.turn,
            "anony": v.anony,
            "language": v.language,
            "tstamp": v.tstamp,
            "category": v.category,
            "conv_metadata": meta,
        },
        ensure_ascii=False,
    )


class VoteImportError(ValueError):
    """A line of an import cannot be read; the message names the line and the field."""


def _count(value: Any) -> float:
    if isinstance(value, dict):
        return float(sum(_count(v) for v in value.values()))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    return float(value)


def _style(meta: dict[str, Any], side: str) -> tuple[float, ...] | None:
    keys = [k.format(side) for k in _STYLE_KEYS]
    if not all(k in meta for k in keys):
        return None
    return tuple(_count(meta[k]) for k in keys)


def line_to_vote(line: str, number: int) -> Vote:
    try:
        row = json.loads(line)
    except ValueError:
        raise VoteImportError(f"line {number}: not valid JSON") from None
    if not isinstance(row, dict):
        raise VoteImportError(f"line {number}: expected a JSON object")
    for key in ("model_a", "model_b"):
        if not isinstance(row.get(key), str) or not 0 < len(row[key]) <= MAX_NAME:
            raise VoteImportError(f"line {number}: {key} must be a non-empty string")
    if row["model_a"] == row["model_b"]:
        raise VoteImportError(f"line {number}: model_a and model_b must differ")
    if row.get("winner") not in OUTCOMES:
        raise VoteImportError(f"line {number}: winner must be one of {', '.join(OUTCOMES)}")
    qid = row.get("question_id") or hashlib.sha256(line.encode()).hexdigest()[:32]
    meta = row.get("conv_metadata") or {}
    try:
        turn = int(row.get("turn", 1))
        tstamp = float(row.get("tstamp") or time.time())
        styles = (_style(meta, "a"), _style(meta, "b")) if isinstance(meta, dict) else (None, None)
    except (TypeError, ValueError):
        raise VoteImportError(
            f"line {number}: turn, tstamp and conv_metadata counts must be numbers"
        ) from None
    optional = {k: row.get(k) for k in ("language", "category", "judge")}
    for key, value in optional.items():
        if value is not None and not isinstance(value, str):
            raise VoteImportError(f"line {number}: {key} must be a string")
    return Vote(
        battle_id=str(qid)[:MAX_NAME],
        model_a=row["model_a"],
        model_b=row["model_b"],
        winner=row["winner"],
        judge=optional["judge"] or "import",
        turn=turn,
        anony=bool(row.get("anony", True)),
        language=optional["language"],
        category=optional["category"],
        tstamp=tstamp,
        style_a=styles[0],
        style_b=styles[1],
    )


def parse_lines(body: str) -> list[Vote]:
    return [line_to_vote(line, n) for n, line in enumerate(body.splitlines(), 1) if line.strip()]
