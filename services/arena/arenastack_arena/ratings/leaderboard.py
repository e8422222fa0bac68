"""Leaderboards: point ratings, intervals, ranks, categories, win-rate matrices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy.special import expit
from scipy.stats import norm

from arenastack_arena.ratings.bt import BTFit, fit_bt
from arenastack_arena.ratings.counts import PairCounts, aggregate
from arenastack_arena.ratings.intervals import bootstrap_ratings, public_ranks, sandwich_covariance
from arenastack_arena.ratings.scale import EloScale

IntervalMethod = Literal["bootstrap", "sandwich"]
DEFAULT_ROUNDS = 100
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class LeaderboardRow:
    model: str
    rating: float
    lower: float
    upper: float
    rank: int
    votes: int
    flagged: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Leaderboard:
    rows: list[LeaderboardRow]
    method: str
    confidence: float
    fit: BTFit

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "confidence": self.confidence,
            "regularized": self.fit.regularized,
            "rows": [r.as_dict() for r in self.rows],
        }


def build_leaderboard(
    counts: PairCounts,
    scale: EloScale | None = None,
    method: IntervalMethod = "bootstrap",
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Leaderboard:
    """Ratings with intervals and public ranks, best first.

    Intervals are computed on the mean-zero scale and shifted with the point
    estimate, so an anchor model keeps a real interval instead of a
    zero-width one.
    """
    scale = scale or EloScale()
    fit = fit_bt(counts, scale)
    shift = fit.ratings - scale.factor * fit.theta
    if method == "bootstrap":
        samples = bootstrap_ratings(counts, rounds, seed, fit.theta) * scale.factor + shift
        alpha = (1.0 - confidence) / 2.0
        lower, upper = np.quantile(samples, [alpha, 1.0 - alpha], axis=0)
    elif method == "sandwich":
        se = np.sqrt(np.clip(np.diag(sandwich_covariance(counts, fit.theta)), 0.0, None))
        half = norm.ppf(0.5 + confidence / 2.0) * se * scale.factor
        lower, upper = fit.ratings - half, fit.ratings + half
    else:
        raise ValueError(f"unknown interval method {method!r}; use bootstrap or sandwich")
    ranks = public_ranks(lower, upper)
    votes = counts.votes_per_model()
    flagged = set(fit.flagged)
    order = np.argsort(-fit.ratings, kind="stable")
    rows = [
        LeaderboardRow(
            model=counts.models[k],
            rating=float(fit.ratings[k]),
            lower=float(lower[k]),
            upper=float(upper[k]),
            rank=int(ranks[k]),
            votes=int(votes[k]),
            flagged=counts.models[k] in flagged,
        )
        for k in order
        if votes[k] > 0
    ]
    return Leaderboard(rows, method, confidence, fit)


def category_leaderboards(
    model_a: Sequence[str],
    model_b: Sequence[str],
    winner: Sequence[str],
    category: Sequence[str],
    scale: EloScale | None = None,
    **options: object,
) -> dict[str, Leaderboard]:
    """One board per category value plus "overall"; anchors absent from a category are dropped."""
    model_a, model_b = np.asarray(model_a, dtype=object), np.asarray(model_b, dtype=object)
    winner, category = np.asarray(winner, dtype=object), np.asarray(category, dtype=object)
    boards = {"overall": build_leaderboard(aggregate(model_a, model_b, winner), scale, **options)}
    for value in sorted(set(category.tolist()) - {None, ""}):
        mask = category == value
        counts = aggregate(model_a[mask], model_b[mask], winner[mask])
        cat_scale = scale
        if scale is not None and scale.anchor not in counts.models:
            cat_scale = EloScale(scale.scale, scale.base, scale.init)
        boards[str(value)] = build_leaderboard(counts, cat_scale, **options)
    return boards


def observed_win_rates(counts: PairCounts) -> np.ndarray:
    """Row model's share of points against the column model (ties half); NaN if never met."""
    p = counts.n_models
    rates = np.full((p, p), np.nan)
    n = counts.wins_i + counts.wins_j + counts.ties
    ok = n > 0
    i, j = counts.i[ok], counts.j[ok]
    share = (counts.wins_i[ok] + 0.5 * counts.ties[ok]) / n[ok]
    rates[i, j], rates[j, i] = share, 1.0 - share
    return rates


def predicted_win_rates(theta: np.ndarray) -> np.ndarray:
    """P(row beats column) under the fitted model (ties half), diagonal 0.5."""
    return expit(theta[:, None] - theta[None, :])
