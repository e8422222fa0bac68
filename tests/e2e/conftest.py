"""e2e fixtures: the vLLM environment, a tiny model, two real engines for the session, and
the chart's operator on the local node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from vllm_processes import SERVED, Process, start_engine, tiny_model, tiny_spec, vllm_env_python

from arenastack_cluster.cluster import LocalCluster
from arenastack_cluster.operatorchart import operator_installed

# Few sequences per batch, so a modest burst queues requests (vllm:num_requests_waiting > 0).
MAX_NUM_SEQS = 4
# The local node has this machine's 2 cores, and KubeRay's samples (applied unchanged) ask for
# both: the chart's operator requests none (its limit stays).
NO_CPU_REQUEST = {"operator.resources.requests.cpu": "0"}


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    return vllm_env_python()


@pytest.fixture(scope="session")
def model_dir(vllm_python: Path) -> Path:
    return tiny_model(vllm_python)


@pytest.fixture(scope="session")
def engines(
    vllm_python: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Process]]:
    """Two engines of the same tiny model, each pinned to its own core, started once."""
    workdir = tmp_path_factory.mktemp("engines")
    spec = tiny_spec(model_dir, SERVED, maxNumSeqs=MAX_NUM_SEQS)
    started = [start_engine(vllm_python, spec, workdir, core=core) for core in (0, 1)]
    try:
        for process in started:
            process.wait_http("/v1/models", timeout=300)
        yield started
    finally:
        for process in started:
            process.stop()


@pytest.fixture(scope="module")
def chart_operator(local_cluster: LocalCluster) -> Iterator[None]:
    """The chart installed as a user would, so the operator runs as its Deployment's pod;
    per module, so each module starts from an operator that has seen nothing else."""
    with operator_installed(local_cluster, values=NO_CPU_REQUEST):
        yield
