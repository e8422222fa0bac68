"""The InferenceDeployment reconciler against a real control plane with simulated (kwok) nodes:
GPU requests and scheduling on GPU nodes, InsufficientGPU, multi-node replicas as RayClusters,
invalid specs refused by the apiserver naming the field.

One operator process (the real `python -m arenastack_operator`, chart ServiceAccount) serves the
module; each test works in its own namespace. kwok runs no containers, so replicas are "ready" as
soon as they are scheduled; the engine itself is exercised by tests/e2e.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_helpers import get, wait_for
from operator_runner import OperatorProcess, fresh_operator

from arenastack_operator import constants
from arenastack_operator.inferencedeployment import names

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def operator(
    cluster, crds, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with fresh_operator(
        cluster, operator_kubeconfig, tmp_path_factory.mktemp("infdep-operator")
    ) as op:
        yield op


def manifest(name: str, **spec: Any) -> str:
    spec.setdefault("model", {"huggingFace": {"repoId": "Qwen/Qwen2.5-0.5B-Instruct"}})
    body = {"apiVersion": constants.API_VERSION, "kind": "InferenceDeployment",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip
    return yaml.safe_dump(body)


def apply(cluster, namespace: str, text: str, check: bool = True):
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text, check=check)


def status(cluster, namespace: str, name: str) -> dict[str, Any]:
    return (get(cluster, "inferencedeployment", namespace, name) or {}).get("status") or {}


def condition(cluster, namespace: str, name: str, type_: str) -> dict[str, Any]:
    for c in status(cluster, namespace, name).get("conditions") or []:
        if c["type"] == type_:
            return c
    return {}


def engine_pods(cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    selector = f"{names.LABEL_DEPLOYMENT}={name},{constants.LABEL_COMPONENT}=engine"
    return get(cluster, "pods", namespace, selector=selector) or []


def events(cluster, namespace: str) -> list[str]:
    return [e["reason"] for e in get(cluster, "events", namespace) or []]


def test_gpu_replicas_schedule_on_gpu_nodes_behind_a_router(cluster, operator, namespace):
    apply(cluster, namespace, manifest(
        "qwen", replicas=2, engine={"tensorParallelSize": 2},
        model={"huggingFace": {"repoId": "Qwen/Qwen2.5-0.5B-Instruct"}, "servedModelName": "qwen"},
        router={"policy": "roundRobin"},
    ))  # fmt: skip
    wait_for(
        "2 ready replicas", lambda: status(cluster, namespace, "qwen").get("readyReplicas") == 2
    )

    deployment = get(cluster, "deployment", namespace, "qwen-engine")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"][names.GPU_RESOURCE] == "2"
    assert container["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    pods = engine_pods(cluster, namespace, "qwen")
    assert len(pods) == 2
    assert all(p["spec"]["nodeName"].startswith("kwok-gpu-") for p in pods)
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("InferenceDeployment", "qwen")

    router = get(cluster, "deployment", namespace, "qwen-router")
    args = router["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--policy") + 1] == "round_robin"
    assert get(cluster, "service", namespace, "qwen-router") is not None
    assert get(cluster, "service", namespace, "qwen-engine") is not None
    assert get(cluster, "role", namespace, "qwen-router")["rules"][0]["resources"] == ["pods"]

    st = wait_for("Ready", lambda: condition(cluster, namespace, "qwen", "Ready").get("status")
                  == "True" and status(cluster, namespace, "qwen"))  # fmt: skip
    assert st["endpoint"] == f"http://qwen-router.{namespace}.svc.cluster.local:8000/v1"
    assert st["servedModel"] == "qwen"
    assert st["observedGeneration"] == 1
    table = cluster.kubectl("get", "inferencedeployment", "qwen", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "MODEL", "READY", "ENDPOINT", "AGE"]
    assert row.split()[1:4] == ["qwen", "2", st["endpoint"]]
    assert "CreatedDeployment" in events(cluster, namespace)

    # An engine-setting change rolls the template; replicas follow spec.replicas.
    apply(cluster, namespace, manifest(
        "qwen", replicas=1, engine={"tensorParallelSize": 4},
        model={"huggingFace": {"repoId": "Qwen/Qwen2.5-0.5B-Instruct"}, "servedModelName": "qwen"},
    ))  # fmt: skip

    def rolled() -> bool:
        d = get(cluster, "deployment", namespace, "qwen-engine")
        c = d["spec"]["template"]["spec"]["containers"][0]
        return d["spec"]["replicas"] == 1 and c["resources"]["limits"][names.GPU_RESOURCE] == "4"

    wait_for("the new engine template", rolled)


def test_no_node_can_hold_a_replica_is_insufficient_gpu(cluster, operator, namespace):
    apply(cluster, namespace, manifest("huge", engine={"tensorParallelSize": 16},
                                       distributed="none"))  # fmt: skip
    degraded = wait_for(
        "Degraded InsufficientGPU",
        lambda: (
            (c := condition(cluster, namespace, "huge", "Degraded")).get("reason")
            == "InsufficientGPU"
            and c
        ),
    )
    assert degraded["status"] == "True"
    assert "16 GPUs" in degraded["message"]
    assert condition(cluster, namespace, "huge", "Ready")["status"] == "False"
    assert wait_for("a warning event", lambda: "InsufficientGPU" in events(cluster, namespace))


def test_gpus_taken_are_reported_from_the_scheduler(cluster, operator, namespace):
    # 4 simulated GPU nodes of 8: a fifth 8-GPU replica cannot be placed.
    apply(cluster, namespace, manifest("many", replicas=5, engine={"tensorParallelSize": 8},
                                       distributed="none", router={"enabled": False}))  # fmt: skip
    degraded = wait_for(
        "Degraded InsufficientGPU from a pending pod",
        lambda: (
            (c := condition(cluster, namespace, "many", "Degraded")).get("reason")
            == "InsufficientGPU"
            and c
        ),
    )
    assert "Insufficient nvidia.com/gpu" in degraded["message"]
    st = status(cluster, namespace, "many")
    assert st["replicas"] == 5 and st.get("readyReplicas", 0) < 5
    assert st["endpoint"] == f"http://many-engine.{namespace}.svc.cluster.local:8000/v1"
    cluster.kubectl("delete", "inferencedeployment", "many", "-n", namespace, "--wait=true")


def test_replica_larger_than_a_node_becomes_a_raycluster(cluster, operator, namespace):
    apply(cluster, namespace, manifest("big", engine={"tensorParallelSize": 8,
                                                      "pipelineParallelSize": 2}))  # fmt: skip
    ray = wait_for("the RayCluster", lambda: get(cluster, "raycluster", namespace, "big-ray-0"))
    owner = ray["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("InferenceDeployment", "big")
    head = ray["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["resources"]["limits"][names.GPU_RESOURCE] == 8
    script = head["args"][0]
    assert script.startswith("ray start --head")
    assert "--distributed-executor-backend ray" in script
    assert "--pipeline-parallel-size 2" in script
    (group,) = ray["spec"]["workerGroupSpecs"]
    assert group["replicas"] == 1
    assert (
        group["template"]["spec"]["containers"][0]["resources"]["limits"][names.GPU_RESOURCE] == 8
    )
    assert get(cluster, "deployment", namespace, "big-engine") is None
    # The RayCluster reconciler makes its pods; the head serves as the replica.
    wait_for("head and worker pods on GPU nodes", lambda: len([
        p for p in get(cluster, "pods", namespace, selector="ray.io/cluster=big-ray-0") or []
        if (p["spec"].get("nodeName") or "").startswith("kwok-gpu-")]) == 2)  # fmt: skip
    st = wait_for("status", lambda: status(cluster, namespace, "big").get("rayCluster") and
                  status(cluster, namespace, "big"))  # fmt: skip
    assert st["rayCluster"] == "big-ray-0"


def test_cpu_pipeline_stages_on_ray_nodes_become_a_raycluster(cluster, operator, namespace):
    """`distributed: ray` without GPUs: one Ray node per pipeline stage, the engine on the head.
    This is the multi-node case the local node cannot run for real: vLLM 0.32's CPU engine
    refuses the Ray executor ("current platform cpu does not support ray"), so the generated
    cluster and command are asserted here in full."""
    apply(cluster, namespace, manifest(
        "pp", gpusPerReplica=0, distributed="ray", image="vllm/vllm-openai:v0.32.0",
        model={"path": "/models/tiny", "servedModelName": "tiny", "dtype": "float32"},
        engine={"pipelineParallelSize": 2, "maxModelLen": 512},
        resources={"limits": {"cpu": "1", "memory": "2Gi"}},
    ))  # fmt: skip
    ray = wait_for("the RayCluster", lambda: get(cluster, "raycluster", namespace, "pp-ray-0"))
    head_meta = ray["spec"]["headGroupSpec"]["template"]["metadata"]
    assert head_meta["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    head_spec = ray["spec"]["headGroupSpec"]["template"]["spec"]
    (head,) = head_spec["containers"]
    assert head["image"] == "vllm/vllm-openai:v0.32.0"
    assert head["command"] == ["bash", "-c"]
    assert head["args"] == [
        "ray start --head --port=6379 --dashboard-host=0.0.0.0 --num-gpus=0 && exec "
        "python3 -m vllm.entrypoints.openai.api_server --model /models/tiny "
        "--served-model-name tiny --host 0.0.0.0 --port 8000 --dtype float32 "
        "--tensor-parallel-size 1 --pipeline-parallel-size 2 "
        "--distributed-executor-backend ray --max-model-len 512 --enable-scale-out"
    ]
    assert head["resources"] == {"limits": {"cpu": "1", "memory": "2Gi"}}
    assert head["readinessProbe"]["httpGet"]["path"] == "/v1/models"
    (group,) = ray["spec"]["workerGroupSpecs"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (1, 1, 1)
    (worker,) = group["template"]["spec"]["containers"]
    assert worker["image"] == head["image"]
    assert worker["resources"] == {"limits": {"cpu": "1", "memory": "2Gi"}}
    assert "command" not in worker  # the RayCluster reconciler generates its `ray start`
    assert get(cluster, "deployment", namespace, "pp-engine") is None

    # What runs: the head pod keeps the engine command; the worker joins the head's GCS.
    def ray_pods() -> dict[str, dict[str, Any]] | None:
        pods = get(cluster, "pods", namespace, selector="ray.io/cluster=pp-ray-0") or []
        by_type = {p["metadata"]["labels"]["ray.io/node-type"]: p for p in pods}
        return by_type if set(by_type) == {"head", "worker"} else None

    pods = wait_for("head and worker pods", ray_pods)
    assert pods["head"]["spec"]["containers"][0]["args"] == head["args"]
    worker_script = " ".join(pods["worker"]["spec"]["containers"][0]["args"])
    assert f"ray start --address=pp-ray-0-head-svc.{namespace}.svc.cluster.local:6379" in (
        worker_script
    )
    assert "--num-cpus=1" in worker_script and "--block" in worker_script
    st = wait_for("status", lambda: status(cluster, namespace, "pp").get("rayCluster")
                  and status(cluster, namespace, "pp"))  # fmt: skip
    assert st["rayCluster"] == "pp-ray-0"


def test_referenced_raycluster_is_joined_not_created(cluster, operator, namespace):
    apply(cluster, namespace, manifest("onref", rayClusterRef={"name": "shared"},
                                       engine={"tensorParallelSize": 16}))  # fmt: skip
    deployment = wait_for(
        "the engine Deployment", lambda: get(cluster, "deployment", namespace, "onref-engine")
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    script = container["args"][0]
    assert script.startswith(
        f"ray start --address=shared-head-svc.{namespace}.svc.cluster.local:6379 --num-gpus=0"
    )
    assert "--distributed-executor-backend ray" in script
    assert names.GPU_RESOURCE not in json.dumps(container.get("resources") or {})
    assert get(cluster, "raycluster", namespace) == []
    st = wait_for("status", lambda: status(cluster, namespace, "onref").get("rayCluster")
                  and status(cluster, namespace, "onref"))  # fmt: skip
    assert st["rayCluster"] == "shared"


INVALID = [
    pytest.param({"engine": {"extraArgs": ["--enforce-eager", "--port=9000", "--max_model_len",
                                           "9"]}},
                 ["spec.engine.extraArgs[1]", "owns: --port=9000", "spec.engine.extraArgs[2]",
                  "owns: --max_model_len"], id="owned-flags"),
    pytest.param({"router": {"extraArgs": ["--cache-threshold", "0.5", "--policy=round_robin"]}},
                 ["spec.router.extraArgs[2]", "owns: --policy=round_robin", "spec.router"],
                 id="owned-router-flags"),
    pytest.param({"gpusPerReplica": 3, "engine": {"tensorParallelSize": 2}},
                 ["spec.gpusPerReplica", "tensorParallelSize"], id="gpus-mismatch"),
    pytest.param({"model": {"huggingFace": {"repoId": "a/b"}, "path": "/m"}},
                 ["spec.model", "exactly one"], id="two-model-sources"),
    pytest.param({"engine": {"tensorParallelSize": 0}},
                 ["spec.engine.tensorParallelSize"], id="zero-tp"),
    pytest.param({"autoscaling": {"minReplicas": 0, "maxReplicas": 2, "target": 1}},
                 ["spec.autoscaling.minReplicas", "scaleToZero"], id="zero-without-scale-to-zero"),
    pytest.param({"modelCache": {"claimName": "c", "size": "1Gi"}},
                 ["spec.modelCache", "exactly one"], id="cache-two-sources"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "fragments"), INVALID)
def test_invalid_specs_are_refused_naming_the_field(cluster, crds, namespace, spec, fragments):
    result = apply(cluster, namespace, manifest("bad", **spec), check=False)
    assert result.returncode != 0, "accepted"
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_operator_is_still_running(operator):
    assert operator.proc.poll() is None
    errors = [r for r in operator.logs() if r.get("levelname") == "ERROR" or "unparsed" in r]
    assert not errors, errors[:5]
