"""`make demo` must always run end to end: run its command in a state folder of its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from arenastack_cluster.cluster import REPO_ROOT

pytestmark = pytest.mark.integration


def _demo(action: str, state) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arenastack_cluster.cli", "demo", action],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        env={**os.environ, "ARENASTACK_STATE": str(state)},
    )


def test_demo_up_shows_the_stack_and_down_stops_it(tmp_path):
    state = tmp_path / "demo"
    try:
        proc = _demo("up", state)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert "rayclusters.ray.io" in out
        assert "inferencedeployments.arenastack.io" in out
        assert "GET" in out and "/readyz  -> 200" in out
        assert "raycluster.ray.io/demo" in out  # the sample reached the API
        assert "arenastack_operator_reconciles_total" in out  # the operator's own metrics
        # Running it again is harmless.
        again = _demo("up", state)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
    finally:
        down = _demo("down", state)
    assert down.returncode == 0, down.stderr
    assert not list((state / "run").glob("*.pid"))
