"""Online Elo: the order-dependent view (each battle updates both ratings)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from arenastack_arena.ratings.counts import WIN_A, WIN_B
from arenastack_arena.ratings.scale import DEFAULT_BASE, DEFAULT_INIT, DEFAULT_SCALE

DEFAULT_K = 4.0
# Score of side A; both kinds of tie score one half.
_SCORE = {WIN_A: 1.0, WIN_B: 0.0}
TIE_SCORE = 0.5


def online_elo(
    a: Sequence[int] | np.ndarray,
    b: Sequence[int] | np.ndarray,
    outcome: Sequence[int] | np.ndarray,
    n_models: int,
    k: float = DEFAULT_K,
    scale: float = DEFAULT_SCALE,
    base: float = DEFAULT_BASE,
    init: float = DEFAULT_INIT,
) -> np.ndarray:
    """Ratings after replaying battles in order; ties (either kind) score one half."""
    rating = [init] * n_models
    for ia, ib, out in zip(
        np.asarray(a).tolist(), np.asarray(b).tolist(), np.asarray(outcome).tolist(), strict=True
    ):
        ra, rb = rating[ia], rating[ib]
        expect_a = 1.0 / (1.0 + base ** ((rb - ra) / scale))
        delta = k * (_SCORE.get(out, TIE_SCORE) - expect_a)
        rating[ia] = ra + delta
        rating[ib] = rb - delta
    return np.array(rating)
