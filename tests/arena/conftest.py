"""Fixtures for the arena tests: the real battle counts, PostgreSQL, the model double, the service.

Helpers live in arena_support.py and are imported from there explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from arena_processes import Service, model_double, postgres, start_service, stop
from arena_support import BACKENDS, fresh_pg_database, models_file

from arenastack_arena.ratings import PairCounts, load_leaderbot_json
from arenastack_cluster.arena_data import chatbot_arena_counts
from arenastack_cluster.processes import ClusterError


@pytest.fixture(scope="session")
def real_counts() -> PairCounts:
    try:
        return load_leaderbot_json(chatbot_arena_counts())
    except ClusterError as err:
        pytest.fail(f"real battle counts missing: {err}")


@pytest.fixture(scope="session")
def model_endpoint() -> Iterator[str]:
    with model_double() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres() as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def arena(request, tmp_path_factory, model_endpoint) -> Iterator[Service]:
    """The service on each backend, with two healthy models from its config file."""
    tmp = tmp_path_factory.mktemp(f"arena-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'arena.db'}"
    else:
        base = request.getfixturevalue("postgres_url")
        url = fresh_pg_database(base, f"arena_{request.module.__name__.split('.')[-1]}")
    service = start_service(url, models_file=models_file(tmp, model_endpoint, ["alpha", "beta"]))
    yield service
    stop(service.proc)
