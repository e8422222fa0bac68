"""Ray's token authentication end to end on the real node, with the chart's operator: RayJobs
whose clusters (Ray 2.60) set authOptions mode token. The operator makes each cluster's
Secret; the worker joins the head (its wait-gcs-ready and raylet hold the token), the
submitter Job submits with it (K8sJobMode), the operator itself submits and polls with it
(HTTPMode), and the dashboard refuses a request that has no token."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

NAMESPACE = "token-auth-e2e"
IMAGE = "rayproject/ray:2.60.0"
TIMEOUT_S = 480
# Runs its tasks on the worker: the head offers no CPU to Ray.
ON_WORKER = (
    'python -c "import ray, socket; ray.init(); '
    "f = ray.remote(lambda: socket.gethostname()); "
    "print('tasks ran on', sorted(set(ray.get([f.remote() for _ in range(4)]))))\""
)
UNAUTHENTICATED = (
    "import urllib.request, urllib.error\n"
    "try:\n"
    "    urllib.request.urlopen('http://127.0.0.1:8265/api/jobs/', timeout=10)\n"
    "    print('answered')\n"
    "except urllib.error.HTTPError as e:\n"
    "    print('refused', e.code)\n"
)


def _container(name: str) -> dict[str, Any]:
    return {"name": name, "image": IMAGE,
            "resources": {"limits": {"cpu": "1", "memory": "2Gi"},
                          "requests": {"cpu": "100m", "memory": "512Mi"}}}  # fmt: skip


def _job(name: str, mode: str, entrypoint: str, workers: int) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "rayVersion": "2.60.0",
        "authOptions": {"mode": "token"},
        "headGroupSpec": {"rayStartParams": {"num-cpus": "0"},
                          "template": {"spec": {"containers": [_container("ray-head")]}}},
    }  # fmt: skip
    if workers:
        cluster["workerGroupSpecs"] = [{
            "groupName": "cpu", "replicas": workers, "minReplicas": workers,
            "maxReplicas": workers, "rayStartParams": {},
            "template": {"spec": {"containers": [_container("ray-worker")]}},
        }]  # fmt: skip
    return {
        "apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": name},
        "spec": {"entrypoint": entrypoint, "submissionMode": mode,
                 "shutdownAfterJobFinishes": False, "rayClusterSpec": cluster},
    }  # fmt: skip


def _get(cl, *args: str) -> Any:
    out = cl.kubectl("get", *args, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _finished(cl, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = (_get(cl, "rayjob", name) or {}).get("status") or {}
        if status.get("jobDeploymentStatus") in ("Complete", "Failed"):
            return status
        time.sleep(3)
    pods = cl.kubectl("get", "pods,jobs", "-n", NAMESPACE, "-o", "wide", check=False).stdout
    raise AssertionError(f"RayJob {name} did not finish: {status}\n{pods}")


@pytest.fixture(scope="module")
def namespace(local_cluster, chart_operator):
    local_cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    yield local_cluster
    local_cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=180s",
                          check=False)  # fmt: skip


def test_jobs_run_on_token_authenticated_clusters_and_strangers_are_refused(namespace):
    cl = namespace
    jobs = [_job("by-submitter", "K8sJobMode", ON_WORKER, workers=1),
            _job("by-operator", "HTTPMode", "python -c \"print('submitted by the operator')\"",
                 workers=0)]  # fmt: skip
    cl.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(jobs))

    submitted = _finished(cl, "by-submitter")
    assert (submitted["jobStatus"], submitted["jobDeploymentStatus"]) == ("SUCCEEDED", "Complete")
    logs = cl.kubectl("logs", "-n", NAMESPACE, "job/by-submitter").stdout
    assert "tasks ran on ['" in logs and "-cpu-worker-" in logs, logs[-3000:]
    by_operator = _finished(cl, "by-operator")
    assert by_operator["jobStatus"] == "SUCCEEDED", by_operator

    # The generated token: in a Secret named after the cluster, owned by it, never in a status.
    name = submitted["rayClusterName"]
    secret = _get(cl, "secret", name)
    token = base64.b64decode(secret["data"]["auth_token"]).decode()
    assert len(token) >= 32 and secret["metadata"]["ownerReferences"][0]["kind"] == "RayCluster"
    for status in (submitted, by_operator, (_get(cl, "raycluster", name) or {}).get("status")):
        assert token not in json.dumps(status)

    # The dashboard answers no one without the token.
    head = cl.kubectl("get", "pods", "-n", NAMESPACE, "-o", "name", "-l",
                      f"ray.io/cluster={name},ray.io/node-type=head").stdout.strip()  # fmt: skip
    probe = cl.kubectl("exec", "-n", NAMESPACE, head, "-c", "ray-head", "--",
                       "python", "-c", UNAUTHENTICATED).stdout  # fmt: skip
    assert probe.strip() in ("refused 401", "refused 403"), probe
