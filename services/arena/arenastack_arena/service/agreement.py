"""Agreement of two verdict sources on the same battles (judge vs people, MT-Bench style).

A battle's outcome is compared by *which model* won, not by side: a runner
may show a re-judged arena battle with the models the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from arenastack_arena.ratings.counts import OUTCOMES

MODEL_A, MODEL_B, TIE, TIE_BOTHBAD = OUTCOMES
# What a decided outcome is when nobody won: both kinds of tie are one outcome here.
DRAW = ""


def battle_outcome(winners: Sequence[str]) -> str | None:
    """The outcome of a judged battle from its games' winners (FastChat's rule).

    One game: its winner; two that agree: that winner; two that disagree: a
    tie. None when the battle has no game (every judgment failed).
    """
    if not winners:
        return None
    first = winners[0]
    return first if all(w == first for w in winners[1:]) else TIE


def decided(model_a: str, model_b: str, winner: str) -> str:
    """The winning model's name, or DRAW for either kind of tie."""
    if winner == MODEL_A:
        return model_a
    if winner == MODEL_B:
        return model_b
    return DRAW


def agreement(outcomes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Shares of identical outcomes over pairs of decided outcomes (see `decided`).

    With ties: over every pair. Without ties: over the pairs where both
    sources picked a winner. A share is None when it has no battles.
    """
    battles = same = decisive = decisive_same = 0
    for x, y in outcomes:
        battles += 1
        same += x == y
        if x != DRAW and y != DRAW:
            decisive += 1
            decisive_same += x == y
    return {
        "battles": battles,
        "withTies": same / battles if battles else None,
        "withoutTies": {
            "battles": decisive,
            "agreement": decisive_same / decisive if decisive else None,
        },
    }
