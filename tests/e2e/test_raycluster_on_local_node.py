"""A KubeRay sample becomes a working Ray cluster: the chart's operator runs as a pod on
the real node, reconciles the unchanged compat manifest, the operator's probes pass on real
Ray in Ray's image, and Ray runs tasks and an actor on the worker for a job submitted through
the dashboard's Jobs API. Then a real Prometheus scrapes Ray's nodes and the operator pod as the
chart's monitors would, and every panel of the Ray dashboard has data."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from compat_data import kuberay_sample
from monitoring import prometheus, static_job

from arenastack_cluster.operatorchart import NAMESPACE, OPERATOR_SELECTOR
from arenastack_cluster.rayjobs import run_job, wait_raycluster_ready
from arenastack_dashboards import ray as ray_dashboard
from arenastack_dashboards.common import render

pytestmark = pytest.mark.e2e

SAMPLE = "ray-cluster.sample.yaml"

# Runs on the head as the job's driver. Tasks are spread and an actor is pinned to a
# worker node, and the job prints where each ran.
JOB = """
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init()
head = ray.get_runtime_context().get_node_id()
workers = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != head]
@ray.remote
def square(x):
    return x * x, ray.get_runtime_context().get_node_id()
@ray.remote
class Counter:
    def __init__(self):
        self.n = 0
    def add(self, k):
        self.n += k
        return self.n, ray.get_runtime_context().get_node_id()
on_worker = NodeAffinitySchedulingStrategy(workers[0], soft=False)
results = ray.get([square.options(scheduling_strategy=on_worker).remote(i) for i in range(10)])
counter = Counter.options(scheduling_strategy=on_worker).remote()
total, actor_node = ray.get([counter.add.remote(k) for k in range(5)])[-1]
print("RESULT", sum(v for v, _ in results), total,
      all(n == workers[0] for _, n in results), actor_node == workers[0], len(workers))
"""


def _get(cluster, *args: str) -> dict | None:
    out = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def test_kuberay_sample_runs_tasks_actors_and_a_job(local_cluster, chart_operator, tmp_path):
    cl = local_cluster
    sample = kuberay_sample(SAMPLE)
    ns = "ray-e2e"
    cl.kubectl("create", "namespace", ns, check=False)
    manifest = yaml.safe_load(sample.read_text())
    name = manifest["metadata"]["name"]
    cl.kubectl("apply", "-n", ns, "-f", str(sample))
    try:
        rc = wait_raycluster_ready(cl, ns, name, timeout=300)
        head_ip = rc["status"]["head"]["podIP"]
        pods = _get(cl, "pods", "-n", ns, "-l", f"ray.io/cluster={name}")["items"]
        assert {p["metadata"]["labels"]["ray.io/node-type"] for p in pods} == {"head", "worker"}
        # The probes the operator generated pass on real Ray processes.
        for p in pods:
            conds = {c["type"]: c["status"] for c in p["status"]["conditions"]}
            assert conds["Ready"] == "True", p["metadata"]["name"]
            assert p["spec"]["containers"][0]["readinessProbe"]
            # Ray's own image (built from PyPI under the sample's tag), not a host process.
            image = p["status"]["containerStatuses"][0]["image"]
            assert image.startswith("docker.io/rayproject/ray:"), image

        job = run_job(head_ip, f"python -c '{JOB}'", timeout=240)
        assert job.status == "SUCCEEDED", job.logs[-3000:]
        logs = job.logs
        # 0^2+..+9^2 = 285 by tasks, 0+..+4 = 10 by the actor, all on the one worker.
        assert "RESULT 285 10 True True 1" in logs, logs[-3000:]
        _check_ray_dashboard(cl, ns, name, pods, tmp_path)
    finally:
        cl.kubectl(
            "delete", "raycluster", name, "-n", ns, "--wait=true", "--timeout=120s", check=False
        )


def _scrape_jobs(cl, ns: str, name: str, pods: list[dict]) -> list[dict]:
    """What the chart's PodMonitor for Ray and the operator's ServiceMonitor scrape, with the
    target labels they give."""
    ray_targets = {
        f"{p['status']['podIP']}:8080": {
            "namespace": ns,
            "pod": p["metadata"]["name"],
            "raycluster": name,
            "group": p["metadata"]["labels"]["ray.io/group"],
        }
        for p in pods
    }
    operators = _get(cl, "pods", "-n", NAMESPACE, "-l", OPERATOR_SELECTOR)["items"]
    operator_targets = {
        f"{p['status']['podIP']}:8080": {"pod": p["metadata"]["name"]} for p in operators
    }
    return [static_job("ray", ray_targets), static_job("operator", operator_targets, True)]


def _check_ray_dashboard(cl, ns: str, name: str, pods: list[dict], folder) -> None:
    with prometheus(folder, _scrape_jobs(cl, ns, name, pods)) as prom:
        for metric in ("ray_node_cpu_count", "ray_object_store_memory"):
            prom.wait_for(f"Ray's {metric}", f'{metric}{{raycluster="{name}"}}', 120)
        time.sleep(20)  # enough scrapes for changes() and rate() over their window
        empty = prom.empty_panels(render(ray_dashboard.build()))
        assert not empty, "panels without data:\n" + "\n".join(empty)
