"""Boards per verdict source, preliminary models and judge-human agreement, as pure functions."""

from __future__ import annotations

import random

import numpy as np
import pytest

from arenastack_arena.ratings import EloScale
from arenastack_arena.ratings.counts import from_pair_table
from arenastack_arena.service.agreement import DRAW, agreement, battle_outcome, decided
from arenastack_arena.service.board_payloads import board_payload, style_payload
from arenastack_arena.service.boards import OVERALL, compute_boards, merge_boards, source_boards
from arenastack_arena.service.sources import ALL, HUMAN

ANCHOR = "mixtral-8x7b-instruct-v0.1"


def test_battle_outcome_follows_fastchat_rule():
    assert battle_outcome([]) is None
    assert battle_outcome(["model_b"]) == "model_b"
    assert battle_outcome(["model_a", "model_a"]) == "model_a"
    assert battle_outcome(["model_a", "model_b"]) == "tie"
    assert battle_outcome(["tie (bothbad)", "tie (bothbad)"]) == "tie (bothbad)"


def test_agreement_with_and_without_ties_by_hand():
    # (human, judge) outcomes as winning model names: by hand, 6 battles of which 3 agree;
    # 3 where both picked a winner, of which 2 agree.
    pairs = [
        (decided("x", "y", "model_a"), decided("x", "y", "model_a")),  # x, x: agree
        (decided("x", "y", "model_b"), decided("x", "y", "tie")),  # y, draw
        (decided("x", "y", "tie"), decided("y", "x", "tie (bothbad)")),  # draw, draw: agree
        (decided("x", "y", "model_a"), decided("y", "x", "model_b")),  # x, x (sides swapped)
        (decided("x", "y", "tie (bothbad)"), decided("x", "y", "model_b")),  # draw, y
        (decided("x", "y", "model_b"), decided("x", "y", "model_a")),  # y, x
    ]
    assert pairs[2] == (DRAW, DRAW) and pairs[3] == ("x", "x")
    result = agreement(pairs)
    assert result["battles"] == 6 and result["withTies"] == pytest.approx(3 / 6)
    assert result["withoutTies"] == {"battles": 3, "agreement": pytest.approx(2 / 3)}
    assert agreement([]) == {
        "battles": 0,
        "withTies": None,
        "withoutTies": {"battles": 0, "agreement": None},
    }
    only_ties = agreement([(DRAW, DRAW), (DRAW, "x")])
    assert only_ties["withTies"] == 0.5 and only_ties["withoutTies"]["agreement"] is None


def test_a_one_vote_model_beside_the_real_counts_is_preliminary_not_first(real_counts):
    # The demo's board: the real 2024 counts plus a tiny model that won its one battle.
    models = [*real_counts.models, "demo-tiny"]
    top = real_counts.models.index("chatgpt-4o-latest")
    counts = from_pair_table(
        models,
        np.concatenate(
            [np.stack([real_counts.i, real_counts.j], axis=1), [[len(models) - 1, top]]]
        ),
        np.concatenate([real_counts.counts, [[1, 0, 0, 0]]]),
    )
    scale = EloScale(anchor=ANCHOR, anchor_rating=1114)
    board = board_payload(counts, scale, rounds=5, min_battles=10)
    assert [r["model"] for r in board["preliminary"]] == ["demo-tiny"]
    tiny = board["preliminary"][0]
    assert tiny["flagged"] and tiny["rank"] is None and tiny["votes"] == 1
    assert len(board["rows"]) == 129 and "demo-tiny" not in board["heatmap"]["models"]
    assert board["rows"][0]["model"] == "chatgpt-4o-latest" and board["rows"][0]["rank"] == 1
    # Its rating, held finite by the ridge, is above every real model's: ranked, it led.
    assert tiny["rating"] > board["rows"][0]["rating"]
    assert board["votes"] == real_counts.n_battles + 1


def test_too_few_battles_are_preliminary_and_the_rest_ranked_among_themselves():
    rng = random.Random(1)
    rows = [
        (None, a, b, rng.choice(["model_a", "model_b", "tie"]), 1)
        for a, b in [("p", "q"), ("q", "r"), ("p", "r")] * 12
    ]
    rows += [(None, "new", "p", "model_b", 1), (None, "new", "q", "model_a", 1)]  # 2 battles
    board = compute_boards(rows, EloScale(), 10, None, min_battles=10).boards[OVERALL]
    assert {r["model"] for r in board["rows"]} == {"p", "q", "r"}
    assert [(r["model"], r["votes"], r["rank"]) for r in board["preliminary"]] == [("new", 2, None)]
    assert min(r["rank"] for r in board["rows"]) == 1
    # Without a threshold every connected model is ranked.
    unranked = compute_boards(rows, EloScale(), 10, None).boards[OVERALL]
    assert len(unranked["rows"]) == 4 and not unranked["preliminary"]


def judge_rows(source: str, a: str, b: str, games: list[tuple[str, int]]) -> list[tuple]:
    """game_counts rows of battles that each had ``games`` (winner, weight)."""
    return [(source, None, a, b, w, n, 1) for w, n in games]


def test_boards_per_source_stay_apart_and_all_combines_them():
    human = [(None, "h1", "h2", "model_a", 7), (None, "h1", "h2", "model_b", 5)]
    judged = (
        # Four battles of j1 against j2: three strong wins (weight 3), one plain loss.
        judge_rows("judge:x", "j1", "j2", [("model_a", 3)] * 3 + [("model_b", 1)])
        + judge_rows("judge:y", "h1", "j1", [("tie", 1)] * 2)
        + [("judge:y", "math", "h1", "j1", "tie", 1, 1)]
    )
    boards = source_boards(human, judged, EloScale(), 10, None, min_battles=0)
    assert set(boards.sources) == {HUMAN, "judge:x", "judge:y", ALL}
    people = boards.sources[HUMAN][OVERALL]
    assert {r["model"] for r in people["rows"]} == {"h1", "h2"} and people["votes"] == 12
    x = boards.sources["judge:x"][OVERALL]
    # The fit counts games with their weights (9 of 10 points to j1); votes are battles.
    assert x["votes"] == 4 and x["games"] == 10
    j1 = x["heatmap"]["models"].index("j1")
    assert x["heatmap"]["observed"][j1][1 - j1] == pytest.approx(0.9)
    everyone = boards.sources[ALL][OVERALL]
    assert everyone["votes"] == 12 + 4 + 3 and everyone["games"] == 12 + 10 + 3
    assert {r["model"] for r in everyone["rows"]} == {"h1", "h2", "j1", "j2"}
    assert set(boards.sources["judge:y"]) == {OVERALL, "math"} and "math" in boards.sources[ALL]
    assert "math" not in boards.sources[HUMAN]
    # Sampling balances the people's pairs only.
    assert boards.pair_votes == {("h1", "h2"): 12}


def test_source_boards_dealt_out_between_workers_merge_into_the_whole():
    human = [(c, "h1", "h2", w, 3) for c in (None, "coding") for w in ("model_a", "model_b")]
    judged = judge_rows("judge:x", "j1", "j2", [("model_a", 2), ("model_b", 1)]) + [
        ("judge:x", "math", "j1", "j2", "model_a", 1, 1),
        ("judge:x", "math", "j1", "j2", "model_b", 1, 1),
    ]
    whole = source_boards(human, judged, EloScale(), 10, None, min_battles=0)
    shares = [source_boards(human, judged, EloScale(), 10, None, 0, share, 3) for share in range(3)]
    fitted = [sum(len(b) for b in share.sources.values()) for share in shares]
    # human: overall, coding; judge:x: overall, math; all: overall, coding, math.
    assert sum(fitted) == 7 and all(fitted)
    assert merge_boards(shares).sources == whole.sources


def test_style_board_threshold_counts_battles_not_games():
    style = (100.0, 1.0, 2.0, 0.0, 50.0, 0.0, 1.0, 1.0)
    rows = [("s1", "s2", "model_a", *style)] * 6 + [("s2", "s1", "model_a", *style)] * 3
    # Nine games from three battles per model: too few at a threshold of five.
    board = style_payload(rows, EloScale(), min_battles=5, battles={"s1": 3, "s2": 3})
    assert board["rows"] == [] and {r["votes"] for r in board["preliminary"]} == {3}
    assert board["games"] == 9 and board["votes"] == 3
    plain = style_payload(rows, EloScale(), min_battles=5)
    assert [r["rank"] for r in plain["rows"]] == [1, 2] and plain["votes"] == 9
