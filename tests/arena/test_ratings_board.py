"""Intervals, ranks, style control, categories and win-rate matrices."""

from __future__ import annotations

import numpy as np
import pytest
from arena_support import synthetic_battles
from scipy.special import expit

from arenastack_arena.ratings import (
    OUTCOMES,
    EloScale,
    aggregate,
    bootstrap_ratings,
    build_leaderboard,
    category_leaderboards,
    fit_bt,
    fit_style_controlled,
    observed_win_rates,
    predicted_win_rates,
    public_ranks,
    sandwich_covariance,
)


def test_public_rank_rule():
    lower = np.array([10.0, 8.0, 9.5, 1.0])
    upper = np.array([12.0, 9.0, 11.0, 2.0])
    # model 1 (upper 9) is below the lower bounds of models 0 and 2.
    assert public_ranks(lower, upper).tolist() == [1, 3, 1, 4]


def test_bootstrap_is_seeded_and_matches_battle_resampling():
    names, a, b, outcome, _ = synthetic_battles(6, 6000, 21)
    counts = aggregate(a, b, outcome, models=names)
    first = bootstrap_ratings(counts, 40, seed=3)
    assert np.array_equal(first, bootstrap_ratings(counts, 40, seed=3))
    assert not np.array_equal(first, bootstrap_ratings(counts, 40, seed=4))
    # Resampling individual battles (what FastChat does) gives the same spread.
    rng = np.random.default_rng(5)
    rows = []
    for _ in range(150):
        pick = rng.integers(0, len(a), len(a))
        rows.append(fit_bt(aggregate(a[pick], b[pick], outcome[pick], models=names)).theta)
    ours = bootstrap_ratings(counts, 150, seed=6)
    assert np.allclose(ours.std(axis=0), np.array(rows).std(axis=0), rtol=0.25)


def test_sandwich_equals_per_battle_formula():
    names, a, b, outcome, _ = synthetic_battles(5, 800, 13)
    counts = aggregate(a, b, outcome, models=names)
    fit = fit_bt(counts)
    # Direct computation from individual battles.
    p = len(names)
    y = np.where(outcome == 0, 1.0, np.where(outcome == 1, 0.0, 0.5))
    prob = expit(fit.theta[a] - fit.theta[b])
    x = np.zeros((len(a), p))
    x[np.arange(len(a)), a] = 1.0
    x[np.arange(len(a)), b] = -1.0
    scores = x * (y - prob)[:, None]
    hess = (x * (prob * (1 - prob))[:, None]).T @ x
    h_pinv = np.linalg.pinv(hess)
    expected = h_pinv @ (scores.T @ scores) @ h_pinv
    assert np.allclose(sandwich_covariance(counts, fit.theta), expected, atol=1e-10)


def test_leaderboard_intervals_and_ranks(real_counts):
    scale = EloScale(anchor="mixtral-8x7b-instruct-v0.1", anchor_rating=1114)
    boot = build_leaderboard(real_counts, scale, method="bootstrap", rounds=50, seed=1)
    sand = build_leaderboard(real_counts, scale, method="sandwich")
    assert [r.model for r in boot.rows] == [r.model for r in sand.rows]
    assert boot.rows[0].model == "chatgpt-4o-latest" and boot.rows[0].rank == 1
    ratings = [r.rating for r in boot.rows]
    assert ratings == sorted(ratings, reverse=True)
    widths_b = np.array([r.upper - r.lower for r in boot.rows])
    widths_s = np.array([r.upper - r.lower for r in sand.rows])
    assert np.all(widths_b > 0)
    assert np.median(widths_b / widths_s) == pytest.approx(1.0, abs=0.2)
    mixtral = next(r for r in boot.rows if r.model == "mixtral-8x7b-instruct-v0.1")
    assert mixtral.rating == pytest.approx(1114.0) and mixtral.lower < 1114.0 < mixtral.upper
    assert sum(r.votes for r in boot.rows) == 2 * real_counts.n_battles
    with pytest.raises(ValueError, match="unknown interval method"):
        build_leaderboard(real_counts, method="jackknife")


def test_style_control_removes_a_length_bias():
    rng = np.random.default_rng(17)
    n, p = 40_000, 6
    names = tuple(f"m{k}" for k in range(p))
    a = rng.integers(0, p, n)
    b = (a + rng.integers(1, p, n)) % p
    verbosity = np.linspace(100, 1500, p)  # later models write longer answers...
    len_a = rng.exponential(verbosity[a]) + 1.0
    len_b = rng.exponential(verbosity[b]) + 1.0
    # ...and voters prefer length only; the models are otherwise equal.
    z = (len_a - len_b) / (len_a + len_b + 1)
    outcome = np.where(rng.random(n) < expit(4.0 * z), 0, 1)
    zeros = np.zeros((n, 3))
    style_a = np.column_stack([len_a, zeros])
    style_b = np.column_stack([len_b, zeros])
    raw = fit_bt(aggregate(a, b, outcome, models=names))
    styled = fit_style_controlled(names, a, b, outcome, style_a, style_b)
    assert np.ptp(raw.ratings) > 150
    assert np.ptp(styled.ratings) < 25
    assert styled.coefficients["sum_assistant_tokens"] > 0.5
    assert styled.coefficients["header_count"] == 0.0


def test_style_control_without_style_effect_equals_plain_fit():
    names, a, b, outcome, _ = synthetic_battles(8, 20000, 23)
    rng = np.random.default_rng(2)
    style_a = rng.poisson(50, (len(a), 4)).astype(float)
    style_b = rng.poisson(50, (len(a), 4)).astype(float)
    styled = fit_style_controlled(tuple(names), a, b, outcome, style_a, style_b)
    plain = fit_bt(aggregate(a, b, outcome, models=names))
    assert np.abs(styled.ratings - plain.ratings).max() < 10


def test_category_boards():
    names, a, b, outcome, _ = synthetic_battles(5, 5000, 31)
    na = np.asarray(names, dtype=object)
    category = np.where(np.arange(5000) % 2 == 0, "coding", "math")
    boards = category_leaderboards(
        na[a], na[b], np.asarray(OUTCOMES, dtype=object)[outcome], category, method="sandwich"
    )
    assert set(boards) == {"overall", "coding", "math"}
    assert sum(r.votes for r in boards["coding"].rows) == 2 * 2500
    assert sum(r.votes for r in boards["overall"].rows) == 2 * 5000


def test_win_rate_matrices(real_counts):
    observed = observed_win_rates(real_counts)
    fit = fit_bt(real_counts)
    predicted = predicted_win_rates(fit.theta)
    k = 0
    i, j = real_counts.i[k], real_counts.j[k]
    c = real_counts.counts[k]
    assert observed[i, j] == pytest.approx((c[0] + 0.5 * (c[2] + c[3])) / c.sum())
    assert observed[i, j] + observed[j, i] == pytest.approx(1.0)
    assert np.allclose(predicted + predicted.T, 1.0) and np.allclose(np.diag(predicted), 0.5)
    met = ~np.isnan(observed)
    # The fitted model explains the observed shares well on average.
    assert np.abs(observed[met] - predicted[met]).mean() < 0.08
