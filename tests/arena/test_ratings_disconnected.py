"""Leaderboards whose win graph falls apart: the demo's case of two new models voted on only
against each other beside the real 2024 counts, and bootstrap draws that leave a model out.
Each used to stop the leaderboard refresh with a LinAlgError (a singular Hessian)."""

from __future__ import annotations

import numpy as np

from arenastack_arena.ratings import EloScale, build_leaderboard, load_leaderbot_json
from arenastack_arena.ratings.counts import aggregate, from_pair_table
from arenastack_cluster.arena_data import chatbot_arena_counts

ANCHOR = "mixtral-8x7b-instruct-v0.1"


def test_a_new_pair_beside_the_real_counts_is_flagged_not_fatal():
    real = load_leaderbot_json(chatbot_arena_counts())
    models = [*real.models, "new-a", "new-b"]
    pairs = np.concatenate(
        [np.stack([real.i, real.j], axis=1), [[len(models) - 2, len(models) - 1]]]
    )
    table = np.concatenate([real.counts, [[1, 0, 0, 0]]])  # one vote: new-a beats new-b
    counts = from_pair_table(models, pairs, table)
    board = build_leaderboard(counts, EloScale(anchor=ANCHOR, anchor_rating=1114), rounds=20)
    rows = {r.model: r for r in board.rows}
    assert board.fit.regularized and set(board.fit.flagged) == {"new-a", "new-b"}
    assert rows["new-a"].flagged and rows["new-a"].rating > rows["new-b"].rating
    assert rows[ANCHOR].rating == 1114 and not rows[ANCHOR].flagged
    assert all(np.isfinite([r.rating, r.lower, r.upper]).all() for r in board.rows)
    # The real models keep the order of the board without the new pair.
    alone = build_leaderboard(real, EloScale(anchor=ANCHOR, anchor_rating=1114), rounds=20)
    top = [r.model for r in alone.rows[:10]]
    assert [r.model for r in board.rows if not r.flagged][:10] == top


def test_bootstrap_draws_that_drop_a_model_still_fit():
    # p and q meet once: about a third of the draws leave both out entirely.
    a = ["x", "y", "z", "x", "y", "p"]
    b = ["y", "z", "x", "z", "x", "q"]
    winner = ["model_a", "model_a", "model_a", "model_b", "tie", "model_a"]
    board = build_leaderboard(aggregate(a, b, winner), rounds=50, seed=1)
    rows = {r.model: r for r in board.rows}
    assert {m for m, r in rows.items() if r.flagged} == {"p", "q"}
    assert rows["p"].rating > rows["q"].rating
    assert all(r.lower <= r.rating <= r.upper for r in board.rows)
