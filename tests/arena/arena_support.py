"""Helpers shared by the arena tests (imported explicitly; conftest.py only holds fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

BACKENDS = ("sqlite", "postgresql")


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


def models_file(directory: Path, endpoint: str, names: list[str]) -> Path:
    path = directory / "models.yaml"
    lines = ["models:"]
    for name in names:
        lines += [
            f"  - name: {name}",
            f"    endpoint: {endpoint}",
            f"    display_name: {name.title()}",
            "    organization: test-org",
            "    license: apache-2.0",
            "    price_per_mtok: 0.5",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def fresh_pg_database(base_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + "/" + name
