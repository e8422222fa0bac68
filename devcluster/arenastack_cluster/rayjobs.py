"""Ray's Jobs REST API on a head's dashboard (:8265): submit an entrypoint, wait, read logs."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

from arenastack_cluster.processes import ClusterError

if TYPE_CHECKING:
    from arenastack_cluster.cluster import LocalCluster

DASHBOARD_PORT = 8265
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass
class JobResult:
    submission_id: str
    status: str
    logs: str


def _call(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    # The first submission starts the job supervisor actor: seconds on a loaded node.
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def run_job(head_ip: str, entrypoint: str, timeout: float = 300) -> JobResult:
    """Submit `entrypoint` to the Ray cluster whose head is at `head_ip` and wait for it."""
    base = f"http://{head_ip}:{DASHBOARD_PORT}/api/jobs"
    job_id = _call("POST", f"{base}/", {"entrypoint": entrypoint})["submission_id"]
    deadline = time.monotonic() + timeout
    status = "PENDING"
    while time.monotonic() < deadline:
        status = _call("GET", f"{base}/{job_id}")["status"]
        if status in TERMINAL:
            break
        time.sleep(1)
    else:
        raise ClusterError(f"Ray job {job_id} still {status} after {timeout:.0f} s")
    logs = _call("GET", f"{base}/{job_id}/logs")["logs"]
    return JobResult(job_id, status, logs)


def wait_raycluster_ready(cluster: LocalCluster, namespace: str, name: str, timeout: float) -> dict:
    """The RayCluster once its status says `ready`; on time-out, an error with its status
    and pods, so a failure says where it stopped."""
    deadline = time.monotonic() + timeout
    rc: dict | None = None
    while time.monotonic() < deadline:
        out = cluster.kubectl("get", "raycluster", name, "-n", namespace, "-o", "json", check=False)
        rc = json.loads(out.stdout) if out.returncode == 0 else None
        if rc and (rc.get("status") or {}).get("state") == "ready":
            return rc
        time.sleep(2)
    pods = cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
    status = json.dumps((rc or {}).get("status"), indent=1)
    raise ClusterError(f"RayCluster {name} not ready after {timeout:.0f} s: {status}\n{pods}")
