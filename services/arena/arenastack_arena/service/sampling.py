"""Choosing the two models of a battle.

Every unordered pair of active models gets weight 1/sqrt(1 + its votes),
multiplied by NEW_MODEL_BOOST for each side that still has fewer than
NEW_MODEL_VOTES votes: unexplored pairs and new models fill in first, while
every pair keeps a chance. The sides are then shuffled.
"""

from __future__ import annotations

import itertools
import math
import random

NEW_MODEL_VOTES = 300
NEW_MODEL_BOOST = 3.0


def pair_weight(
    a: str, b: str, pair_votes: dict[tuple[str, str], int], model_votes: dict[str, int]
) -> float:
    key = (a, b) if a < b else (b, a)
    weight = 1.0 / math.sqrt(1.0 + pair_votes.get(key, 0))
    for m in (a, b):
        if model_votes.get(m, 0) < NEW_MODEL_VOTES:
            weight *= NEW_MODEL_BOOST
    return weight


def sample_pair(
    models: list[str],
    pair_votes: dict[tuple[str, str], int],
    model_votes: dict[str, int],
    rng: random.Random,
) -> tuple[str, str]:
    if len(models) < 2:
        raise ValueError("a battle needs at least two active models")
    pairs = list(itertools.combinations(sorted(models), 2))
    weights = [pair_weight(a, b, pair_votes, model_votes) for a, b in pairs]
    a, b = rng.choices(pairs, weights)[0]
    return (a, b) if rng.random() < 0.5 else (b, a)
