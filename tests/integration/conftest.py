"""Integration fixtures for running the operator; the cluster fixtures live in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_runner import OperatorRunner


@pytest.fixture
def operator_runner(
    cluster, crds: list[str], operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[OperatorRunner]:
    """Starts operator processes with the chart's ServiceAccount credentials; stops them (SIGTERM)
    at teardown. Every test starts with no election lease, so earlier tests cannot leak a leader."""
    runner = OperatorRunner(operator_kubeconfig, tmp_path)
    runner.clear_lease(cluster)
    yield runner
    runner.stop_all()
