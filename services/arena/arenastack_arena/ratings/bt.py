"""Bradley-Terry maximum likelihood with ties as half a win each way.

The likelihood is the one the public Chatbot Arena leaderboard maximises:
for a pair with n battles of which w count for i (wins + ties / 2),
    l = w log s(ti - tj) + (n - w) log s(tj - ti),   s = logistic.
It is concave in the strengths t; Newton's method on the (model x model)
Hessian converges in a handful of steps and, warm-started, in two or three,
which is what makes the bootstrap cheap.

Models that never lose or never win have no finite MLE. We *regularise and
flag*: when the win graph is not strongly connected (Ford's condition for
existence) a small ridge penalty RIDGE * t^2 / 2 is added, the fit is marked
``regularized`` and the models outside the main strongly connected component
are listed in ``flagged``. Data where the MLE exists is fitted exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit
from threadpoolctl import threadpool_limits

from arenastack_arena.ratings.counts import PairCounts
from arenastack_arena.ratings.scale import EloScale

# Penalty (natural-log units) used only when the MLE does not exist; small
# enough that well-connected models move by far less than 0.01 Elo.
RIDGE = 1e-3
TOLERANCE = 1e-10
# Bootstrap rounds stop at 1e-7 (2e-5 Elo): far below their own spread.
BOOTSTRAP_TOLERANCE = 1e-7
MAX_ITER = 100
# Steps shorter than this (natural-log units, ~170 Elo) are taken without a
# likelihood check: near the optimum Newton's quadratic model is accurate, and
# the check costs as much as the step.
TRUSTED_STEP = 1.0


def single_threaded_blas() -> threadpool_limits:
    """The solves here are small (models x models): threaded BLAS only adds
    wake-up latency, 100x on a busy 2-core machine, so hold it to one thread."""
    return threadpool_limits(limits=1, user_api="blas")


@dataclass(frozen=True)
class PairData:
    """The sufficient statistics of the likelihood: one row per pair."""

    n_models: int
    i: np.ndarray
    j: np.ndarray
    n: np.ndarray
    w: np.ndarray

    @staticmethod
    def from_counts(counts: PairCounts) -> PairData:
        ties = counts.ties
        n = counts.wins_i + counts.wins_j + ties
        keep = n > 0
        return PairData(
            counts.n_models,
            counts.i[keep],
            counts.j[keep],
            n[keep],
            (counts.wins_i + 0.5 * ties)[keep],
        )

    @staticmethod
    def from_cells(
        base: PairData, wins_i: np.ndarray, wins_j: np.ndarray, ties: np.ndarray
    ) -> PairData:
        n = wins_i + wins_j + ties
        return PairData(base.n_models, base.i, base.j, n, wins_i + 0.5 * ties)


@dataclass(frozen=True)
class BTFit:
    models: tuple[str, ...]
    theta: np.ndarray
    ratings: np.ndarray
    iterations: int
    log_likelihood: float
    regularized: bool = False
    flagged: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.models, self.ratings.tolist(), strict=True))


def log_likelihood(data: PairData, theta: np.ndarray) -> float:
    d = theta[data.i] - theta[data.j]
    return float(-(data.w @ np.logaddexp(0.0, -d)) - (data.n - data.w) @ np.logaddexp(0.0, d))


def laplacian(p: int, i: np.ndarray, j: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """sum_k weight_k (e_i - e_j)(e_i - e_j)^T as a dense (p x p) matrix."""
    m = np.zeros((p, p))
    m.flat[i * p + j] = -weight
    m.flat[j * p + i] = -weight
    m.flat[:: p + 1] = np.bincount(i, weight, p) + np.bincount(j, weight, p)
    return m


def information(data: PairData, theta: np.ndarray) -> np.ndarray:
    """The observed Fisher information (negative Hessian) of the log-likelihood."""
    prob = expit(theta[data.i] - theta[data.j])
    return laplacian(data.n_models, data.i, data.j, data.n * prob * (1.0 - prob))


def score(data: PairData, theta: np.ndarray) -> np.ndarray:
    resid = data.w - data.n * expit(theta[data.i] - theta[data.j])
    p = data.n_models
    return np.bincount(data.i, resid, p) - np.bincount(data.j, resid, p)


def win_graph_components(data: PairData) -> np.ndarray:
    """Strongly connected component label per model; edge i->j when i took points off j."""
    p = data.n_models
    losses = data.n - data.w
    src = np.concatenate([data.i[data.w > 0], data.j[losses > 0]])
    dst = np.concatenate([data.j[data.w > 0], data.i[losses > 0]])
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(p, p)).tocsr()
    _, labels = connected_components(graph, directed=True, connection="strong")
    return labels


def mle_exists(data: PairData, present: np.ndarray) -> tuple[bool, np.ndarray]:
    """Whether the MLE is finite over the models present, and which models break it."""
    labels = win_graph_components(data)
    main = np.bincount(labels[present]).argmax() if present.any() else 0
    outside = present & (labels != main)
    return not outside.any(), outside


def newton(
    data: PairData,
    theta0: np.ndarray | None = None,
    ridge: float = 0.0,
    tol: float = TOLERANCE,
    max_iter: int = MAX_ITER,
) -> tuple[np.ndarray, int]:
    """Maximises the (optionally ridge-penalised) log-likelihood; strengths sum to zero."""
    p = data.n_models
    theta = np.zeros(p) if theta0 is None else theta0 - theta0.mean()
    # Adding 11^T/p fixes the one free direction (a common shift) without
    # changing any step, because the gradient is always orthogonal to it.
    centring = 1.0 / p
    for it in range(1, max_iter + 1):
        grad = score(data, theta) - ridge * theta
        hess = information(data, theta)
        hess += centring
        hess.flat[:: p + 1] += ridge
        step = cho_solve(cho_factor(hess, check_finite=False), grad, check_finite=False)
        longest = np.abs(step).max()
        if longest > TRUSTED_STEP:
            # Newton on a concave objective rarely overshoots; halve when it does.
            objective = log_likelihood(data, theta) - 0.5 * ridge * theta @ theta
            for _ in range(30):
                value = log_likelihood(data, theta + step) - 0.5 * ridge * (theta + step) @ (
                    theta + step
                )
                if value >= objective - 1e-9 * abs(objective):
                    break
                step *= 0.5
        theta = theta + step
        if longest < tol:
            return theta, it
    return theta, max_iter


def edge_pattern(data: PairData) -> np.ndarray:
    """Which directions of each pair have points; the win graph depends on nothing else."""
    return np.concatenate([data.w > 0, data.n - data.w > 0])


def fit_pairs(
    data: PairData,
    theta0: np.ndarray | None = None,
    tol: float = TOLERANCE,
    known_connected: bool = False,
) -> tuple[np.ndarray, int, np.ndarray]:
    """Fits strengths; returns (theta, iterations, mask of flagged models).

    ``known_connected`` skips the graph check when the caller knows the win
    graph is strongly connected (a bootstrap draw with the full data's edges).
    """
    present = (
        np.bincount(data.i, data.n, data.n_models) + np.bincount(data.j, data.n, data.n_models)
    ) > 0
    if known_connected:
        exists, outside = True, np.zeros(data.n_models, bool)
    else:
        exists, outside = mle_exists(data, present)
    # A model with no battles (say, one a bootstrap draw left out) adds a free direction too:
    # the ridge holds it at zero, as it holds models outside the main component.
    ridge = 0.0 if exists and present.all() else RIDGE
    theta, iterations = newton(data, theta0, ridge, tol)
    return theta, iterations, outside | ~present


def fit_bt(counts: PairCounts, scale: EloScale | None = None) -> BTFit:
    """The Bradley-Terry MLE (ties as half-wins) on the Elo scale."""
    scale = scale or EloScale()
    data = PairData.from_counts(counts)
    if len(data.n) == 0:
        raise ValueError("no battles to rate")
    with single_threaded_blas():
        theta, iterations, flagged = fit_pairs(data)
    return BTFit(
        models=counts.models,
        theta=theta,
        ratings=scale.to_elo(theta, counts.models),
        iterations=iterations,
        log_likelihood=log_likelihood(data, theta),
        regularized=bool(flagged.any()),
        flagged=tuple(m for m, f in zip(counts.models, flagged, strict=True) if f),
    )
