"""One battle's judgments -> its games and the body posted to the arena (pure).

The judge's request for each order comes from ``template.render`` (fenced answers, the
battle's nonce); its reply is read by ``verdicts.parse_verdict`` with that nonce; both orders
become games by ``verdicts.combine``. What the arena stores is the contract's POST body.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arenastack_arena.evaluation.config import Judge, RunConfig
from arenastack_arena.evaluation.identity import ORDER_AB, ORDER_BA
from arenastack_arena.evaluation.planning import PlannedBattle
from arenastack_arena.evaluation.template import (
    REASON_MAX_CHARS,
    JudgeRequest,
    JudgeTemplate,
    render,
    verdict_json_schema,
)
from arenastack_arena.evaluation.verdicts import Game, Verdict, combine, mirror, weight

# The arena's limits (service/schema.py): texts are cut to fit rather than refused, since a
# long answer is still a result; categories outside its pattern are left out.
MAX_TEXT_CHARS = 64 * 1024
TRUNCATED = "\n[... truncated by the evaluation runner]"
# The structured verdict's JSON without the reason's text ({"reason": "", "verdict": "A>>B"}
# and whitespace the grammar allows) stays well under this many tokens.
VERDICT_TOKENS = 48
MIN_REASON_CHARS = 16
CATEGORY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,62}$")


@dataclass(frozen=True)
class OrderResult:
    """One order's judgment: a verdict, or the error of its last attempt."""

    order: str
    verdict: Verdict | None
    raw: str | None
    error: str | None = None


def judge_request(
    battle: PlannedBattle,
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    order: str,
    judge: Judge,
    template: JudgeTemplate,
    nonce: str,
) -> JudgeRequest:
    """The judge's messages for one order; "ba" shows model B's answers as assistant A."""
    shown = (answers_a, answers_b) if order == ORDER_AB else (answers_b, answers_a)
    return render(
        battle.prompt,
        list(shown[0]),
        list(shown[1]),
        scale=judge.scale,
        template=template,
        nonce=nonce,
        structured=judge.structured_output,
    )


def reason_budget(max_tokens: int) -> int:
    """Characters the reason may take so that the verdict after it still fits in the judge's
    max tokens: a token is at least one character, and the JSON around the reason and the
    verdict take under VERDICT_TOKENS. Without this bound a small judge's reason runs to the
    token limit and the cut JSON has no verdict."""
    return max(MIN_REASON_CHARS, min(REASON_MAX_CHARS, max_tokens - VERDICT_TOKENS))


def response_format(judge: Judge) -> dict[str, Any] | None:
    """vLLM's OpenAI server constrains the reply to this schema: every verdict parses."""
    if not judge.structured_output:
        return None
    schema = verdict_json_schema(judge.scale, reason_budget(judge.max_tokens))
    return {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}}


def games_of(results: Sequence[OrderResult], judge: Judge) -> tuple[tuple[Game, ...], bool | None]:
    """(games, whether the orders agreed) of judged orders; one order: its game, None."""
    by_order = {r.order: r.verdict for r in results}
    if any(v is None for v in by_order.values()):
        raise ValueError("a battle with a failed order has no games")
    first, second = by_order.get(ORDER_AB), by_order.get(ORDER_BA)
    if first is not None and second is not None:
        combined = combine(first, second, judge.rule, judge.strong_win_weight)
        return combined.games, combined.consistent
    only = first or second
    assert only is not None
    if only is second:
        # Only the swapped order was judged: name the winner from model A's side.
        only = mirror(only)
    return (Game(only.winner, weight(only, judge.strong_win_weight)),), None


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TEXT_CHARS:
        return text
    return text[: MAX_TEXT_CHARS - len(TRUNCATED)] + TRUNCATED


def battle_body(
    config: RunConfig,
    battle: PlannedBattle,
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    results: Sequence[OrderResult],
    games: Sequence[Game],
    consistent: bool | None,
) -> dict[str, Any]:
    """The POST /api/judgments body of one judged battle."""
    category = battle.prompt.category
    return {
        "evaluation": config.evaluation.key,
        "run": config.evaluation.run,
        "battleId": battle.id,
        "arenaBattleId": battle.arena_battle_id,
        "source": config.judge.verdict_source,
        "category": category if CATEGORY_PATTERN.match(category) else None,
        "modelA": battle.model_a,
        "modelB": battle.model_b,
        "turns": [
            {"prompt": _cut(q), "answerA": _cut(a), "answerB": _cut(b)}
            for q, a, b in zip(battle.prompt.turns, answers_a, answers_b, strict=True)
        ],
        "judgments": [
            {
                "order": r.order,
                "verdict": r.verdict.label if r.verdict else None,
                "reason": _cut(r.verdict.reason) if r.verdict else None,
                "raw": _cut(r.raw),
                "error": _cut(r.error),
            }
            for r in results
        ],
        # The arena counts whole games: weights are 1 or the strong-win weight.
        "games": [{"winner": g.winner, "weight": round(g.weight)} for g in games],
        "consistent": consistent,
    }
