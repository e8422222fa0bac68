"""Board payloads: a fit of some counts (or style rows) as the API returns it.

Every model the fit rates is listed, but only models with enough battles and
inside the main strongly connected component of the win graph are *ranked*
("rows"); the others are "preliminary", with their rating and no rank. A
model that never lost has no finite rating (the fit holds it with a ridge and
flags it), and a handful of battles say little: ranked, such a model with one
vote would head a board of a million votes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from arenastack_arena.ratings import (
    OUTCOMES,
    EloScale,
    PairCounts,
    aggregate,
    build_leaderboard,
    fit_style_controlled,
    observed_win_rates,
    predicted_win_rates,
    public_ranks,
)
from arenastack_arena.ratings.bt import PairData, mle_exists
from arenastack_arena.ratings.counts import from_pair_table

HEATMAP_MODELS = 20
_OUTCOME = {name: k for k, name in enumerate(OUTCOMES)}


def counts_from_rows(
    rows: list[tuple[str, str, str, int]], seed: PairCounts | None = None
) -> PairCounts:
    """(model_a, model_b, winner, count) rows, plus optional seed counts, as PairCounts."""
    columns = tuple(zip(*rows, strict=True)) or ((), (), (), ())
    return counts_of(*(np.array(c, dtype=object) for c in columns), seed=seed)


def counts_of(
    a: np.ndarray, b: np.ndarray, winner: np.ndarray, n: np.ndarray, seed: PairCounts | None
) -> PairCounts:
    """Counts over the models that appear (in these rows or the seed), names sorted."""
    names = sorted(set(a) | set(b) | set(seed.models if seed else ()))
    index = {m: k for k, m in enumerate(names)}
    pairs = np.stack([_codes(a, index), _codes(b, index)], axis=1)
    table = np.zeros((len(a), len(OUTCOMES)))
    table[np.arange(len(a)), _codes(winner, _OUTCOME)] = n.astype(np.float64)
    if seed is not None:
        remap = np.array([index[m] for m in seed.models])
        pairs = np.concatenate([pairs, np.stack([remap[seed.i], remap[seed.j]], axis=1)])
        table = np.concatenate([table, seed.counts])
    return from_pair_table(names, pairs, table)


def _codes(values: np.ndarray, index: dict[str, int]) -> np.ndarray:
    return np.fromiter(map(index.__getitem__, values), np.int64, len(values))


def usable(scale: EloScale, names: tuple[str, ...] | list[str]) -> EloScale:
    """The anchor only applies to boards where the anchor model has votes."""
    if scale.anchor is not None and scale.anchor not in names:
        return EloScale(scale.scale, scale.base, scale.init)
    return scale


def split_preliminary(
    rows: list[dict[str, Any]], battles: Mapping[str, int], min_battles: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ranked, preliminary) rows, each row's votes set to its model's battles.

    Preliminary rows keep their rating and lose their rank; the caller ranks the rest.
    """
    ranked, preliminary = [], []
    for row in rows:
        row["votes"] = int(battles[row["model"]])
        if row["flagged"] or row["votes"] < min_battles:
            row["rank"] = None
            preliminary.append(row)
        else:
            ranked.append(row)
    return ranked, preliminary


def board_payload(
    counts: PairCounts,
    scale: EloScale,
    rounds: int,
    min_battles: int = 0,
    battles: PairCounts | None = None,
) -> dict[str, Any]:
    """The board of ``counts``; ``battles`` (same models) when games are weighted.

    A human vote is one game and one battle; a judge's battle may be two games,
    and a strong win counts several: the fit takes the games, the threshold and
    the votes shown take the battles.
    """
    board = build_leaderboard(counts, scale, rounds=rounds, seed=0)
    payload = board.as_dict()
    tally = (battles or counts).votes_per_model()
    ranked, preliminary = split_preliminary(
        payload["rows"], dict(zip(counts.models, tally, strict=True)), min_battles
    )
    # Ranks among the ranked models only: a preliminary model's wide interval must not
    # push everyone down a place.
    lower = np.array([r["lower"] for r in ranked])
    upper = np.array([r["upper"] for r in ranked])
    for row, rank in zip(ranked, public_ranks(lower, upper).tolist(), strict=True):
        row["rank"] = int(rank)
    top = [counts.models.index(r["model"]) for r in ranked[:HEATMAP_MODELS]]
    observed = observed_win_rates(counts)[np.ix_(top, top)]
    predicted = predicted_win_rates(board.fit.theta)[np.ix_(top, top)]
    return {
        **payload,
        "rows": ranked,
        "preliminary": preliminary,
        "votes": int((battles or counts).n_battles),
        "games": counts.n_battles,
        "heatmap": {
            "models": [counts.models[k] for k in top],
            "observed": [
                [None if np.isnan(x) else round(float(x), 4) for x in row] for row in observed
            ],
            "predicted": [[round(float(x), 4) for x in row] for row in predicted],
        },
    }


def style_payload(
    rows: list[tuple[Any, ...]],
    scale: EloScale,
    min_battles: int = 0,
    battles: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The style-controlled board of (model_a, model_b, winner, 8 style counts) rows.

    ``battles`` per model when rows are games (a judge's); else each row is a battle.
    """
    names = tuple(sorted({r[0] for r in rows} | {r[1] for r in rows}))
    index = {m: k for k, m in enumerate(names)}
    a = np.array([index[r[0]] for r in rows])
    b = np.array([index[r[1]] for r in rows])
    outcome = np.array([_OUTCOME[r[2]] for r in rows])
    styles = np.array([r[3:11] for r in rows], dtype=float)
    fit = fit_style_controlled(
        names, a, b, outcome, styles[:, :4], styles[:, 4:], scale=usable(scale, names)
    )
    counts = aggregate(a, b, outcome, models=names)
    present = counts.votes_per_model() > 0
    _, outside = mle_exists(PairData.from_counts(counts), present)
    if battles is None:
        per_model = np.bincount(a, minlength=len(names)) + np.bincount(b, minlength=len(names))
        battles = dict(zip(names, per_model.tolist(), strict=True))
    ranked, preliminary = split_preliminary(
        [
            {
                "model": names[k],
                "rating": float(fit.ratings[k]),
                "lower": None,
                "upper": None,
                "rank": None,
                "votes": 0,
                "flagged": bool(outside[k]),
            }
            for k in np.argsort(-fit.ratings)
        ],
        battles,
        min_battles,
    )
    for n, row in enumerate(ranked):
        row["rank"] = n + 1
    return {
        "method": "style-controlled MLE (no intervals)",
        "votes": sum(battles.values()) // 2,
        "games": len(rows),
        "coefficients": fit.coefficients,
        "rows": ranked,
        "preliminary": preliminary,
    }
