"""The independent reference implementations the ratings are checked against.

FastChat 0.2.36's ``fastchat/serve/monitor/elo_analysis.py`` imports plotly,
pytz and FastChat's model registry and log crawler at module level, none of
which its rating functions use. Rather than pull those in, this loads the
installed file's source and executes only the rating functions, unchanged,
with the names they reference (numpy, pandas, math, defaultdict; tqdm's
progress bar is replaced by a silent pass-through).
"""

from __future__ import annotations

import ast
import importlib.util
import math
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

FASTCHAT_FUNCTIONS = ("compute_elo", "compute_elo_mle_with_tie", "get_bootstrap_result")
WINNER_NAMES = ("model_a", "model_b", "tie", "tie (bothbad)")


def load_fastchat_elo() -> SimpleNamespace:
    spec = importlib.util.find_spec("fastchat")
    assert spec is not None and spec.origin, "fschat is not installed"
    source_path = Path(spec.origin).parent / "serve" / "monitor" / "elo_analysis.py"
    tree = ast.parse(source_path.read_text())
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in FASTCHAT_FUNCTIONS]
    assert len(keep) == len(FASTCHAT_FUNCTIONS), "elo_analysis.py lacks an expected function"
    namespace = {"np": np, "pd": pd, "math": math, "tqdm": _quiet_tqdm, "defaultdict": defaultdict}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(source_path), "exec"), namespace)
    return SimpleNamespace(**{name: namespace[name] for name in FASTCHAT_FUNCTIONS})


def _quiet_tqdm(iterable, **kwargs):
    return iterable


def battles_frame(models, a, b, outcome) -> pd.DataFrame:
    """Battles in the public Chatbot Arena format that FastChat's code reads."""
    names = np.asarray(models, dtype=object)
    return pd.DataFrame(
        {
            "model_a": names[a],
            "model_b": names[b],
            "winner": np.asarray(WINNER_NAMES, dtype=object)[outcome],
        }
    )


def center_elo(ratings: dict[str, float] | pd.Series, models) -> np.ndarray:
    """Ratings in ``models`` order shifted to mean 1000, to compare fits anchored differently."""
    values = np.array([float(ratings[m]) for m in models])
    return values - values.mean() + 1000.0


def evalica_elo(counts) -> np.ndarray:
    """evalica's Bradley-Terry (Newman's iteration, run to 1e-12) on the Elo scale, mean 1000."""
    import evalica

    outcomes = (evalica.Winner.X, evalica.Winner.Y, evalica.Winner.Draw)
    wins_i, wins_j, ties = counts.wins_i, counts.wins_j, counts.ties
    xs, ys, winners, weights = [], [], [], []
    for k in range(len(counts.i)):
        for outcome, weight in zip(outcomes, (wins_i[k], wins_j[k], ties[k]), strict=True):
            if weight > 0:
                xs.append(counts.models[counts.i[k]])
                ys.append(counts.models[counts.j[k]])
                winners.append(outcome)
                weights.append(float(weight))
    result = evalica.bradley_terry(
        xs,
        ys,
        winners,
        weights=weights,
        index=pd.Index(counts.models),
        tolerance=1e-13,
        limit=100000,
    )
    log_scores = np.log(result.scores.reindex(counts.models).to_numpy())
    return 1000.0 + 400.0 / math.log(10.0) * (log_scores - log_scores.mean())


def choix_elo(counts) -> np.ndarray:
    """choix's iterative Luce spectral ranking on the half-win matrix, Elo scale, mean 1000."""
    import choix

    p = counts.n_models
    half_wins = np.zeros((p, p))
    np.add.at(half_wins, (counts.i, counts.j), counts.wins_i + 0.5 * counts.ties)
    np.add.at(half_wins, (counts.j, counts.i), counts.wins_j + 0.5 * counts.ties)
    params = choix.ilsr_pairwise_dense(half_wins, alpha=0.0, max_iter=100000, tol=1e-13)
    return 1000.0 + 400.0 / math.log(10.0) * (params - params.mean())
