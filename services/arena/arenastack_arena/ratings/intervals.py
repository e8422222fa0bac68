"""Confidence intervals (bootstrap and sandwich) and the public rank rule."""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.special import expit

from arenastack_arena.ratings.bt import (
    BOOTSTRAP_TOLERANCE,
    PairData,
    edge_pattern,
    fit_pairs,
    information,
    laplacian,
    mle_exists,
    score,
    single_threaded_blas,
)
from arenastack_arena.ratings.counts import PairCounts

# Chord steps contract by the resample-to-full Hessian mismatch (measured:
# 6 steps on the real data, 11 at 500 models); past this, Newton takes over.
CHORD_MAX_ITER = 40


def bootstrap_ratings(
    counts: PairCounts,
    rounds: int,
    seed: int,
    theta_hat: np.ndarray | None = None,
) -> np.ndarray:
    """Strengths (natural-log, mean zero) for ``rounds`` bootstrap samples.

    Resampling battles with replacement is the same as drawing the unique
    (pair, outcome) cells from a multinomial with the observed proportions, so
    each round is one multinomial draw over a few thousand cells and a fit
    warm-started from the full-data estimate. The fit is a chord iteration: the
    full data's Hessian, factored once, stands in for each resample's (they
    differ only by sampling noise), so a step is a gradient and two triangular
    solves instead of a new factorisation; about twice as fast per round. A
    round whose win graph changed, or that does not converge, gets full Newton.
    """
    if rounds < 1:
        raise ValueError("bootstrap needs at least one round")
    base = PairData.from_counts(counts)
    if theta_hat is None:
        theta_hat, _, _ = fit_pairs(base)
    full_edges = edge_pattern(base)
    full_connected = mle_exists(base, np.ones(base.n_models, bool))[0]
    keep = (counts.wins_i + counts.wins_j + counts.ties) > 0
    cells = np.stack([counts.wins_i[keep], counts.wins_j[keep], counts.ties[keep]], axis=1)
    total = int(cells.sum())
    probs = (cells / total).ravel()
    rng = np.random.default_rng(seed)
    out = np.empty((rounds, counts.n_models))
    with single_threaded_blas():
        # Only a strongly connected win graph has a positive definite (centred) information
        # matrix to factor; otherwise no round takes the chord path and Newton fits each.
        factor = (
            cho_factor(information(base, theta_hat) + 1.0 / base.n_models, check_finite=False)
            if full_connected
            else None
        )
        for r in range(rounds):
            draw = rng.multinomial(total, probs).reshape(cells.shape).astype(np.float64)
            data = PairData.from_cells(base, draw[:, 0], draw[:, 1], draw[:, 2])
            same_graph = full_connected and np.array_equal(edge_pattern(data), full_edges)
            chord = same_graph or (full_connected and _all_present(data))
            theta = _chord(data, theta_hat, factor) if chord else None
            if theta is None:
                theta, _, _ = fit_pairs(data, theta_hat, BOOTSTRAP_TOLERANCE, same_graph)
            out[r] = theta
    return out


def _all_present(data: PairData) -> bool:
    """Every model has battles in this draw.

    With many models and sparse pairs nearly every draw empties some cell, so
    its edge pattern differs from the full data's; the chord still finds such
    a draw's MLE when there is one. Converging means the score vanished, which
    only happens at a finite maximum, so a draw without one (a model that
    never lost in it) fails to converge and gets Newton with the full checks.
    """
    present = (
        np.bincount(data.i, data.n, data.n_models) + np.bincount(data.j, data.n, data.n_models)
    ) > 0
    return bool(present.all())


def _chord(data: PairData, theta0: np.ndarray, factor: tuple | None) -> np.ndarray | None:
    if factor is None:
        return None
    theta = theta0.copy()
    for _ in range(CHORD_MAX_ITER):
        step = cho_solve(factor, score(data, theta), check_finite=False)
        theta += step
        if np.abs(step).max() < BOOTSTRAP_TOLERANCE:
            return theta
    return None


def sandwich_covariance(counts: PairCounts, theta: np.ndarray) -> np.ndarray:
    """Robust (Huber-White) covariance of the mean-zero strengths.

    H^+ V H^+ with H the Fisher information and V the sum of squared per-battle
    scores; battles in one cell share a score, so V is a weighted Laplacian.
    (H + 11^T/p)^-1 equals H^+ plus a term V annihilates, so no pseudo-inverse.
    """
    data = PairData.from_counts(counts)
    p = data.n_models
    prob = expit(theta[data.i] - theta[data.j])
    keep = (counts.wins_i + counts.wins_j + counts.ties) > 0
    wi, wj, ties = counts.wins_i[keep], counts.wins_j[keep], counts.ties[keep]
    squared_scores = wi * (1 - prob) ** 2 + wj * prob**2 + ties * (0.5 - prob) ** 2
    meat = laplacian(p, data.i, data.j, squared_scores)
    bread = information(data, theta) + 1.0 / p
    with single_threaded_blas():
        factor = cho_factor(bread, check_finite=False)
        half = cho_solve(factor, meat, check_finite=False)
        return cho_solve(factor, half.T, check_finite=False)


def public_ranks(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """1 + the number of models whose lower bound is above this model's upper bound."""
    sorted_lower = np.sort(lower)
    above = len(lower) - np.searchsorted(sorted_lower, upper, side="right")
    return 1 + above
