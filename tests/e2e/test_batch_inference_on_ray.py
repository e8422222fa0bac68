"""Offline batch inference on Ray with vLLM, end to end on the real node: the example RayJob
(operator/examples/rayjob-batch-inference.yaml), applied as a user would with only its model
path set, makes a cluster from the vLLM image (head: the CPU stages; one engine worker with
the logical `accelerator` resource), and its Ray Data pipeline reads the 32 prompts, builds
chat prompts on the head, generates with the real vLLM engine on the worker and writes every
answer. The job ends SUCCEEDED and its cluster is deleted after."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_operator import get, vllm_namespace, wait

from arenastack_cluster.cluster import LocalCluster
from arenastack_cluster.modelclaim import model_source

pytestmark = pytest.mark.e2e

EXAMPLE = (
    Path(__file__).resolve().parents[2] / "operator" / "examples" / "rayjob-batch-inference.yaml"
)
NAMESPACE = "batch-e2e"
NAME = "batch-inference"
MOUNT = "/models"  # where the example mounts the claim
TIMEOUT_S = 900.0  # two vLLM-image pods, Ray Data and an engine start on a busy 2-core machine
SUMMARY = re.compile(
    r"batch inference: (\d+) prompts in ([\d.]+) s, ([\d.]+) prompts/s, "
    r"([\d.]+) generated tokens/s, 1 engine\(s\) on (\S+), written to"
)


@pytest.fixture(scope="module")
def cluster(local_cluster: LocalCluster, chart_operator: None, vllm_python: Path):
    with vllm_namespace(local_cluster, NAMESPACE):
        yield local_cluster


def _with_model(job: dict[str, Any], model_path: str) -> dict[str, Any]:
    runtime_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    runtime_env["env_vars"]["MODEL"] = f"{MOUNT}/{model_path}"
    job["spec"]["runtimeEnvYAML"] = yaml.safe_dump(runtime_env)
    job["spec"]["ttlSecondsAfterFinished"] = 0
    return job


def _pods(cl: LocalCluster) -> str:
    out = cl.kubectl("get", "pods,jobs,rayclusters", "-n", NAMESPACE, "-o", "wide", check=False)
    return out.stdout


def test_the_example_runs_the_pipeline_on_the_engine_worker(cluster, model_dir):
    cl = cluster
    job, config_map = yaml.safe_load_all(EXAMPLE.read_text())
    source = model_source(cl, NAMESPACE, model_dir)["volume"]
    assert source["claimName"] == "models"  # the claim the example mounts
    job = _with_model(job, source["path"])
    prompts = config_map["data"]["prompts.jsonl"].strip().splitlines()
    cl.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all([config_map, job]))

    workers: set[str] = set()

    def finished() -> dict[str, Any] | None:
        # The worker pods' names, while they exist: the engine's host must be one of them.
        pods = get(cl, NAMESPACE, "pods", "-l", "ray.io/node-type=worker") or {}
        workers.update(p["metadata"]["name"] for p in pods.get("items") or [])
        status = (get(cl, NAMESPACE, "rayjob", NAME) or {}).get("status") or {}
        return status if status.get("jobDeploymentStatus") in ("Complete", "Failed") else None

    try:
        status = wait("the batch job to finish", finished, TIMEOUT_S, 3)
    except AssertionError:
        logs = cl.kubectl("logs", "-n", NAMESPACE, f"job/{NAME}", check=False).stdout
        raise AssertionError(f"{_pods(cl)}\n{logs[-6000:]}") from None
    logs = cl.kubectl("logs", "-n", NAMESPACE, f"job/{NAME}").stdout
    assert (status["jobStatus"], status["jobDeploymentStatus"]) == ("SUCCEEDED", "Complete"), (
        f"{status}\n{logs[-6000:]}"
    )
    summary = SUMMARY.search(logs)
    assert summary, logs[-6000:]
    count, seconds, per_second, tokens_per_second, hosts = summary.groups()
    assert int(count) == len(prompts) == 32
    assert float(per_second) > 0 and float(tokens_per_second) > 0
    print(f"\nbatch inference on the local node: {count} prompts in {seconds} s, "
          f"{per_second} prompts/s, {tokens_per_second} generated tokens/s")  # fmt: skip
    # Every answer came from the engine worker, none from the head's CPUs.
    assert set(hosts.split(",")) <= workers and workers, (hosts, workers)
    assert re.search(r"first answer \(1\): ['\"]", logs), logs[-3000:]  # the answer's repr

    # shutdownAfterJobFinishes with a TTL of 0: the cluster goes.
    wait("the job's cluster to be deleted",
         lambda: not (get(cl, NAMESPACE, "rayclusters") or {}).get("items"), 180, 2)  # fmt: skip
    deadline = time.monotonic() + 120
    while (get(cl, NAMESPACE, "pods", "-l", "ray.io/node-type") or {}).get("items"):
        assert time.monotonic() < deadline, _pods(cl)
        time.sleep(2)
