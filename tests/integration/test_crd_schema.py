"""The generated CRDs in a real kube-apiserver: KubeRay's samples apply unchanged, the
invalid corpus is rejected with messages naming the field, explain documents the API,
and the status, printer columns and transition rules behave."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from compat_data import (
    compat_manifests,
    expectation,
    invalid_cases,
    rayclusters_in,
    require_sample,
)

pytestmark = pytest.mark.integration

MINIMAL_RAYCLUSTER = """
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: minimal
spec:
  headGroupSpec:
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
  workerGroupSpecs:
  - groupName: small
    replicas: 1
    minReplicas: 0
    maxReplicas: 3
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.52.0
"""

MINIMAL_INFERENCEDEPLOYMENT = """
apiVersion: arenastack.io/v1alpha1
kind: InferenceDeployment
metadata:
  name: qwen
spec:
  model:
    huggingFace:
      repoId: Qwen/Qwen2.5-0.5B-Instruct
"""

MINIMAL_ARENAEVALUATION = """
apiVersion: arenastack.io/v1alpha1
kind: ArenaEvaluation
metadata:
  name: eval
spec:
  contestants:
  - name: qwen
    inferenceDeploymentRef: {name: qwen}
  - name: remote
    endpoint: {baseURL: "http://example.invalid/v1", model: m}
  prompts:
    inline: [{text: "Say hello."}]
  judge:
    inferenceDeploymentRef: {name: qwen}
"""


def load(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)


def apply(cluster, namespace: str, obj: dict[str, Any] | str, check: bool = False):
    text = obj if isinstance(obj, str) else yaml.safe_dump(obj)
    return cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=text, check=check
    )


def get(cluster, namespace: str, resource: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "-n", namespace, resource, "-o", "json").stdout)


def contains(stored: Any, applied: Any, path: str = "") -> list[str]:
    """Paths of `applied` that are missing or different in `stored` (defaults may add more)."""
    if isinstance(applied, dict):
        if not isinstance(stored, dict):
            return [path]
        return [m for k, v in applied.items() for m in contains(stored.get(k), v, f"{path}.{k}")]
    if isinstance(applied, list):
        if not isinstance(stored, list) or len(stored) != len(applied):
            return [path]
        return [
            m
            for i, (s, a) in enumerate(zip(stored, applied, strict=True))
            for m in contains(s, a, f"{path}[{i}]")
        ]
    return [] if stored == applied else [path]


@pytest.mark.parametrize("path", compat_manifests(), ids=lambda p: p.stem)
def test_kuberay_sample_applies_unchanged(cluster, crds, namespace, path: Path):
    text = require_sample(path).read_text()
    dry = cluster.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=text, check=False
    )
    assert dry.returncode == 0, dry.stderr
    result = cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=text, check=False
    )
    assert result.returncode == 0, result.stderr
    for applied in rayclusters_in(path):
        stored = get(cluster, namespace, f"raycluster/{applied['metadata']['name']}")
        # Nothing of the sample was pruned or changed; KubeRay's defaults were added.
        assert contains(stored["spec"], applied["spec"]) == []
        for group in stored["spec"].get("workerGroupSpecs", []):
            assert group["numOfHosts"] == 1
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


@pytest.mark.parametrize("path", invalid_cases(), ids=lambda p: p.stem)
def test_invalid_raycluster_is_rejected_naming_the_field(cluster, crds, namespace, path: Path):
    field_path, message = expectation(path)
    text = path.read_text()
    result = cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=text, check=False
    )
    assert result.returncode != 0, f"{path.name} was accepted"
    assert field_path in result.stderr and message in result.stderr, result.stderr
    # The classic create path rejects it too, naming the same field.
    created = cluster.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=text, check=False
    )
    assert created.returncode != 0, f"{path.name} was accepted by create"
    last_field = re.findall(
        r"[A-Za-z]+", field_path.split("[")[0] if "=" in field_path else field_path
    )[-1]
    assert last_field in created.stderr, created.stderr


def test_explain_documents_worker_groups(cluster, crds):
    out = cluster.kubectl("explain", "raycluster.spec.workerGroupSpecs").stdout
    assert "groupName" in out and "-required-" in out
    assert "unique in the cluster" in out  # our description of groupName
    assert "Fewest replicas of the group" in out
    containers = cluster.kubectl(
        "explain", "raycluster.spec.headGroupSpec.template.spec.containers"
    ).stdout
    assert "livenessProbe" in containers and "resources" in containers


def test_printer_columns_status_subresource_and_category(cluster, crds, namespace):
    apply(cluster, namespace, MINIMAL_RAYCLUSTER, check=True)
    status = {
        "status": {
            "state": "ready",
            "desiredWorkerReplicas": 1,
            "availableWorkerReplicas": 1,
            "readyWorkerReplicas": 1,
            "desiredCPU": "2",
            "desiredMemory": "4Gi",
            "desiredGPU": "0",
            "head": {"podIP": "10.0.0.1", "serviceIP": "10.96.0.10"},
            "conditions": [
                {
                    "type": "HeadPodReady",
                    "status": "True",
                    "reason": "HeadPodRunningAndReady",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
            "observedGeneration": 1,
        }
    }
    cluster.kubectl(
        "patch", "-n", namespace, "raycluster/minimal", "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip
    table = cluster.kubectl("get", "-n", namespace, "rayclusters").stdout
    header, row = table.splitlines()[:2]
    for column in ("DESIRED WORKERS", "AVAILABLE WORKERS", "CPUS", "GPUS", "STATUS", "AGE"):
        assert column in header
    assert row.split()[:5] == ["minimal", "1", "1", "1", "2"] and "ready" in row
    # Short name and the arenastack category both find it.
    assert "minimal" in cluster.kubectl("get", "-n", namespace, "rayc").stdout
    assert (
        "raycluster.ray.io/minimal"
        in cluster.kubectl("get", "-n", namespace, "arenastack", "-o", "name").stdout
    )
    # Status is a subresource: a spec update cannot change it.
    stored = get(cluster, namespace, "raycluster/minimal")
    assert stored["status"]["desiredCPU"] == "2"


def test_autoscaler_json_patches_are_accepted(cluster, crds, namespace):
    """Ray's autoscaler JSON-patches replicas and scaleStrategy by index."""
    apply(cluster, namespace, MINIMAL_RAYCLUSTER, check=True)
    victims = {"workersToDelete": ["minimal-small-worker-abcde"]}
    patch = [
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2},
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/scaleStrategy", "value": victims},
    ]
    cluster.kubectl(
        "patch", "-n", namespace, "raycluster/minimal", "--type=json", "-p", json.dumps(patch)
    )
    group = get(cluster, namespace, "raycluster/minimal")["spec"]["workerGroupSpecs"][0]
    assert group["replicas"] == 2
    assert group["scaleStrategy"] == victims
    too_many = [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 4}]
    result = cluster.kubectl(
        "patch",
        "-n",
        namespace,
        "raycluster/minimal",
        "--type=json",
        "-p",
        json.dumps(too_many),
        check=False,
    )
    assert (
        result.returncode != 0
        and "replicas must be less than or equal to maxReplicas" in result.stderr
    )


def test_immutable_fields_cannot_change(cluster, crds, namespace):
    obj = load(MINIMAL_RAYCLUSTER)
    obj["spec"]["managedBy"] = "ray.io/kuberay-operator"
    obj["spec"]["gcsFaultToleranceOptions"] = {"backend": "rocksdb", "storage": {"size": "1Gi"}}
    apply(cluster, namespace, obj, check=True)
    obj["spec"]["managedBy"] = "kueue.x-k8s.io/multikueue"
    result = apply(cluster, namespace, obj)
    assert (
        result.returncode != 0
        and "spec.managedBy" in result.stderr
        and "immutable" in result.stderr
    )
    obj["spec"]["managedBy"] = "ray.io/kuberay-operator"
    obj["spec"]["gcsFaultToleranceOptions"] = {"backend": "redis", "redisAddress": "redis:6379"}
    result = apply(cluster, namespace, obj)
    assert result.returncode != 0 and "backend is immutable" in result.stderr


def test_inferencedeployment_minimal_is_accepted_with_defaults(cluster, crds, namespace):
    apply(cluster, namespace, MINIMAL_INFERENCEDEPLOYMENT, check=True)
    spec = get(cluster, namespace, "inferencedeployment/qwen")["spec"]
    assert spec["engine"]["tensorParallelSize"] == 1
    assert spec["router"]["policy"] == "cacheAware"
    assert spec["image"].startswith("vllm/vllm-openai:")
    assert "qwen" in cluster.kubectl("get", "-n", namespace, "idep").stdout


def test_arenaevaluation_minimal_is_accepted_with_defaults_and_may_change(cluster, crds, namespace):
    apply(cluster, namespace, MINIMAL_ARENAEVALUATION, check=True)
    spec = get(cluster, namespace, "arenaevaluation/eval")["spec"]
    assert spec["concurrency"] == 8 and spec["suspend"] is False
    assert spec["battles"] == {"mode": "allPairs", "seed": 0}
    judge = spec["judge"]
    assert (judge["scale"], judge["bothOrders"], judge["onDisagreement"]) == ("three", True, "tie")
    changed = load(MINIMAL_ARENAEVALUATION)
    changed["spec"]["concurrency"] = 2  # a spec change is a new run, not a refusal
    apply(cluster, namespace, changed, check=True)
    assert get(cluster, namespace, "arenaevaluation/eval")["metadata"]["generation"] == 2


def _edit(text: str, path: tuple, value: Any) -> dict[str, Any]:
    obj = load(text)
    node = obj
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    return obj


TWO_ENDPOINTS = {
    "endpoint": {"baseURL": "http://judge.invalid/v1", "model": "j"},
    "inferenceDeploymentRef": {"name": "qwen"},
}
ONE_CONTESTANT = [{"name": "solo", "inferenceDeploymentRef": {"name": "qwen"}}]
INVERTED_BOUNDS = {"minReplicas": 3, "maxReplicas": 2, "target": 4}

INVALID_ARENASTACK = [
    pytest.param(
        _edit(MINIMAL_INFERENCEDEPLOYMENT, ("spec", "model", "volume"), {"claimName": "weights"}),
        "set exactly one of model.huggingFace and model.volume",
        id="idep-two-model-sources",
    ),
    pytest.param(
        _edit(MINIMAL_INFERENCEDEPLOYMENT, ("spec", "engine"), {"extraArgs": ["--port=9000"]}),
        "extraArgs may not set flags the operator owns",
        id="idep-owned-flag",
    ),
    pytest.param(
        _edit(MINIMAL_INFERENCEDEPLOYMENT, ("spec", "engine"), {"gpuMemoryUtilization": 1.5}),
        "spec.engine.gpuMemoryUtilization",
        id="idep-memory-fraction",
    ),
    pytest.param(
        _edit(MINIMAL_INFERENCEDEPLOYMENT, ("spec", "autoscaling"), INVERTED_BOUNDS),
        "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas",
        id="idep-autoscaling-bounds",
    ),
    pytest.param(
        _edit(MINIMAL_INFERENCEDEPLOYMENT, ("spec", "router"), {"policy": "leastLoaded"}),
        "spec.router.policy: Unsupported value",
        id="idep-router-policy",
    ),
    pytest.param(
        _edit(MINIMAL_ARENAEVALUATION, ("spec", "contestants"), ONE_CONTESTANT),
        "spec.contestants",
        id="aeval-one-contestant",
    ),
    pytest.param(
        _edit(MINIMAL_ARENAEVALUATION, ("spec", "judge"), TWO_ENDPOINTS),
        "set exactly one of inferenceDeploymentRef and endpoint",
        id="aeval-judge-two-sources",
    ),
    pytest.param(
        _edit(MINIMAL_ARENAEVALUATION, ("spec", "battles"), {"mode": "adaptive"}),
        "battles.budget is required with mode adaptive",
        id="aeval-adaptive-without-budget",
    ),
    pytest.param(
        _edit(MINIMAL_ARENAEVALUATION, ("spec", "battles"), {"baseline": "nobody"}),
        "spec.battles.baseline: Invalid value",
        id="aeval-unknown-baseline",
    ),
    pytest.param(
        _edit(MINIMAL_ARENAEVALUATION, ("spec", "schedule"), "0 * * * *"),
        "schedule is not supported yet",
        id="aeval-schedule-refused",
    ),
    pytest.param(
        _edit(
            MINIMAL_ARENAEVALUATION, ("spec", "prompts", "configMapRef"), {"name": "p", "key": "k"}
        ),
        "set exactly one of inline, configMapRef, file and fromArena",
        id="aeval-two-prompt-sources",
    ),
    pytest.param(
        _edit(MINIMAL_ARENAEVALUATION, ("spec", "prompts", "inline"), [{"category": "x"}]),
        "spec.prompts.inline[0]: Invalid value",
        id="aeval-prompt-without-text",
    ),
    pytest.param(
        _edit(MINIMAL_ARENAEVALUATION, ("spec", "judge", "scale"), "ten"),
        "spec.judge.scale: Unsupported value",
        id="aeval-judge-scale",
    ),
]


@pytest.mark.parametrize(("obj", "fragment"), INVALID_ARENASTACK)
def test_invalid_arenastack_objects_are_rejected(cluster, crds, namespace, obj, fragment: str):
    result = apply(cluster, namespace, obj)
    assert result.returncode != 0, "accepted"
    assert fragment in result.stderr, result.stderr


def test_template_metadata_as_go_clients_print_it_is_accepted(cluster, crds, namespace):
    obj = load(MINIMAL_RAYCLUSTER)
    obj["spec"]["headGroupSpec"]["template"]["metadata"] = {
        "creationTimestamp": None,
        "labels": {"team": "ml"},
        "annotations": {"note": "kept"},
    }
    apply(cluster, namespace, obj, check=True)
    meta = get(cluster, namespace, "raycluster/minimal")["spec"]["headGroupSpec"]["template"]
    assert meta["metadata"]["labels"] == {"team": "ml"}
    assert meta["metadata"]["annotations"] == {"note": "kept"}


def test_group_without_replicas_takes_kuberay_defaults(cluster, crds, namespace):
    """KubeRay lets autoscaled groups omit replicas (it defaults to 0, below minReplicas)."""
    obj = load(MINIMAL_RAYCLUSTER)
    obj["spec"]["enableInTreeAutoscaling"] = True
    group = obj["spec"]["workerGroupSpecs"][0]
    del group["replicas"], group["maxReplicas"]
    group["minReplicas"] = 2
    apply(cluster, namespace, obj, check=True)
    stored = get(cluster, namespace, "raycluster/minimal")["spec"]["workerGroupSpecs"][0]
    assert (stored["replicas"], stored["minReplicas"], stored["maxReplicas"]) == (0, 2, 2**31 - 1)
    assert stored["numOfHosts"] == 1 and "scaleStrategy" not in stored
