"""Pair samplers and the simulator: mechanics on small cases (the savings are a benchmark)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from arenastack_arena.evaluation.sampling import (
    ADAPTIVE,
    INFORMATION,
    UNIFORM,
    AdaptiveSampler,
    Tally,
    UniformSampler,
    covariance,
    fit_strengths,
    make_sampler,
)
from arenastack_arena.evaluation.scales import MODEL_A, MODEL_B, TIE, TIE_BOTHBAD
from arenastack_arena.evaluation.simulation import battles_to_recover, kendall_tau, simulate

SEPARATED = {"weak": 0.0, "fair": 1.5, "good": 3.0, "best": 4.5}


def test_tally_counts_games_by_pair():
    tally = Tally.empty(["x", "y", "z"])
    tally.add("x", "y", MODEL_A)
    tally.add("x", "y", MODEL_B, weight=3)
    tally.add("y", "z", TIE)
    tally.add("z", "y", TIE_BOTHBAD)
    assert tally.wins[0, 1] == 1 and tally.wins[1, 0] == 3
    assert tally.ties[1, 2] == tally.ties[2, 1] == 2
    data = tally.pair_data()
    assert (data.i.tolist(), data.j.tolist()) == ([0, 1], [1, 2])
    assert data.n.tolist() == [4.0, 2.0] and data.w.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="not in the tally"):
        tally.add("x", "outsider", MODEL_A)
    with pytest.raises(ValueError, match="unknown winner"):
        tally.add("x", "y", "draw")


def test_fit_orders_models_and_the_prior_keeps_it_finite():
    tally = Tally.empty(["x", "y", "z"])
    for _ in range(5):
        tally.add("x", "y", MODEL_A)
        tally.add("y", "z", MODEL_A)
    # x never lost: no finite MLE, but the prior gives finite, ordered strengths.
    theta = fit_strengths(tally)
    assert np.all(np.isfinite(theta)) and theta[0] > theta[1] > theta[2]
    assert abs(theta.sum()) < 1e-9
    sigma = covariance(tally, theta)
    assert np.allclose(sigma, sigma.T) and np.all(np.linalg.eigvalsh(sigma) > 0)


def test_uniform_cycles_through_all_pairs_evenly():
    models = ["a", "b", "c", "d"]
    tally = Tally.empty(models)
    sampler = UniformSampler(seed=1)
    for _ in range(3 * math.comb(4, 2)):
        ((x, y),) = sampler.choose(tally)
        tally.add(x, y, MODEL_A)
    games = tally.games()
    assert all(games[i, j] == 3 for i, j in itertools.combinations(range(4), 2))
    batch = UniformSampler(seed=2).choose(Tally.empty(models), k=6)
    assert len(set(batch)) == 6


@pytest.mark.parametrize("name", [ADAPTIVE, INFORMATION])
def test_adaptive_picks_only_pairs_of_the_tally(name):
    models = ["a", "b", "c", "d", "e"]
    tally = Tally.empty(models)
    sampler = make_sampler(name, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(60):
        for x, y in sampler.choose(tally, k=3):
            assert x in models and y in models and x != y
            tally.add(x, y, MODEL_A if rng.random() < 0.5 else MODEL_B)


def test_adaptive_schedules_an_unplayed_model_first():
    tally = Tally.empty(["a", "b", "c", "newcomer"])
    for _ in range(20):
        tally.add("a", "b", MODEL_A)
        tally.add("b", "c", MODEL_B)
        tally.add("a", "c", TIE)
    ((x, y),) = AdaptiveSampler(seed=0).choose(tally)
    assert "newcomer" in (x, y)


def test_adaptive_batch_spreads_over_pairs():
    # From nothing, a batch covers disjoint pairs before it repeats any model pair.
    batch = AdaptiveSampler(seed=0).choose(Tally.empty(["a", "b", "c", "d"]), k=2)
    assert len(set(batch[0]) | set(batch[1])) == 4


@pytest.mark.parametrize("name", [ADAPTIVE, UNIFORM])
def test_both_samplers_recover_a_well_separated_ranking(name):
    result = simulate(SEPARATED, name, budget=300, seed=4)
    assert result.ranking == ("best", "good", "fair", "weak")
    assert result.tally.games().sum() == 2 * 300


@pytest.mark.parametrize("name", [ADAPTIVE, UNIFORM])
def test_simulation_is_deterministic_for_a_seed(name):
    first = simulate(SEPARATED, name, budget=80, seed=11, tie_rate=0.2)
    again = simulate(SEPARATED, name, budget=80, seed=11, tie_rate=0.2)
    other = simulate(SEPARATED, name, budget=80, seed=12, tie_rate=0.2)
    assert np.array_equal(first.tally.wins, again.tally.wins)
    assert np.array_equal(first.tally.ties, again.tally.ties)
    assert np.array_equal(first.theta, again.theta)
    assert first.tally.ties.sum() > 0
    assert not (
        np.array_equal(first.tally.wins, other.tally.wins)
        and np.array_equal(first.tally.ties, other.tally.ties)
    )


def test_kendall_tau_by_hand():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    # One swapped pair out of three: (2 - 1) / 3.
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # A tie in one ranking counts neither way.
    assert kendall_tau([1, 1, 3], [1, 2, 3]) == pytest.approx(2 / 3)


def test_battles_to_recover_mechanics():
    strengths = [0.0, 2.0, 4.0]
    recovery = battles_to_recover(
        strengths, ADAPTIVE, seeds=range(3), accuracy=1.0, budget=200, check_every=10
    )
    assert recovery.recovered == 3
    assert all(b % 10 == 0 and 0 < b <= 200 for b in recovery.battles)
    assert recovery.median <= 200
    top = battles_to_recover(strengths, UNIFORM, seeds=[0], top_k=1, budget=200, check_every=10)
    assert top.recovered == 1


def test_an_unrecoverable_ranking_reports_none():
    # Equal strengths: no fitted order has tau >= 0.9 against an all-tied truth.
    recovery = battles_to_recover([1.0, 1.0, 1.0], UNIFORM, seeds=[0, 1], budget=50)
    assert recovery.battles == (None, None)
    assert recovery.recovered == 0 and recovery.median == math.inf


def test_unknown_sampler():
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler("greedy")
