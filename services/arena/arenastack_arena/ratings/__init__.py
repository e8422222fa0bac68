"""Ratings engine: pairwise battles -> Bradley-Terry / Elo leaderboards.

Pure numpy/scipy; no web dependencies, so the vote service, the evaluation
runner and offline scripts share one implementation.
"""

from arenastack_arena.ratings.bt import BTFit, fit_bt
from arenastack_arena.ratings.counts import (
    OUTCOMES,
    PairCounts,
    aggregate,
    load_leaderbot_json,
)
from arenastack_arena.ratings.elo import online_elo
from arenastack_arena.ratings.intervals import (
    bootstrap_ratings,
    public_ranks,
    sandwich_covariance,
)
from arenastack_arena.ratings.leaderboard import (
    Leaderboard,
    LeaderboardRow,
    build_leaderboard,
    category_leaderboards,
    observed_win_rates,
    predicted_win_rates,
)
from arenastack_arena.ratings.scale import EloScale
from arenastack_arena.ratings.style import STYLE_FEATURES, StyleFit, fit_style_controlled

__all__ = [
    "OUTCOMES",
    "STYLE_FEATURES",
    "BTFit",
    "EloScale",
    "Leaderboard",
    "LeaderboardRow",
    "PairCounts",
    "StyleFit",
    "aggregate",
    "bootstrap_ratings",
    "build_leaderboard",
    "category_leaderboards",
    "fit_bt",
    "fit_style_controlled",
    "load_leaderbot_json",
    "observed_win_rates",
    "online_elo",
    "predicted_win_rates",
    "public_ranks",
    "sandwich_covariance",
]
