"""The run's judge board and judge report, from the battles the arena stores for the run.

Rows are the export's objects (``battleId``, ``modelA``, ``modelB``, ``games``,
``consistent``, ...), so battles judged before a restart count like the others. Ratings are
the ratings engine's Bradley-Terry fit with bootstrap intervals on the Elo scale (mean 1000);
as on the arena's boards, a contestant with fewer than ``MIN_BATTLES`` battles or flagged by
the fit (outside the main strongly connected win graph) is preliminary: shown, not ranked.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from arenastack_arena.evaluation.agreement import Agreement, Rate, agreement, self_enhancement
from arenastack_arena.evaluation.config import RunConfig
from arenastack_arena.evaluation.scales import MODEL_A, TIE, TIE_BOTHBAD
from arenastack_arena.ratings import EloScale, build_leaderboard, public_ranks
from arenastack_arena.ratings.counts import OUTCOMES, from_pair_table

MIN_BATTLES = 10  # the arena's ARENA_MIN_BATTLES default
BOOTSTRAP_ROUNDS = 100
_OUTCOME = {name: k for k, name in enumerate(OUTCOMES)}
Row = Mapping[str, Any]


def _games(row: Row) -> list[tuple[str, float]]:
    out = []
    for game in row.get("games") or []:
        winner, weight = game.get("winner"), game.get("weight", 1)
        if winner in _OUTCOME and isinstance(weight, int | float) and weight > 0:
            out.append((winner, float(weight)))
    return out


def battle_outcome(games: Iterable[tuple[str, float]] | Iterable[Any]) -> str | None:
    """A battle's outcome from its games, as the arena's agreement counts it: one game, its
    winner; two that agree, that winner; two that disagree, a tie. Both ties are one tie."""
    winners = {TIE if g[0] == TIE_BOTHBAD else g[0] for g in games}
    if not winners:
        return None
    return winners.pop() if len(winners) == 1 else TIE


def _score(outcome: str, model_is_a: bool) -> float:
    if outcome == TIE:
        return 0.5
    return 1.0 if (outcome == MODEL_A) == model_is_a else 0.0


def win_rates_vs_baseline(rows: Iterable[Row], baseline: str | None) -> dict[str, float]:
    """Each model's share of its battles against ``baseline`` won, a tie counting half."""
    if baseline is None:
        return {}
    points: Counter[str] = Counter()
    battles: Counter[str] = Counter()
    for row in rows:
        a, b = row.get("modelA"), row.get("modelB")
        if baseline not in (a, b) or a == b:
            continue
        outcome = battle_outcome(_games(row))
        if outcome is None:
            continue
        other, other_is_a = (b, False) if a == baseline else (a, True)
        points[other] += _score(outcome, other_is_a)
        battles[other] += 1
    return {m: points[m] / n for m, n in battles.items()}


def battles_per_model(rows: Iterable[Row]) -> Counter[str]:
    out: Counter[str] = Counter()
    for row in rows:
        if _games(row):
            out[row["modelA"]] += 1
            out[row["modelB"]] += 1
    return out


def position_consistency(rows: Iterable[Row]) -> Rate:
    """Battles judged in both orders whose orders named the same winner."""
    flags = [row.get("consistent") for row in rows]
    decided = [f for f in flags if isinstance(f, bool)]
    return Rate(sum(decided), len(decided))


def ranking(
    rows: Sequence[Row],
    baseline: str | None = None,
    seed: int = 0,
    min_battles: int = MIN_BATTLES,
    rounds: int = BOOTSTRAP_ROUNDS,
) -> list[dict[str, Any]]:
    """status.ranking: ranked models best first, then the preliminary ones."""
    names = sorted(
        {r["modelA"] for r in rows if _games(r)} | {r["modelB"] for r in rows if _games(r)}
    )
    if len(names) < 2:
        return []
    index = {m: k for k, m in enumerate(names)}
    pairs, table = [], []
    for row in rows:
        for winner, weight in _games(row):
            cell = [0.0] * len(OUTCOMES)
            cell[_OUTCOME[winner]] = weight
            pairs.append((index[row["modelA"]], index[row["modelB"]]))
            table.append(cell)
    counts = from_pair_table(names, np.array(pairs), np.array(table))
    board = build_leaderboard(counts, EloScale(), "bootstrap", rounds=rounds, seed=seed)
    per_model = battles_per_model(rows)
    rates = win_rates_vs_baseline(rows, baseline)
    entries = []
    for row in board.rows:
        entries.append(
            {
                "name": row.model,
                "rating": _round(row.rating),
                "ciLower": _round(row.lower),
                "ciUpper": _round(row.upper),
                "rank": None,
                "battles": per_model[row.model],
                "winRateVsBaseline": _round(rates[row.model], 4) if row.model in rates else None,
                "preliminary": bool(row.flagged or per_model[row.model] < min_battles),
            }
        )
    ranked = [e for e in entries if not e["preliminary"]]
    if ranked:
        # Ranks among ranked models only, by the public rule: a preliminary model's wide
        # interval must not push the others down.
        lower = np.array([e["ciLower"] for e in ranked])
        upper = np.array([e["ciUpper"] for e in ranked])
        for entry, rank in zip(ranked, public_ranks(lower, upper).tolist(), strict=True):
            entry["rank"] = int(rank)
    preliminary = [e for e in entries if e["preliminary"]]
    return ranked + preliminary


def _round(value: float, digits: int = 2) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None


def add_costs(
    entries: Sequence[dict[str, Any]], config: RunConfig, tokens: Mapping[str, int]
) -> None:
    """Each contestant's output tokens and, where it has a price per million, their cost.
    The tokens are those of the answers this runner process generated: after a restart the
    answers stored before it are not asked again, and their tokens are not known."""
    prices = {c.name: c.price_per_million_tokens for c in config.contestants}
    for entry in entries:
        used = tokens.get(entry["name"])
        if used is None:
            continue
        entry["outputTokens"] = used
        price = prices.get(entry["name"])
        if price is not None:
            entry["cost"] = round(used * price / 1_000_000, 12)


def leader(entries: Sequence[Mapping[str, Any]]) -> str | None:
    """Rank 1 (the best rated of those sharing it); when nobody is ranked yet (a small
    evaluation: every contestant has few battles), the best rated, whose entry says it is
    preliminary. None without entries."""
    ranked = next((e["name"] for e in entries if e.get("rank") == 1), None)
    if ranked is not None or not entries:
        return ranked
    return max(entries, key=lambda e: e["rating"])["name"]


def self_enhanced(config: RunConfig, others: Iterable[str] = ()) -> list[str]:
    """Contestants that are the judge's model (by name or served model) or of its family."""
    judge = config.judge
    flagged: list[str] = []
    for c in config.contestants:
        by_name = self_enhancement(judge.model, judge.family, [(c.name, c.family)])
        by_model = self_enhancement(judge.model, judge.family, [(c.model, c.family)])
        if by_name or by_model:
            flagged.append(c.name)
    known = set(config.names)
    # fromArena battles may be of models that are not contestants: known by name only.
    extra = sorted(set(others) - known)
    flagged += list(self_enhancement(judge.model, judge.family, [(m, None) for m in extra]))
    return flagged


def human_agreement(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """status.judge.humanAgreement from GET /api/agreement's reply."""
    battles = payload.get("battles")
    if not isinstance(battles, int):
        return None
    without = payload.get("withoutTies")
    return {
        "battles": battles,
        "withTies": _rate(payload.get("withTies")),
        "withoutTies": _rate(without.get("agreement") if isinstance(without, Mapping) else None),
    }


def _rate(value: Any) -> float | None:
    return round(float(value), 4) if isinstance(value, int | float) else None


def local_human_agreement(human: Mapping[str, str], rows: Iterable[Row]) -> dict[str, Any]:
    """The same measure over this run only: the judged battles' outcomes against the human
    votes of the arena battles they re-judged (``human``: arena battle id -> winner)."""
    pairs = {}
    for row in rows:
        arena_id = row.get("arenaBattleId")
        outcome = battle_outcome(_games(row))
        if arena_id in human and outcome is not None:
            pairs[arena_id] = (human[arena_id], outcome)
    result: Agreement = agreement(pairs)
    return {
        "battles": result.battles,
        "withTies": _rate(result.with_ties.rate),
        "withoutTies": _rate(result.without_ties.rate),
    }


def human_ratings(board: Mapping[str, Any], names: Iterable[str]) -> dict[str, float]:
    """Ratings on the human board (ranked or preliminary rows) of the given model names."""
    wanted = set(names)
    out = {}
    for row in [*(board.get("rows") or []), *(board.get("preliminary") or [])]:
        if isinstance(row, Mapping) and row.get("model") in wanted:
            rating = row.get("rating")
            if isinstance(rating, int | float) and math.isfinite(rating):
                out[row["model"]] = round(float(rating), 2)
    return out


def judge_report(
    config: RunConfig,
    rows: Sequence[Row],
    flagged: Sequence[str],
    agreement_with_humans: Mapping[str, Any] | None,
) -> dict[str, Any]:
    consistency = position_consistency(rows).rate
    report: dict[str, Any] = {
        "model": config.judge.model,
        "source": config.judge.verdict_source,
        "positionConsistency": round(consistency, 4) if consistency is not None else None,
        "selfEnhancement": list(flagged),
    }
    if agreement_with_humans is not None:
        report["humanAgreement"] = dict(agreement_with_humans)
    return report


def results(config: RunConfig, export_url: str) -> dict[str, str]:
    return {"arena": config.arena.url, "export": export_url}


def short_summary(
    progress: Mapping[str, int], leader_name: str | None, consistency: float | None
) -> str:
    """One line for /dev/termination-log (kubectl shows it in the pod status)."""
    text = (
        f"judged {progress['judged']}/{progress['planned']} battles, {progress['errors']} "
        f"errors, {progress['parseErrors']} unparseable verdicts"
    )
    if leader_name:
        text += f"; leader {leader_name}"
    if consistency is not None:
        text += f"; position consistency {consistency:.2f}"
    return text
