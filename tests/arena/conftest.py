"""Shared fixtures for the arena tests: the real battle counts and synthetic battles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arenastack_arena.ratings import PairCounts, load_leaderbot_json

REAL_COUNTS = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "arena"
    / "chatbotarena_20240814.json"
)


@pytest.fixture(scope="session")
def real_counts() -> PairCounts:
    if not REAL_COUNTS.exists():
        pytest.fail(f"real battle counts missing: {REAL_COUNTS}")
    return load_leaderbot_json(REAL_COUNTS)


def synthetic_battles(
    n_models: int, n_battles: int, seed: int, tie_rate: float = 0.2
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Battles from a known Bradley-Terry model with ties: names, a, b, outcome, truth."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(0.0, 1.0, n_models)
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models
    p_a = 1.0 / (1.0 + np.exp(-(truth[a] - truth[b])))
    u = rng.random(n_battles)
    tie = u < tie_rate
    outcome = np.where(
        tie, rng.choice([2, 3], n_battles), np.where(rng.random(n_battles) < p_a, 0, 1)
    )
    names = [f"model-{k:03d}" for k in range(n_models)]
    return names, a, b, outcome, truth
