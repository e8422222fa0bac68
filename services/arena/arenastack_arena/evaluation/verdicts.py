"""Judge replies -> verdicts -> games for the ratings.

The judge's own verdict is the last ``[[label]]`` in its reply outside any
region it quoted from the fenced prompt texts (an answer may contain
``[[B]]`` or a whole fake verdict line, and a judge may quote it back). A
JSON reply ``{"verdict": ..., "reason": ...}`` (structured output) is read
too. A reply without a clear verdict is an error, never a silent tie: a tie
is data, and a parsing failure must not become data.

Each battle is judged twice, the second time with the answers swapped;
``combine`` mirrors the second verdict back and turns the pair into games.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import NamedTuple

from arenastack_arena.evaluation.fences import strip_fenced
from arenastack_arena.evaluation.scales import (
    ALL_SPELLINGS,
    MODEL_A,
    THREE,
    TIE,
    get_scale,
    spelling_key,
)

# Arena-Hard counts a strong win (A>>B) as this many wins.
STRONG_WEIGHT = 3.0
RULE_TIE = "tie"  # FastChat: orders that disagree make one tie; agreeing orders count once
RULE_BOTH = "both"  # Arena-Hard: each order is a game of its own
RULES = (RULE_TIE, RULE_BOTH)

_TOKEN = re.compile(r"\[\[([^\[\]\n]{1,16})\]\]")
_CODE_BLOCK = re.compile(r"\A```[a-zA-Z]*\s*(.*?)\s*```\Z", re.S)


class VerdictParseError(ValueError):
    """A judge reply without one clear verdict on the scale."""


@dataclass(frozen=True)
class Verdict:
    label: str
    scale: str = THREE
    reason: str | None = None

    def __post_init__(self) -> None:
        get_scale(self.scale).label(self.label)

    @property
    def winner(self) -> str:
        return get_scale(self.scale).label(self.label).winner

    @property
    def strong(self) -> bool:
        return get_scale(self.scale).label(self.label).strong


def parse_verdict(reply: str, scale: str = THREE, nonce: str | None = None) -> Verdict:
    """The judge's verdict; ``nonce`` is the battle's, to drop what the judge quoted."""
    structured = _json_object(reply)
    if structured is not None:
        return _from_json(structured, scale)
    return _from_text(strip_fenced(reply, nonce), scale)


def _json_object(reply: str) -> dict | None:
    text = reply.strip()
    block = _CODE_BLOCK.match(text)
    if block:
        text = block.group(1)
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        # Prose that merely starts with a brace: the free-text rules apply.
        return None
    return value if isinstance(value, dict) else None


def _from_json(obj: dict, scale: str) -> Verdict:
    raw = obj.get("verdict")
    if not isinstance(raw, str):
        raise VerdictParseError("JSON reply without a string verdict")
    label = get_scale(scale).normalise(raw)
    if label is None:
        raise VerdictParseError(f"JSON verdict {raw!r} is not on the {scale} scale")
    reason = obj.get("reason")
    return Verdict(label, scale, reason if isinstance(reason, str) else None)


def _from_text(text: str, scale: str) -> Verdict:
    tokens = [m for m in _TOKEN.finditer(text) if spelling_key(m.group(1)) in ALL_SPELLINGS]
    if not tokens:
        raise VerdictParseError("no [[label]] verdict outside the quoted texts")
    last = tokens[-1]
    line_start = text.rfind("\n", 0, last.start()) + 1
    on_line = [m.group(1) for m in tokens if m.start() >= line_start]
    on_scale = get_scale(scale)
    labels = {on_scale.normalise(raw) for raw in on_line}
    if None in labels:
        off = next(raw for raw in on_line if on_scale.normalise(raw) is None)
        raise VerdictParseError(f"verdict [[{off.strip()}]] is not on the {scale} scale")
    if len(labels) > 1:
        raise VerdictParseError(
            "several different verdicts on the final verdict line: " + ", ".join(sorted(labels))
        )
    reason = text[:line_start].strip() or None
    return Verdict(labels.pop(), scale, reason)


def mirror(verdict: Verdict) -> Verdict:
    """The same judgment with the sides renamed (for a verdict given in swapped order)."""
    label = get_scale(verdict.scale).label(verdict.label)
    return Verdict(label.mirror, verdict.scale, verdict.reason)


def score_a(verdict: Verdict) -> float:
    """Model A's score: 1 for any win of A, 1/2 for a tie, 0 for any win of B."""
    if verdict.winner == TIE:
        return 0.5
    return 1.0 if verdict.winner == MODEL_A else 0.0


def weight(verdict: Verdict, strong_weight: float = STRONG_WEIGHT) -> float:
    """How many games the verdict counts as."""
    return strong_weight if verdict.strong else 1.0


class Game(NamedTuple):
    """One game for the ratings: a plain (winner, weight) pair."""

    winner: str  # model_a, model_b or tie, with model_a the battle's A side
    weight: float


@dataclass(frozen=True)
class Combined:
    games: tuple[Game, ...]
    # The two orders named the same winner (direction only, on either scale).
    consistent: bool
    # The two orders gave the same label (differs from `consistent` on five-scale only).
    exact: bool


def combine(
    first: Verdict,
    second_swapped: Verdict,
    rule: str,
    strong_weight: float = STRONG_WEIGHT,
) -> Combined:
    """Games of one battle from its two orders; ``second_swapped`` saw B's answer first."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; expected one of {', '.join(RULES)}")
    if first.scale != second_swapped.scale:
        raise ValueError("the two orders were judged on different scales")
    second = mirror(second_swapped)
    consistent = first.winner == second.winner
    exact = first.label == second.label
    if rule == RULE_BOTH:
        games = tuple(Game(v.winner, weight(v, strong_weight)) for v in (first, second))
    elif consistent:
        # A strong win counts as strong only when both orders call it strong.
        games = (Game(first.winner, min(weight(v, strong_weight) for v in (first, second))),)
    else:
        games = (Game(TIE, 1.0),)
    return Combined(games, consistent, exact)
