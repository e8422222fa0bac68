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


# --- service fixtures: real PostgreSQL and SQLite, the real service process ---

from collections.abc import Iterator  # noqa: E402

from arena_processes import Service, model_double, postgres, start_service, stop  # noqa: E402

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def model_endpoint() -> Iterator[str]:
    with model_double() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres() as url:
        yield url


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


@pytest.fixture(scope="module", params=BACKENDS)
def arena(request, tmp_path_factory, model_endpoint) -> Iterator[Service]:
    """The service on each backend, with two healthy models from its config file."""
    tmp = tmp_path_factory.mktemp(f"arena-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'arena.db'}"
    else:
        base = request.getfixturevalue("postgres_url")
        url = _fresh_pg_database(base, f"arena_{request.module.__name__.split('.')[-1]}")
    service = start_service(url, models_file=models_file(tmp, model_endpoint, ["alpha", "beta"]))
    yield service
    stop(service.proc)


def _fresh_pg_database(base_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base_url.rsplit("/", 1)[0] + "/" + name
