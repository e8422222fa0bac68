"""Aggregation into pair/outcome cells and the degenerate cases of the fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from arena_support import synthetic_battles

from arenastack_arena.ratings import OUTCOMES, aggregate, fit_bt, load_leaderbot_json
from arenastack_arena.ratings.counts import from_pair_table


def test_aggregate_matches_a_groupby():
    names, a, b, outcome, _ = synthetic_battles(7, 4000, 3)
    na = np.asarray(names, dtype=object)
    frame = pd.DataFrame({"a": na[a], "b": na[b], "w": np.asarray(OUTCOMES, dtype=object)[outcome]})
    counts = aggregate(frame["a"].tolist(), frame["b"].tolist(), frame["w"].tolist())
    assert counts.n_battles == 4000
    for k in range(len(counts.i)):
        mi, mj = counts.models[counts.i[k]], counts.models[counts.j[k]]
        forward = frame[(frame.a == mi) & (frame.b == mj)]
        backward = frame[(frame.a == mj) & (frame.b == mi)]
        expected = [
            (forward.w == "model_a").sum() + (backward.w == "model_b").sum(),
            (forward.w == "model_b").sum() + (backward.w == "model_a").sum(),
            (forward.w == "tie").sum() + (backward.w == "tie").sum(),
            (forward.w == "tie (bothbad)").sum() + (backward.w == "tie (bothbad)").sum(),
        ]
        assert counts.counts[k].tolist() == expected


def test_sparse_key_path_equals_dense_path(monkeypatch):
    names, a, b, outcome, _ = synthetic_battles(30, 5000, 4)
    dense = aggregate(a, b, outcome, models=names)
    monkeypatch.setattr("arenastack_arena.ratings.counts._DENSE_KEY_LIMIT", 0)
    sparse = aggregate(a, b, outcome, models=names)
    assert np.array_equal(dense.i, sparse.i) and np.array_equal(dense.counts, sparse.counts)


def test_round_trip_through_battles(real_counts):
    a, b, outcome = real_counts.to_battles()
    again = aggregate(a, b, outcome, models=real_counts.models)
    assert np.array_equal(again.counts, real_counts.counts)
    assert np.array_equal(again.i, real_counts.i)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown winner 'draw'"):
        aggregate(["x"], ["y"], ["draw"])
    with pytest.raises(ValueError, match="two different models"):
        aggregate(["x"], ["x"], ["tie"])
    with pytest.raises(ValueError, match="unknown model 'z'"):
        aggregate(["x"], ["z"], ["tie"], models=["x", "y"])
    with pytest.raises(ValueError, match="same length"):
        aggregate(["x", "y"], ["y"], ["tie"])


def test_reversed_pairs_in_a_table_are_folded(tmp_path):
    counts = from_pair_table(
        ["a", "b"], np.array([[1, 0], [0, 1]]), np.array([[5, 1, 0, 0], [2, 3, 1, 0]])
    )
    assert counts.counts.tolist() == [[3.0, 8.0, 1.0, 0.0]]
    path = tmp_path / "c.json"
    path.write_text('{"models": ["a", "b"], "X": [[0, 1]], "Y": [[4, 1, 2, 0]]}')
    assert load_leaderbot_json(path).counts.tolist() == [[4.0, 1.0, 2.0, 0.0]]


def test_never_losing_and_never_winning_models_are_regularised_and_flagged():
    names, a, b, outcome, _ = synthetic_battles(6, 3000, 8)
    champion = [("champ", "model-000", "model_a")] * 20 + [("model-003", "champ", "model_b")] * 10
    loser = [("dud", "model-001", "model_b")] * 15
    extra = champion + loser
    na = np.asarray(names, dtype=object)
    model_a = list(na[a]) + [e[0] for e in extra]
    model_b = list(na[b]) + [e[1] for e in extra]
    winner = list(np.asarray(OUTCOMES, dtype=object)[outcome]) + [e[2] for e in extra]
    fit = fit_bt(aggregate(model_a, model_b, winner))
    assert fit.regularized
    assert set(fit.flagged) == {"champ", "dud"}
    assert np.all(np.isfinite(fit.ratings))
    ratings = fit.as_dict()
    assert ratings["champ"] == max(ratings.values()) and ratings["dud"] == min(ratings.values())
    # The well-connected models barely move compared with a fit without the extremes.
    clean = fit_bt(aggregate(a, b, outcome, models=names))
    kept = [fit.models.index(n) for n in names]
    assert np.abs((fit.theta[kept] - fit.theta[kept].mean()) - clean.theta).max() < 0.02
