"""Battle and judgment identities, and the all-pairs plan with balanced sides."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

import pytest

from arenastack_arena.evaluation.identity import (
    ORDER_AB,
    ORDER_BA,
    Battle,
    all_pairs,
    battle_id,
    judgment_id,
)
from arenastack_arena.evaluation.prompts import Prompt

HEX24 = re.compile(r"[0-9a-f]{24}")


def test_battle_id_is_stable_across_runs_and_versions():
    # Pinned: a change here means every stored judgment would be redone.
    assert battle_id("uid-1", "81", "alpha", "beta") == "6f852459c8790b647bae9120"
    assert battle_id("uid-1", "81", "alpha", "beta") == battle_id("uid-1", "81", "alpha", "beta")


def test_battle_id_depends_on_everything_it_names():
    base = battle_id("uid-1", "81", "alpha", "beta")
    assert HEX24.fullmatch(base)
    others = {
        battle_id("uid-1", "81", "beta", "alpha"),  # sides swapped
        battle_id("uid-2", "81", "alpha", "beta"),
        battle_id("uid-1", "82", "alpha", "beta"),
        battle_id("uid-1", "81", "alpha", "gamma"),
    }
    assert base not in others and len(others) == 4
    # No separator trick: the parts are encoded apart.
    assert battle_id("u", "p", "a|b", "c") != battle_id("u", "p", "a", "b|c")
    with pytest.raises(ValueError):
        battle_id("u", "p", "same", "same")


def test_judgment_ids_per_order():
    bid = battle_id("uid-1", "81", "alpha", "beta")
    ab, ba = judgment_id(bid, ORDER_AB), judgment_id(bid, ORDER_BA)
    assert ab != ba and HEX24.fullmatch(ab) and HEX24.fullmatch(ba)
    assert judgment_id(bid, ORDER_AB) == ab
    with pytest.raises(ValueError, match="unknown order"):
        judgment_id(bid, "AB")


def test_battle_shown_per_order():
    battle = Battle("p", "x", "y")
    assert battle.shown(ORDER_AB) == ("x", "y")
    assert battle.shown(ORDER_BA) == ("y", "x")


def test_all_pairs_covers_every_pair_on_every_prompt():
    prompts = [Prompt(str(k), [f"question {k}"]) for k in range(7)]
    contestants = ["m1", "m2", "m3", "m4", "m5"]
    plan = all_pairs(prompts, contestants, seed=3)
    assert len(plan) == 7 * math.comb(5, 2)
    cells = Counter((b.prompt_id, frozenset((b.model_a, b.model_b))) for b in plan)
    assert set(cells.values()) == {1}
    assert {p for p, _ in cells} == {p.id for p in prompts}


def test_sides_balanced_within_one_per_pair():
    ids = [f"p{k}" for k in range(41)]
    contestants = ["a", "b", "c", "d"]
    for seed in range(5):
        plan = all_pairs(ids, contestants, seed)
        first = Counter((b.model_a, b.model_b) for b in plan)
        for x, y in itertools.combinations(contestants, 2):
            assert abs(first[(x, y)] - first[(y, x)]) <= 1
            assert first[(x, y)] + first[(y, x)] == len(ids)


def test_plan_is_deterministic_per_seed_and_independent_of_listing_order():
    ids = [f"p{k}" for k in range(12)]
    plan = all_pairs(ids, ["a", "b", "c"], seed=7)
    assert plan == all_pairs(ids, ["a", "b", "c"], seed=7)
    sides = {(b.prompt_id, b.model_a, b.model_b) for b in plan}
    reordered = all_pairs(ids[::-1], ["c", "a", "b"], seed=7)
    assert {(b.prompt_id, b.model_a, b.model_b) for b in reordered} == sides
    other = {(b.prompt_id, b.model_a, b.model_b) for b in all_pairs(ids, ["a", "b", "c"], 8)}
    assert other != sides


def test_pending_skips_what_is_already_judged():
    plan = all_pairs(["p1", "p2"], ["a", "b", "c"], seed=0)
    judgments = plan.judgments("uid")
    assert len(judgments) == 2 * len(plan)
    assert len({j.id for j in judgments}) == len(judgments)
    done = {judgments[0].id, judgments[3].id}
    pending = plan.pending("uid", done)
    assert [j.id for j in pending] == [j.id for j in judgments if j.id not in done]
    # A restart recomputes the same ids.
    assert [j.id for j in all_pairs(["p1", "p2"], ["a", "b", "c"], 0).judgments("uid")] == [
        j.id for j in judgments
    ]


@pytest.mark.parametrize(
    ("prompts", "contestants"),
    [(["p", "p"], ["a", "b"]), (["p"], ["a", "a"]), (["p"], ["a"])],
)
def test_all_pairs_refuses_bad_input(prompts, contestants):
    with pytest.raises(ValueError):
        all_pairs(prompts, contestants, 0)
