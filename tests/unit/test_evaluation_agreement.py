"""Judge-human agreement, position consistency and self-enhancement flags, by hand."""

from __future__ import annotations

import pytest

from arenastack_arena.evaluation.agreement import (
    Rate,
    agreement,
    paired,
    position_consistency,
    self_enhancement,
)
from arenastack_arena.evaluation.scales import FIVE, MODEL_A, MODEL_B, TIE, TIE_BOTHBAD
from arenastack_arena.evaluation.verdicts import RULE_TIE, Verdict, combine

# battle: (judge, human)
OUTCOMES = {
    "b1": (MODEL_A, MODEL_A),  # agree, both decided
    "b2": (MODEL_A, MODEL_B),  # disagree, both decided
    "b3": (TIE, TIE_BOTHBAD),  # agree: both kinds of tie are one outcome
    "b4": (MODEL_B, TIE),  # disagree, human undecided
    "b5": (MODEL_B, MODEL_B),  # agree, both decided
    "b6": (TIE, MODEL_A),  # disagree, judge undecided
}


def test_agreement_with_and_without_ties():
    result = agreement(OUTCOMES)
    assert result.battles == 6
    assert result.with_ties == Rate(3, 6)
    assert result.with_ties.rate == 0.5
    # Both decided: b1, b2, b5; agree on b1 and b5.
    assert result.without_ties == Rate(2, 3)
    assert result.without_ties.rate == pytest.approx(2 / 3)


def test_paired_keeps_battles_both_sources_judged():
    judge = {"b1": MODEL_A, "b2": MODEL_B, "only-judge": TIE}
    human = {"b2": MODEL_B, "b1": MODEL_B, "only-human": MODEL_A}
    pairs = paired(judge, human)
    assert pairs == {"b1": (MODEL_A, MODEL_B), "b2": (MODEL_B, MODEL_B)}
    result = agreement(pairs)
    assert (result.with_ties, result.without_ties) == (Rate(1, 2), Rate(1, 2))


def test_nothing_to_compare_has_no_rate():
    result = agreement({"b": (TIE, MODEL_A)})
    assert result.without_ties == Rate(0, 0) and result.without_ties.rate is None
    assert agreement({}).with_ties.rate is None


def test_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="unknown outcome"):
        agreement({"b": (MODEL_A, "draw")})


def test_position_consistency_from_combined_orders():
    results = [
        combine(Verdict("A>>B", FIVE), Verdict("B>>A", FIVE), RULE_TIE),  # same label
        combine(Verdict("A>>B", FIVE), Verdict("B>A", FIVE), RULE_TIE),  # same winner only
        combine(Verdict("A>B", FIVE), Verdict("A>B", FIVE), RULE_TIE),  # flipped with position
        combine(Verdict("A=B", FIVE), Verdict("A=B", FIVE), RULE_TIE),  # same label
    ]
    consistency = position_consistency(results)
    assert consistency.direction == Rate(3, 4)
    assert consistency.exact == Rate(2, 4)


def test_self_enhancement_flags_the_judge_and_its_family():
    contestants = [
        ("qwen2.5-7b-instruct", "qwen"),
        ("qwen2.5-1.5b-instruct", "Qwen "),
        ("llama-3.1-8b", "llama"),
        ("mystery-model", None),
    ]
    flags = self_enhancement("Qwen/Qwen2.5-7B-Instruct", "qwen", contestants)
    assert flags == {
        "qwen2.5-7b-instruct": "is the judge model",
        "qwen2.5-1.5b-instruct": "shares the judge's family 'qwen'",
    }
    assert self_enhancement("llama-3.1-8b", None, contestants) == {
        "llama-3.1-8b": "is the judge model"
    }
    assert self_enhancement("gpt-judge", "openai", contestants) == {}
