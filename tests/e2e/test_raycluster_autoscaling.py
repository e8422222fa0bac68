"""Ray's own autoscaler, unchanged, drives the operator (autoscaler v1 and v2).

The chart's operator runs as a pod on the local node and reconciles a RayCluster with
`enableInTreeAutoscaling: true`; the head pod's `autoscaler` sidecar is Ray 2.60's own
`ray kuberay-autoscaler`. Ray jobs call `ray.autoscaler.sdk.request_resources`. The test never
writes the RayCluster after creating it, so every change of replicas and scaleStrategy is the
autoscaler's. Both the RayCluster and its pods are watched from before creation to the end,
so every value the autoscaler wrote and every pod the operator made is seen.

Steps: demand 2 CPUs (the head offers none) -> the autoscaler patches replicas 0 -> 2 and
the operator creates two workers that join Ray; demand 1 CPU -> the autoscaler names one idle
worker in workersToDelete and the operator deletes exactly that pod; withdraw the demand ->
the last worker goes the same way.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from arenastack_cluster.cluster import LocalCluster
from arenastack_cluster.processes import poll
from arenastack_cluster.rayjobs import DASHBOARD_PORT, run_job, wait_raycluster_ready

pytestmark = pytest.mark.e2e

IDLE_TIMEOUT_S = 10
# Ray's autoscaler calls the apiserver with `requests`, so the apiserver records its writes
# under this field manager (the operator and kubectl have other names).
AUTOSCALER_FIELD_MANAGER = "python-requests"
# What each generation logs once it runs (ray/autoscaler/_private/monitor.py,
# ray/autoscaler/v2/autoscaler.py).
STARTED_MARKER = {"v1": "Monitor: Started", "v2": "Using Autoscaling Config"}

MANIFEST = """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {{name: {name}}}
spec:
  rayVersion: "2.60.0"
  enableInTreeAutoscaling: true
  autoscalerOptions: {{version: {version}, idleTimeoutSeconds: {idle}, upscalingMode: Default}}
  headGroupSpec:
    rayStartParams: {{num-cpus: "0"}}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.60.0
          resources:
            limits: {{cpu: "1", memory: 2Gi}}
            requests: {{cpu: 500m, memory: 1Gi}}
  workerGroupSpecs:
  - groupName: cpu
    replicas: 0
    minReplicas: 0
    maxReplicas: 3
    rayStartParams: {{num-cpus: "1"}}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.60.0
          resources:
            limits: {{cpu: "1", memory: 1Gi}}
            requests: {{cpu: 500m, memory: 1Gi}}
"""


class Watch:
    """`kubectl get --watch` in a thread, keeping every event in order."""

    def __init__(self, cluster: LocalCluster, *args: str) -> None:
        command = [str(cluster.bin / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "get",
                   *args, "--watch", "--output-watch-events", "--show-managed-fields", "-o",
                   "json"]  # fmt: skip
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        decoder = json.JSONDecoder()
        buffer = ""
        for line in self._proc.stdout:
            buffer += line
            try:
                event, end = decoder.raw_decode(buffer.lstrip())
            except ValueError:
                continue  # an object spans several lines
            buffer = buffer.lstrip()[end:]
            self.events.append((event["type"], event["object"]))

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)

    def objects(self) -> list[dict[str, Any]]:
        return [obj for _, obj in list(self.events)]

    def latest(self) -> dict[str, Any] | None:
        objects = self.objects()
        return objects[-1] if objects else None

    def first(self, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        return next((obj for obj in self.objects() if check(obj)), None)


def request_resources(head_ip: str, call: str) -> None:
    """Run `ray.autoscaler.sdk.<call>` as a Ray job's driver on the head; the request stays
    in the GCS after the driver exits."""
    script = f"import ray; ray.init(); from ray.autoscaler.sdk import request_resources; {call}"
    job = run_job(head_ip, f'python -c "{script}"', timeout=120)
    assert job.status == "SUCCEEDED", job.logs[-3000:]


def alive_worker_ips(head_ip: str) -> set[str]:
    """Ray's own view of its live worker nodes (the dashboard's state API)."""
    url = f"http://{head_ip}:{DASHBOARD_PORT}/api/v0/nodes?limit=100"
    with urllib.request.urlopen(url, timeout=10) as resp:
        nodes = json.loads(resp.read())["data"]["result"]["result"]
    return {n["node_ip"] for n in nodes if n["state"] == "ALIVE" and not n["is_head_node"]}


def replicas(rc: dict[str, Any]) -> int | None:
    return rc["spec"]["workerGroupSpecs"][0].get("replicas")


def workers_to_delete(rc: dict[str, Any]) -> list[str]:
    group = rc["spec"]["workerGroupSpecs"][0]
    return list((group.get("scaleStrategy") or {}).get("workersToDelete") or [])


def written_by_autoscaler(rc: dict[str, Any]) -> bool:
    """Whether the autoscaler's field manager owns the worker groups in this version."""
    for entry in rc["metadata"].get("managedFields") or []:
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if entry.get("manager") == AUTOSCALER_FIELD_MANAGER and "f:workerGroupSpecs" in spec:
            return True
    return False


def is_worker(pod: dict[str, Any]) -> bool:
    return pod["metadata"]["labels"].get("ray.io/node-type") == "worker"


def gone(kind: str, pod: dict[str, Any]) -> bool:
    return kind == "DELETED" or bool(pod["metadata"].get("deletionTimestamp"))


def live_workers(pods: Watch) -> dict[str, dict[str, Any]]:
    """Worker pods as their latest events show them, without deleted or terminating ones."""
    latest: dict[str, dict[str, Any]] = {}
    for kind, pod in list(pods.events):
        if gone(kind, pod):
            latest.pop(pod["metadata"]["name"], None)
        elif is_worker(pod):
            latest[pod["metadata"]["name"]] = pod
    return latest


def running(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") == "Running" and bool(pod["status"].get("podIP"))


def autoscaler_log(cluster: LocalCluster, ns: str, head: str) -> str:
    return cluster.kubectl("logs", "-n", ns, head, "-c", "autoscaler", check=False).stdout


def print_diagnostics(cluster: LocalCluster, ns: str, pods: Watch) -> None:
    """What each pod's containers did, and the end of their logs (previous run too)."""
    print(cluster.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False).stdout)
    print(yaml.safe_dump([(k, p["metadata"]["name"], p["status"].get("phase"))
                          for k, p in pods.events]))  # fmt: skip
    latest = {p["metadata"]["name"]: p for p in pods.objects()}
    for name, pod in latest.items():
        for status in pod["status"].get("containerStatuses") or []:
            container = status["name"]
            print(f"--- {name}/{container}: {json.dumps(status.get('lastState'))}")
            for previous in ("--previous", ""):
                args = ["logs", "-n", ns, name, "-c", container, "--tail=40"]
                print(cluster.kubectl(*args, *([previous] if previous else []), check=False).stdout)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_ray_autoscaler_scales_workers_up_and_down(
    local_cluster: LocalCluster, chart_operator: None, version: str
) -> None:
    cl = local_cluster
    ns, name = f"ray-autoscale-{version}", f"autoscale-{version}"
    cl.kubectl("create", "namespace", ns, check=False)
    pods = Watch(cl, "pods", "-n", ns, "-l", f"ray.io/cluster={name}")
    clusters = Watch(cl, "rayclusters", "-n", ns, "--field-selector", f"metadata.name={name}")
    manifest = MANIFEST.format(name=name, version=version, idle=IDLE_TIMEOUT_S)
    cl.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
    head_name = ""
    try:
        head_ip = wait_raycluster_ready(cl, ns, name, timeout=300)["status"]["head"]["podIP"]
        (head,) = [p for p in pods.objects() if not is_worker(p)][-1:]
        head_name = head["metadata"]["name"]
        assert [c["name"] for c in head["spec"]["containers"]] == ["ray-head", "autoscaler"]
        assert not live_workers(pods)
        # The generation that runs is the one asked for, not the one Ray would pick itself.
        other = STARTED_MARKER["v2" if version == "v1" else "v1"]
        log = poll(
            f"the autoscaler {version} to start",
            lambda: STARTED_MARKER[version] in (s := autoscaler_log(cl, ns, head_name)) and s,
            120,
        )
        assert other not in log

        # Scale up: two 1-CPU workers for a 2-CPU demand.
        start = time.monotonic()
        request_resources(head_ip, "request_resources(num_cpus=2)")
        t_job = time.monotonic()
        rc = poll(
            "the autoscaler to set replicas 2",
            lambda: clusters.first(lambda r: replicas(r) == 2),
            120,
        )
        t_patched = time.monotonic()
        assert written_by_autoscaler(rc), rc["metadata"].get("managedFields")
        workers = poll(
            "two Running worker pods",
            lambda: (w := live_workers(pods)) and len(w) == 2 and all(map(running, w.values()))
            and w,
            180,
        )  # fmt: skip
        ips = {p["status"]["podIP"] for p in workers.values()}
        poll("both workers to join Ray", lambda: alive_worker_ips(head_ip) == ips, 180)
        t_joined = time.monotonic()

        # Less demand: the autoscaler picks one idle worker, and exactly that pod goes.
        request_resources(head_ip, "request_resources(num_cpus=1)")
        t_less = time.monotonic()
        rc = poll(
            "the autoscaler to name a worker to delete",
            lambda: clusters.first(lambda r: bool(workers_to_delete(r))),
            120,
        )
        (first,) = workers_to_delete(rc)
        assert first in workers and replicas(rc) == 1, (first, replicas(rc))
        (kept,) = set(workers) - {first}
        poll(f"pod {first} deleted", lambda: set(live_workers(pods)) == {kept}, 120)
        t_first_gone = time.monotonic()
        kept_ip = workers[kept]["status"]["podIP"]
        poll("Ray to see one worker", lambda: alive_worker_ips(head_ip) == {kept_ip}, 120)

        # Withdraw the demand: the last worker goes the same way.
        request_resources(head_ip, "request_resources(bundles=[])")
        t_withdrawn = time.monotonic()
        poll("the last worker deleted", lambda: not live_workers(pods), 180)
        t_all_gone = time.monotonic()
        # v1 clears workersToDelete once the pods are gone; v2 only with its next scale
        # request, so there it may still name the deleted pod.
        poll(
            "replicas 0, workersToDelete naming no live pod (and cleared under v1)",
            lambda: (r := clusters.latest()) and replicas(r) == 0
            and not set(workers_to_delete(r)) & set(live_workers(pods))
            and (version == "v2" or not workers_to_delete(r)),
            120,
        )  # fmt: skip
        poll("Ray to see no worker", lambda: not alive_worker_ips(head_ip), 120)

        # Every value the autoscaler wrote, and every pod the operator made or deleted.
        named = {w for r in clusters.objects() for w in workers_to_delete(r)}
        made = {p["metadata"]["name"] for p in pods.objects()}
        deleted = {p["metadata"]["name"] for kind, p in list(pods.events) if gone(kind, p)}
        assert named == {first, kept}, named
        assert made == set(workers) | {head_name}, made  # no extra worker, no second head
        assert deleted == named, (deleted, named)  # exactly the pods named, nothing else
        assert max(replicas(r) or 0 for r in clusters.objects()) == 2
        assert clusters.latest()["status"]["state"] == "ready"  # type: ignore[index]
        # Its RBAC and environment were enough: no call the apiserver refused, no crash.
        log = autoscaler_log(cl, ns, head_name)
        print("\n".join(x for x in log.splitlines() if "WARN" in x or "ERROR" in x))
        assert "Forbidden" not in log and "Traceback" not in log, log[-3000:]
        print(
            f"\nautoscaler {version}: request_resources(num_cpus=2) job {t_job - start:.1f} s, "
            f"then replicas patched +{t_patched - t_job:.1f} s, both workers in Ray "
            f"+{t_joined - t_job:.1f} s; demand 1 -> one pod deleted in "
            f"{t_first_gone - t_less:.1f} s; withdrawn -> last pod deleted in "
            f"{t_all_gone - t_withdrawn:.1f} s (idleTimeoutSeconds {IDLE_TIMEOUT_S})"
        )
    except BaseException:
        print_diagnostics(cl, ns, pods)
        raise
    finally:
        pods.stop()
        clusters.stop()
        cl.kubectl(
            "delete", "raycluster", name, "-n", ns, "--wait=true", "--timeout=120s", check=False
        )
