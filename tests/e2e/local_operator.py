"""The operator as a local process against a local-profile cluster, for e2e tests, plus the
small kubectl readers those tests share."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from arenastack_cluster import vllmenv
from arenastack_cluster.cluster import CHART_DIR, LocalCluster
from arenastack_cluster.processes import poll
from arenastack_operator import constants

STOP_TIMEOUT_S = 30


@contextmanager
def operator_process(
    cluster: LocalCluster, log: Path, autoscale_interval_s: float, args: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m arenastack_operator` with the cluster's admin kubeconfig, no election, the
    autoscaler reading every `autoscale_interval_s` seconds, and `args`; stopped with SIGTERM."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arenastack_operator", f"--kubeconfig={cluster.kubeconfig}",
             "--leader-elect=false", "--bind-address=127.0.0.1", "--health-port=0",
             "--metrics-port=0", *args],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, f"{constants.ENV_PREFIX}AUTOSCALE_INTERVAL":
                 str(autoscale_interval_s)},
        )  # fmt: skip
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(cluster: LocalCluster, namespace: str, *args: str) -> Any:
    """`kubectl get ... -o json`, or None when it fails (for instance: not found)."""
    out = cluster.kubectl("get", *args, "-n", namespace, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def wait(what: str, check: Callable[[], Any], timeout: float, period: float = 1.0) -> Any:
    """`check()`'s first truthy result within `timeout` seconds (polled once a second)."""
    return poll(what, check, timeout, period)


@contextmanager
def vllm_namespace(cluster: LocalCluster, namespace: str) -> Iterator[LocalCluster]:
    """The cluster made ready for InferenceDeployments of vLLM's image: the vLLM environment
    linked as the local node's runtime, the CRDs applied, and `namespace` (deleted after)."""
    vllmenv.vllm_python(link_runtime=True)
    cluster.apply_crds(sorted((CHART_DIR / "crds").glob("*.yaml")))
    cluster.kubectl("create", "namespace", namespace, check=False)
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def vllm_fixtures(namespace: str, autoscale_interval_s: float) -> tuple[Any, Any]:
    """A module's two fixtures, `cluster, operator_log = vllm_fixtures(...)`: the session's
    local cluster with `namespace` ready for vLLM (vllm_namespace), and the operator running
    against it (operator_process), given as its log file."""

    @pytest.fixture(scope="module")
    def cluster(local_cluster: LocalCluster, vllm_python: Path) -> Iterator[LocalCluster]:
        with vllm_namespace(local_cluster, namespace):
            yield local_cluster

    @pytest.fixture(scope="module")
    def operator_log(
        cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Path]:
        log = tmp_path_factory.mktemp("operator") / "operator.log"
        with operator_process(cluster, log, autoscale_interval_s):
            yield log

    return cluster, operator_log
