"""GCS fault tolerance with a real Redis: the head pod is deleted, the workers keep running.

KubeRay's own sample `ray-cluster.external-redis.yaml` is applied unchanged: a Redis Deployment
(Debian's redis-server on the local node) with its password in a Secret, and a RayCluster whose
`gcsFaultToleranceOptions` point at it. As in KubeRay's GCS fault tolerance guide, a detached
actor is created on the worker and incremented; then the head pod is deleted. The chart's
operator creates a new head, whose GCS reloads the cluster's state from Redis: the worker pod is
the same pod, never restarted, the same Ray node rejoins, the detached actor answers by name with
its state (the counter goes on from 1 to 2), and a new job runs tasks on the worker. Deleting
the RayCluster then deletes its keys from Redis (the operator's cleanup Job) before it goes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from compat_data import kuberay_sample

from arenastack_cluster.cluster import LocalCluster
from arenastack_cluster.processes import poll
from arenastack_cluster.rayjobs import DASHBOARD_PORT, JobResult, run_job, wait_raycluster_ready

pytestmark = pytest.mark.e2e

SAMPLE = "ray-cluster.external-redis.yaml"
NAMESPACE = "ray-gcs-ft"
# The sample's scripts, mounted on the head from its ConfigMap.
CREATE_ACTOR = "python /home/ray/samples/detached_actor.py"
INCREMENT = "python /home/ray/samples/increment_counter.py"
# The alive Ray nodes with CPUs (the head has none), and where a new task pinned to the first
# of them runs (it takes no CPU: the sample's detached actor holds the worker's only one).
NODES = (
    "python -c '"
    "import ray; "
    "from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as On; "
    "ray.init(); "
    'alive = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")); '
    "where = ray.remote(num_cpus=0)(lambda: ray.get_runtime_context().get_node_id()); "
    "task = where.options(scheduling_strategy=On(alive[0], soft=False)).remote(); "
    'print("NODES", ",".join(alive), ray.get(task, timeout=120))'
    "'"
)
TIMEOUT_S = 300.0


def _get(cl: LocalCluster, *args: str) -> Any:
    out = cl.kubectl("get", *args, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _wait(what: str, check: Callable[[], Any], timeout: float = TIMEOUT_S) -> Any:
    return poll(what, check, timeout, period=1.0)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _ray_pods(cl: LocalCluster, name: str, node_type: str) -> list[dict[str, Any]]:
    selector = f"ray.io/cluster={name},ray.io/node-type={node_type}"
    pods = (_get(cl, "pods", "-l", selector) or {}).get("items") or []
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _worker_states(cl: LocalCluster, name: str) -> dict[str, tuple[str, list[int]]] | None:
    """uid -> (name, restart counts) of the worker pods, or None while one is not ready."""
    pods = _ray_pods(cl, name, "worker")
    if not pods or not all(_ready(p) for p in pods):
        return None
    return {
        p["metadata"]["uid"]: (
            p["metadata"]["name"],
            [c["restartCount"] for c in p["status"]["containerStatuses"]],
        )
        for p in pods
    }


def _jobs_api_up(head_ip: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{head_ip}:{DASHBOARD_PORT}/api/jobs/", timeout=5):
            return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _job(head_ip: str, entrypoint: str) -> JobResult:
    """Run a job once the dashboard's Jobs API answers (a new head may still be starting);
    submitted once, since a job that increments must not run twice."""
    _wait(f"the Jobs API at {head_ip}", lambda: _jobs_api_up(head_ip))
    job = run_job(head_ip, entrypoint, timeout=TIMEOUT_S)
    assert job.status == "SUCCEEDED", job.logs[-3000:]
    return job


def _last_line(job: JobResult) -> str:
    return [line for line in job.logs.splitlines() if line.strip()][-1].strip()


def _nodes(head_ip: str) -> tuple[str, str]:
    """(the alive Ray nodes with CPUs, the node a new task ran on)."""
    (line,) = [line for line in _job(head_ip, NODES).logs.splitlines() if line.startswith("NODES")]
    _, alive, ran_on = line.split()
    return alive, ran_on


def _redis_keys(cl: LocalCluster, password: str, pattern: str) -> list[str]:
    (redis,) = (_get(cl, "pods", "-l", "app=redis") or {})["items"]
    out = subprocess.run(
        ["redis-cli", "-h", redis["status"]["podIP"], "--no-auth-warning", "--scan",
         "--pattern", pattern],
        env={"REDISCLI_AUTH": password, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return sorted(out.stdout.split())


# Two head starts and a dozen Ray jobs: a few minutes on a quiet machine, more on a busy one.
@pytest.mark.timeout(900)
def test_head_replaced_workers_and_detached_actor_survive(local_cluster, chart_operator) -> None:
    cl = local_cluster
    sample = kuberay_sample(SAMPLE)
    docs = [d for d in yaml.safe_load_all(sample.read_text()) if d]
    (rc_doc,) = [d for d in docs if d["kind"] == "RayCluster"]
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    name = rc_doc["metadata"]["name"]
    password = base64.b64decode(secret["data"]["password"]).decode()
    cl.kubectl("create", "namespace", NAMESPACE, check=False)
    cl.kubectl("apply", "-n", NAMESPACE, "-f", str(sample))
    try:
        rc = wait_raycluster_ready(cl, NAMESPACE, name, timeout=TIMEOUT_S)
        uid = rc["metadata"]["uid"]
        (head,) = _ray_pods(cl, name, "head")
        env = {e["name"]: e for e in head["spec"]["containers"][0]["env"]}
        assert env["RAY_REDIS_ADDRESS"]["value"] == "redis:6379"
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis-password-secret"
        assert env["RAY_external_storage_namespace"]["value"] == uid
        # The redis image's own user: the sample's pod sets none.
        (redis,) = (_get(cl, "pods", "-l", "app=redis") or {})["items"]
        whoami = cl.kubectl("exec", "-n", NAMESPACE, redis["metadata"]["name"], "--", "id",
                            "-u").stdout.strip()  # fmt: skip
        assert whoami == "999", whoami

        head_ip = head["status"]["podIP"]
        _job(head_ip, CREATE_ACTOR)
        assert _last_line(_job(head_ip, INCREMENT)) == "1"
        (worker_node, ran_on) = _nodes(head_ip)
        assert ran_on == worker_node
        # The GCS keeps the cluster's tables in Redis, under the RayCluster's uid.
        assert f"RAY{uid}@NODE" in _redis_keys(cl, password, f"RAY{uid}@*")

        # What the workers are just before the head goes (a loaded machine may have restarted
        # a worker whose raylet was slow to start; that is not what this test is about).
        workers = _wait("the worker pod ready", lambda: _worker_states(cl, name))
        assert len(workers) == 1, workers
        deleted = time.monotonic()
        cl.kubectl("delete", "pod", head["metadata"]["name"], "-n", NAMESPACE, "--wait=false")
        new_head = _wait(
            "a new, ready head pod",
            lambda: next(
                (p for p in _ray_pods(cl, name, "head")
                 if p["metadata"]["uid"] != head["metadata"]["uid"] and _ready(p)),
                None,
            ),
        )  # fmt: skip
        head_ready = time.monotonic()
        new_ip = new_head["status"]["podIP"]
        # The detached actor on the worker kept its state across the new GCS.
        assert _last_line(_job(new_ip, INCREMENT)) == "2"
        actor_back = time.monotonic()
        # The same Ray node (its raylet never stopped) is the cluster's worker, and new tasks
        # run there.
        assert _nodes(new_ip) == (worker_node, worker_node)
        # Same pods, not restarted meanwhile.
        assert _wait("the worker ready again", lambda: _worker_states(cl, name)) == workers
        # Deleting the cluster deletes its state from Redis (a Job run by the operator).
        removed = time.monotonic()
        cl.kubectl("delete", "raycluster", name, "-n", NAMESPACE, "--wait=false")
        _wait("the cluster's keys gone from Redis",
              lambda: _redis_keys(cl, password, f"RAY{uid}@*") == [])  # fmt: skip
        _wait("the RayCluster gone", lambda: _get(cl, "raycluster", name) is None)
        cleaned = time.monotonic()
        print(
            f"head pod deleted -> new head ready {head_ready - deleted:.1f} s, "
            f"-> detached actor answered {actor_back - deleted:.1f} s; worker pod "
            f"{next(iter(workers.values()))[0]} kept (no restart), Ray node {worker_node[:12]} "
            f"rejoined; cluster deleted -> Redis keys and RayCluster gone {cleaned - removed:.1f} s"
        )
    finally:
        cl.kubectl(
            "delete", "raycluster", name, "-n", NAMESPACE, "--wait=true", "--timeout=120s",
            check=False,
        )  # fmt: skip
        cl.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
