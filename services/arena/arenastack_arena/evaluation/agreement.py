"""How far a judge can be trusted: agreement with people, position consistency, self-preference.

Agreement follows the MT-Bench paper's two views: "with ties" (outcomes match
exactly, both kinds of tie being one outcome) and "without ties" (only battles
where both sources picked a winner, so a source that ties often is not
rewarded or punished for it).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

from arenastack_arena.evaluation.scales import MODEL_A, MODEL_B, TIE, TIE_BOTHBAD
from arenastack_arena.evaluation.verdicts import Combined

_OUTCOMES = frozenset((MODEL_A, MODEL_B, TIE, TIE_BOTHBAD))


@dataclass(frozen=True)
class Rate:
    agree: int
    total: int

    @property
    def rate(self) -> float | None:
        """agree / total, or None when there was nothing to compare."""
        return self.agree / self.total if self.total else None


@dataclass(frozen=True)
class Agreement:
    battles: int  # battles with an outcome from both sources
    with_ties: Rate
    without_ties: Rate


def paired(
    first: Mapping[Hashable, str], second: Mapping[Hashable, str]
) -> dict[Hashable, tuple[str, str]]:
    """Both sources' outcomes on the battles both judged (say, judge and human votes)."""
    return {key: (first[key], second[key]) for key in first if key in second}


def _folded(outcome: str) -> str:
    if outcome not in _OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    return TIE if outcome == TIE_BOTHBAD else outcome


def agreement(outcomes: Mapping[Hashable, tuple[str, str]]) -> Agreement:
    """Agreement of two sources from (first source's, second source's) outcome per battle."""
    agree = agree_decided = decided = 0
    for first, second in outcomes.values():
        a, b = _folded(first), _folded(second)
        agree += a == b
        if a != TIE and b != TIE:
            decided += 1
            agree_decided += a == b
    return Agreement(len(outcomes), Rate(agree, len(outcomes)), Rate(agree_decided, decided))


@dataclass(frozen=True)
class Consistency:
    direction: Rate  # both orders named the same winner
    exact: Rate  # both orders gave the same label (five-scale strength included)


def position_consistency(results: Iterable[Combined]) -> Consistency:
    """How often a judge's verdict survives swapping the answers."""
    total = same_winner = same_label = 0
    for result in results:
        total += 1
        same_winner += result.consistent
        same_label += result.exact
    return Consistency(Rate(same_winner, total), Rate(same_label, total))


def _base_name(model: str) -> str:
    # Served names drop the hub organisation ("Qwen/Qwen2.5-7B" is served as
    # "qwen2.5-7b"), so compare the last path part, case-folded.
    return model.rsplit("/", 1)[-1].strip().casefold()


def self_enhancement(
    judge_model: str,
    judge_family: str | None,
    contestants: Iterable[tuple[str, str | None]],
) -> dict[str, str]:
    """Contestants a judge may favour, (name, family) each, mapped to the reason.

    Judges tend to prefer their own answers and those of their relatives, so
    their ratings deserve a flag (or a different judge).
    """
    judge_name = _base_name(judge_model)
    family = judge_family.strip().casefold() if judge_family else None
    flagged: dict[str, str] = {}
    for name, contestant_family in contestants:
        if _base_name(name) == judge_name:
            flagged[name] = "is the judge model"
        elif family and contestant_family and contestant_family.strip().casefold() == family:
            flagged[name] = f"shares the judge's family {judge_family!r}"
    return flagged
