"""The operator as a local process against a local-profile cluster, for e2e tests, plus the
small kubectl readers those tests share."""

from __future__ import annotations

import json
import os
import posixpath
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
from arenastack_operator.inferencedeployment import names as id_names

STOP_TIMEOUT_S = 30
# The claim over the host's model cache that engines on the real node read weights from.
MODELS_CLAIM = "models"


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
        drop_models_volume(cluster, namespace)


def _models_volume(cluster: LocalCluster, namespace: str) -> None:
    """A PersistentVolume over the host's model cache, bound to the claim MODELS_CLAIM in
    `namespace`: how a user hands replicas weights already on a volume (there is no
    provisioner here). A volume binds one claim, so each namespace has its own."""
    pv = {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{MODELS_CLAIM}",
                     "labels": {"arenastack.test/models-of": namespace}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
                 "storageClassName": "", "persistentVolumeReclaimPolicy": "Retain",
                 "hostPath": {"path": str(vllmenv.models_root()), "type": "Directory"}},
    }  # fmt: skip
    claim = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": MODELS_CLAIM, "namespace": namespace},
        "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "",
                 "volumeName": pv["metadata"]["name"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    }  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": [pv, claim]}))  # fmt: skip


def drop_models_volume(cluster: LocalCluster, namespace: str) -> None:
    """The volume _models_volume made for `namespace` (retained, so not deleted with it)."""
    cluster.kubectl("delete", "pv", "-l", f"arenastack.test/models-of={namespace}",
                    "--wait=false", check=False)  # fmt: skip


def model_source(cluster: LocalCluster, namespace: str, model: Path) -> dict[str, Any]:
    """spec.model's source for `model`, a folder of the host's model cache: the host path on
    the process node (its pods read the host's files), a path on the claim over the cache on
    the real node (the volume and claim are made on first use)."""
    if not cluster.real_node:
        return {"path": str(model)}
    _models_volume(cluster, namespace)
    relative = model.resolve().relative_to(vllmenv.models_root().resolve())
    return {"volume": {"claimName": MODELS_CLAIM, "path": str(relative)}}


def engine_path(cluster: LocalCluster, path: Path) -> str:
    """Where an engine pod of a deployment with a model_source sees `path`, a file or folder
    of the model cache (a LoRA adapter's source, say)."""
    if not cluster.real_node:
        return str(path)
    relative = path.resolve().relative_to(vllmenv.models_root().resolve())
    return posixpath.join(id_names.MODEL_MOUNT, str(relative))


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
