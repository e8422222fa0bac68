"""Battles aggregated into unique (model pair, outcome) cells.

A leaderboard of millions of battles has only a few thousand distinct pairs,
so every fit and every bootstrap round works on these cells, never on rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The public Chatbot Arena battle format's `winner` values, in code order.
OUTCOMES: tuple[str, ...] = ("model_a", "model_b", "tie", "tie (bothbad)")
WIN_A, WIN_B, TIE, TIE_BOTHBAD = range(len(OUTCOMES))
_OUTCOME_CODE = {name: code for code, name in enumerate(OUTCOMES)}
# bincount over every possible cell is faster than sorting keys while the
# dense key space stays below this many cells.
_DENSE_KEY_LIMIT = 1 << 26


@dataclass(frozen=True)
class PairCounts:
    """Per-pair outcome counts; pairs are unique with ``i < j``.

    ``counts[k] = [i_wins, j_wins, ties, both_bad]`` for pair ``(i[k], j[k])``,
    the layout of the leaderbot / Chatbot Arena aggregate files.
    """

    models: tuple[str, ...]
    i: np.ndarray
    j: np.ndarray
    counts: np.ndarray

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n_battles(self) -> int:
        return int(self.counts.sum())

    @property
    def wins_i(self) -> np.ndarray:
        return self.counts[:, WIN_A]

    @property
    def wins_j(self) -> np.ndarray:
        return self.counts[:, WIN_B]

    @property
    def ties(self) -> np.ndarray:
        """Both kinds of tie: they have the same likelihood (half a win each way)."""
        return self.counts[:, TIE] + self.counts[:, TIE_BOTHBAD]

    def votes_per_model(self) -> np.ndarray:
        total = self.counts.sum(axis=1)
        return np.bincount(self.i, total, self.n_models) + np.bincount(self.j, total, self.n_models)

    def to_battles(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Expands back into one (a, b, outcome code) row per battle, i as model A."""
        reps = self.counts.astype(np.int64)
        cell_outcome = np.tile(np.arange(len(OUTCOMES)), len(self.i))
        rows = reps.ravel()
        a = np.repeat(np.repeat(self.i, len(OUTCOMES)), rows)
        b = np.repeat(np.repeat(self.j, len(OUTCOMES)), rows)
        return a, b, np.repeat(cell_outcome, rows)

    def subset(self, mask: np.ndarray) -> PairCounts:
        return PairCounts(self.models, self.i[mask], self.j[mask], self.counts[mask])


def _index_models(
    model_a: Sequence[str] | np.ndarray,
    model_b: Sequence[str] | np.ndarray,
    models: Sequence[str] | None,
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    a = np.asarray(model_a) if isinstance(model_a, np.ndarray) else None
    if a is not None and np.issubdtype(a.dtype, np.integer):
        if models is None:
            raise ValueError("integer model indices need the `models` list")
        ia, ib = a.astype(np.int64), np.asarray(model_b).astype(np.int64)
        names = tuple(models)
        if len(ia) and (min(ia.min(), ib.min()) < 0 or max(ia.max(), ib.max()) >= len(names)):
            raise ValueError("model index out of range of `models`")
        return names, ia, ib
    names = tuple(sorted(set(model_a).union(model_b))) if models is None else tuple(models)
    lookup = {m: k for k, m in enumerate(names)}
    try:
        ia = np.fromiter(map(lookup.__getitem__, model_a), np.int64, len(model_a))
        ib = np.fromiter(map(lookup.__getitem__, model_b), np.int64, len(model_b))
    except KeyError as err:
        raise ValueError(f"battle names unknown model {err.args[0]!r}") from None
    return names, ia, ib


def _outcome_codes(winner: Sequence[str] | np.ndarray) -> np.ndarray:
    w = winner if isinstance(winner, np.ndarray) else None
    if w is not None and np.issubdtype(w.dtype, np.integer):
        if len(w) and (w.min() < 0 or w.max() >= len(OUTCOMES)):
            raise ValueError(f"outcome codes must lie in 0..{len(OUTCOMES) - 1}")
        return w.astype(np.int64)
    try:
        return np.fromiter(map(_OUTCOME_CODE.__getitem__, winner), np.int64, len(winner))
    except KeyError as err:
        raise ValueError(
            f"unknown winner {err.args[0]!r}; expected one of {', '.join(OUTCOMES)}"
        ) from None


def aggregate(
    model_a: Sequence[str] | np.ndarray,
    model_b: Sequence[str] | np.ndarray,
    winner: Sequence[str] | np.ndarray,
    models: Sequence[str] | None = None,
) -> PairCounts:
    """Counts battles per unordered pair and outcome.

    Names or integer indices (with ``models``) for the two sides; winners as the
    public format's strings or as codes into ``OUTCOMES``.
    """
    if not len(model_a) == len(model_b) == len(winner):
        raise ValueError("model_a, model_b and winner must have the same length")
    names, ia, ib = _index_models(model_a, model_b, models)
    outcome = _outcome_codes(winner)
    if np.any(ia == ib):
        raise ValueError("a battle needs two different models")
    swap = ia > ib
    lo, hi = np.where(swap, ib, ia), np.where(swap, ia, ib)
    # Swapping sides turns an A win into a B win; ties stay ties.
    outcome = np.where(swap & (outcome < TIE), 1 - outcome, outcome)
    p, n_out = len(names), len(OUTCOMES)
    key = (lo * p + hi) * n_out + outcome
    if p * p * n_out <= _DENSE_KEY_LIMIT:
        dense = np.bincount(key, minlength=p * p * n_out).reshape(p * p, n_out)
        pair_keys = np.flatnonzero(dense.any(axis=1))
        table = dense[pair_keys]
    else:
        keys, cnt = np.unique(key, return_counts=True)
        pair_keys, inverse = np.unique(keys // n_out, return_inverse=True)
        table = np.zeros((len(pair_keys), n_out), np.int64)
        table[inverse, keys % n_out] = cnt
    return PairCounts(names, pair_keys // p, pair_keys % p, table.astype(np.float64))


def from_pair_table(models: Sequence[str], pairs: np.ndarray, table: np.ndarray) -> PairCounts:
    """Builds counts from ``[[i, j], ...]`` and ``[[i_wins, j_wins, tie, both_bad], ...]``."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    table = np.asarray(table, dtype=np.float64).reshape(-1, len(OUTCOMES))
    if len(pairs) != len(table):
        raise ValueError("pair list and count table differ in length")
    if np.any(table < 0):
        raise ValueError("counts must not be negative")
    swap = pairs[:, 0] > pairs[:, 1]
    table = table.copy()
    table[swap, :2] = table[swap, 1::-1]
    lo, hi = pairs.min(axis=1), pairs.max(axis=1)
    if np.any(lo == hi):
        raise ValueError("a pair needs two different models")
    p = len(models)
    keys, inverse = np.unique(lo * p + hi, return_inverse=True)
    merged = np.zeros((len(keys), len(OUTCOMES)))
    np.add.at(merged, inverse, table)
    return PairCounts(tuple(models), keys // p, keys % p, merged)


def load_leaderbot_json(path: str | Path) -> PairCounts:
    """Reads the leaderbot / Chatbot Arena aggregate format (models, X, Y)."""
    data = json.loads(Path(path).read_text())
    return from_pair_table(data["models"], np.array(data["X"]), np.array(data["Y"]))
