"""The fixtures of the e2e tests that serve vLLM on the local cluster (the chart's operator,
under the chart's RBAC, and a namespace ready for InferenceDeployments), plus the small
kubectl readers those tests share."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from arenastack_cluster import modelclaim
from arenastack_cluster.cluster import CHART_DIR, LocalCluster
from arenastack_cluster.operatorchart import operator_installed
from arenastack_cluster.operatorchart import operator_log as read_operator_log
from arenastack_cluster.processes import poll
from arenastack_operator.inferencedeployment.handlers import AUTOSCALE_INTERVAL_ENV


def get(cluster: LocalCluster, namespace: str, *args: str) -> Any:
    """`kubectl get ... -o json`, or None when it fails (for instance: not found)."""
    out = cluster.kubectl("get", *args, "-n", namespace, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def wait(what: str, check: Callable[[], Any], timeout: float, period: float = 1.0) -> Any:
    """`check()`'s first truthy result within `timeout` seconds (polled once a second)."""
    return poll(what, check, timeout, period)


@contextmanager
def vllm_namespace(cluster: LocalCluster, namespace: str) -> Iterator[LocalCluster]:
    """The cluster made ready for InferenceDeployments: the CRDs applied and `namespace`
    (deleted after, with the volume of its model claim)."""
    cluster.apply_crds(sorted((CHART_DIR / "crds").glob("*.yaml")))
    cluster.kubectl("create", "namespace", namespace, check=False)
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        modelclaim.release(cluster, namespace)


def vllm_fixtures(namespace: str, autoscale_interval_s: float) -> tuple[Any, Any]:
    """A module's two fixtures, `cluster, operator_log = vllm_fixtures(...)`: the session's
    local cluster with `namespace` ready for vLLM (vllm_namespace), and the chart's operator
    running on it, its autoscaler reading every `autoscale_interval_s` seconds, given as a
    function that returns what the operator has logged."""

    @pytest.fixture(scope="module")
    def cluster(local_cluster: LocalCluster, vllm_python: Path) -> Iterator[LocalCluster]:
        with vllm_namespace(local_cluster, namespace):
            yield local_cluster

    @pytest.fixture(scope="module")
    def operator_log(cluster: LocalCluster) -> Iterator[Callable[[], str]]:
        interval = {AUTOSCALE_INTERVAL_ENV: str(autoscale_interval_s)}
        with operator_installed(cluster, env=interval):
            yield lambda: read_operator_log(cluster)

    return cluster, operator_log
