"""Style control: Bradley-Terry with answer-style covariates.

Each battle carries per-answer style counts; the covariate is the normalised
difference (a - b) / (a + b + 1), standardised over the battles, and
logit P(A wins) = t_a - t_b + beta . z. The model strengths then rank
models with the effect of length and markdown taken out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve
from scipy.special import expit

from arenastack_arena.ratings.bt import MAX_ITER, RIDGE, TOLERANCE, laplacian, single_threaded_blas
from arenastack_arena.ratings.counts import WIN_A, WIN_B
from arenastack_arena.ratings.scale import EloScale

STYLE_FEATURES: tuple[str, ...] = (
    "sum_assistant_tokens",
    "header_count",
    "list_count",
    "bold_count",
)


@dataclass(frozen=True)
class StyleFit:
    models: tuple[str, ...]
    theta: np.ndarray
    ratings: np.ndarray
    coefficients: dict[str, float]
    iterations: int


def style_covariates(style_a: np.ndarray, style_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised, standardised differences, and which features vary at all.

    A feature that never differs carries no information and would make the
    Hessian singular, so it is left out of the fit with coefficient zero.
    """
    style_a, style_b = np.asarray(style_a, float), np.asarray(style_b, float)
    diff = (style_a - style_b) / (style_a + style_b + 1.0)
    std = diff.std(axis=0)
    varies = std > 0
    return (diff[:, varies] - diff[:, varies].mean(axis=0)) / std[varies], varies


def fit_style_controlled(
    models: tuple[str, ...],
    a: np.ndarray,
    b: np.ndarray,
    outcome: np.ndarray,
    style_a: np.ndarray,
    style_b: np.ndarray,
    feature_names: tuple[str, ...] = STYLE_FEATURES,
    scale: EloScale | None = None,
) -> StyleFit:
    """Newton's method on the battle-level likelihood with model and style terms."""
    scale = scale or EloScale()
    a, b, outcome = np.asarray(a), np.asarray(b), np.asarray(outcome)
    if np.shape(style_a) != (len(a), len(feature_names)) or np.shape(style_b) != np.shape(style_a):
        raise ValueError(f"style arrays must be (battles x {len(feature_names)} features)")
    z, varies = style_covariates(style_a, style_b)
    y = np.where(outcome == WIN_A, 1.0, np.where(outcome == WIN_B, 0.0, 0.5))
    p, k = len(models), z.shape[1]
    params = np.zeros(p + k)
    iterations = MAX_ITER
    for it in range(1, MAX_ITER + 1):
        theta, beta = params[:p], params[p:]
        prob = expit(theta[a] - theta[b] + z @ beta)
        resid, weight = y - prob, prob * (1 - prob)
        grad = np.concatenate([np.bincount(a, resid, p) - np.bincount(b, resid, p), z.T @ resid])
        hess = np.empty((p + k, p + k))
        pair_weight = np.bincount(a * p + b, weight, p * p).reshape(p, p)
        sym = pair_weight + pair_weight.T
        ii, jj = np.nonzero(np.triu(sym, 1))
        hess[:p, :p] = laplacian(p, ii, jj, sym[ii, jj]) + 1.0 / p
        cross = np.zeros((p, k))
        for c in range(k):
            cross[:, c] = np.bincount(a, weight * z[:, c], p) - np.bincount(b, weight * z[:, c], p)
        hess[:p, p:], hess[p:, :p] = cross, cross.T
        hess[p:, p:] = (z * weight[:, None]).T @ z
        # A slight ridge keeps small or separable samples (a model that never
        # lost) finite; on leaderboard-sized data it moves nothing visibly.
        hess.flat[:: p + k + 1] += RIDGE
        grad -= RIDGE * params
        with single_threaded_blas():
            step = solve(hess, grad, assume_a="sym", check_finite=False)
        params += step
        if np.abs(step).max() < TOLERANCE:
            iterations = it
            break
    theta = params[:p] - params[:p].mean()
    return StyleFit(
        models=models,
        theta=theta,
        ratings=scale.to_elo(theta, models),
        coefficients=dict(zip(feature_names, _spread(params[p:], varies).tolist(), strict=True)),
        iterations=iterations,
    )


def _spread(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.zeros(len(mask))
    out[mask] = values
    return out
