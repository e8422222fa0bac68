"""Pure builders of a RayJob's children and requests: its RayCluster and the head Service
under the job's name, the submitter Job (K8sJobMode) or the head pod's submitter container
(SidecarMode), the body of a Jobs API submission (HTTPMode). No I/O.

Names, labels and the submit command follow KubeRay's (common/job.go, rayjob_controller.go),
so tools that look for a RayJob's cluster or submitter find them the same way.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Final

from arenastack_operator import constants
from arenastack_operator.raycluster import names as cluster_names
from arenastack_operator.raycluster.model import Cluster
from arenastack_operator.raycluster.pods import auth_env
from arenastack_operator.raycluster.service import build_head_service
from arenastack_operator.rayjob import spec as s
from arenastack_operator.rayjob.model import SUBMITTER_CONTAINER, Job

LABEL_ORIGIN_NAME: Final = "ray.io/originated-from-cr-name"
LABEL_ORIGIN_KIND: Final = "ray.io/originated-from-crd"
ORIGIN_KIND: Final = "RayJob"
ENV_DASHBOARD_ADDRESS: Final = "RAY_DASHBOARD_ADDRESS"
ENV_SUBMISSION_ID: Final = "RAY_JOB_SUBMISSION_ID"
DASHBOARD_PORT_NAME: Final = "dashboard"
# The sidecar's wait for the dashboard: KubeRay's readiness check of the GCS, 10 s per try.
SIDECAR_CHECK_TIMEOUT_S: Final = 10
# KubeRay's default submitter resources.
SUBMITTER_RESOURCES: Final = {
    "limits": {"cpu": "1", "memory": "1Gi"},
    "requests": {"cpu": "500m", "memory": "200Mi"},
}


def with_suffix(job_name: str, suffix: str) -> str:
    """`<job>-<suffix>`: the generated cluster name and Ray job id (KubeRay's pattern)."""
    return f"{job_name}-{suffix}"


def origin_labels(job: Job) -> dict[str, str]:
    return {LABEL_ORIGIN_NAME: job.name, LABEL_ORIGIN_KIND: ORIGIN_KIND}


def ray_cluster(job: Job, name: str, job_id: str, address: str = "") -> dict[str, Any]:
    """The RayCluster made for the job: its rayClusterSpec, with the job's labels and
    annotations (as KubeRay copies them), owned by the job. In SidecarMode the head pod also
    runs the submitter, never restarted (a restart would submit again)."""
    assert job.spec.ray_cluster_spec is not None
    spec = job.spec.ray_cluster_spec.to_json()
    if job.mode == s.MODE_SIDECAR:
        head = spec["headGroupSpec"]["template"]["spec"]
        own = Cluster(name, job.namespace, "", 0, job.spec.ray_cluster_spec)
        head["containers"].append(
            sidecar_submitter(job, own, head["containers"][0], job_id, address)
        )
        head["restartPolicy"] = "Never"
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {
            "name": name,
            "namespace": job.namespace,
            "labels": {**job.labels, **origin_labels(job)},
            "annotations": dict(job.annotations),
            "ownerReferences": [job.owner_reference],
        },
        "spec": spec,
    }


def head_service(job: Job, cluster: dict[str, Any]) -> dict[str, Any]:
    """`<job>-head-svc`: the cluster's head Service under the job's name, owned by the job,
    so that clients of the job reach its head by a name that survives the cluster (as
    KubeRay's BuildHeadServiceForRayJob)."""
    service = build_head_service(Cluster.from_body(cluster))
    service["metadata"] = {
        **service["metadata"],
        "name": cluster_names.head_service_name(job.name),
        "labels": {
            **origin_labels(job),
            cluster_names.LABEL_NODE_TYPE: cluster_names.NODE_HEAD,
            cluster_names.LABEL_IDENTIFIER: cluster_names.identifier(
                job.name, cluster_names.NODE_HEAD
            ),
        },
        "ownerReferences": [job.owner_reference],
    }
    return service


def dashboard_url(cluster: str, namespace: str, cluster_status: dict[str, Any]) -> str:
    """host:port of the dashboard through the head Service (the one the cluster's status
    names, which may have a name of its own), as KubeRay reports it."""
    endpoints = cluster_status.get("endpoints") or {}
    port = endpoints.get(DASHBOARD_PORT_NAME) or str(cluster_names.DASHBOARD_PORT)
    service = (cluster_status.get("head") or {}).get("serviceName")
    host = cluster_names.service_fqdn(
        service or cluster_names.head_service_name(cluster), namespace
    )
    return f"{host}:{port}"


def _number(value: float) -> str:
    return f"{value:f}"


def _submit_words(job: Job, url: str, job_id: str) -> list[str]:
    """`ray job submit ... --submission-id <id>` with the job's settings, before the `--`."""
    spec = job.spec
    submit = ["ray", "job", "submit", "--address", url]
    if job.mode == s.MODE_K8S_JOB:
        submit.append("--no-wait")
    runtime_env = job.runtime_env
    if runtime_env:
        submit += ["--runtime-env-json", json.dumps(runtime_env, sort_keys=True)]
    if spec.metadata:
        submit += ["--metadata-json", json.dumps(spec.metadata, sort_keys=True)]
    submit += ["--submission-id", job_id]
    if spec.entrypoint_num_cpus:
        submit += ["--entrypoint-num-cpus", _number(spec.entrypoint_num_cpus)]
    if spec.entrypoint_num_gpus:
        submit += ["--entrypoint-num-gpus", _number(spec.entrypoint_num_gpus)]
    if spec.entrypoint_resources:
        submit += ["--entrypoint-resources", spec.entrypoint_resources]
    return submit


def _submit_line(job: Job, url: str, job_id: str) -> str:
    quoted = " ".join(shlex.quote(word) for word in _submit_words(job, url, job_id))
    # The entrypoint is the user's shell command line, passed on as written (as KubeRay does).
    return f"{quoted} -- {(job.spec.entrypoint or '').strip()} ;"


def submit_command(job: Job, address: str, job_id: str) -> str:
    """The submitter Job's shell command: submit unless the job id exists already (the
    submitter Job may run more than once), then follow the job's logs until it ends."""
    url = address if address.startswith("http://") else f"http://{address}"
    status = f"ray job status --address {shlex.quote(url)} {shlex.quote(job_id)}"
    follow = f"ray job logs --address {shlex.quote(url)} --follow {shlex.quote(job_id)}"
    return f"if ! {status} >/dev/null 2>&1 ; then {_submit_line(job, url, job_id)} fi ; {follow}"


def sidecar_command(job: Job, dashboard_port: int, job_id: str) -> str:
    """The sidecar's shell command: wait for the dashboard's GCS check in the same pod, then
    submit and follow (it is never restarted, so it submits once)."""
    url = f"http://127.0.0.1:{dashboard_port}"
    check = (f"wget --tries 1 -T {SIDECAR_CHECK_TIMEOUT_S} -q -O- "
             f"http://localhost:{dashboard_port}/api/gcs_healthz | grep success")  # fmt: skip
    waiting = json.dumps(f"Waiting for Ray Dashboard GCS to become healthy at {url} ...")
    wait = f"until {check} >/dev/null 2>&1 ; do echo {waiting} ; sleep 2 ; done ;"
    return f"{wait} {_submit_line(job, url, job_id)}"


def _dashboard_port(head: dict[str, Any]) -> int:
    for port in head.get("ports") or []:
        if port.get("name") == DASHBOARD_PORT_NAME:
            return int(port["containerPort"])
    return cluster_names.DASHBOARD_PORT


def _with_submitter_env(
    env: list[dict[str, Any]], cluster: Cluster, address: str, job_id: str
) -> list[dict[str, Any]]:
    """`env` and what a submitter's own command may use (KubeRay's names), with the cluster's
    token when it has token authentication; a name already set is left as it is."""
    added = [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": ENV_DASHBOARD_ADDRESS, "value": address},
        {"name": ENV_SUBMISSION_ID, "value": job_id},
    ]
    present = {e.get("name") for e in env}
    return [*env, *added, *(e for e in auth_env(cluster) if e["name"] not in present)]


def sidecar_submitter(
    job: Job, cluster: Cluster, head: dict[str, Any], job_id: str, address: str = ""
) -> dict[str, Any]:
    """The submitter container of SidecarMode, in the head pod beside Ray."""
    return {
        "name": SUBMITTER_CONTAINER,
        "image": head["image"],
        "resources": json.loads(json.dumps(SUBMITTER_RESOURCES)),
        "command": ["/bin/bash", "-ce", "--"],
        "args": [sidecar_command(job, _dashboard_port(head), job_id)],
        "env": _with_submitter_env([], cluster, address, job_id),
    }


def submitter_job(job: Job, cluster: Cluster, address: str, job_id: str) -> dict[str, Any]:
    """The Kubernetes Job that submits the Ray job (K8sJobMode), named after the RayJob; with
    the cluster's token when it has token authentication."""
    template = json.loads(json.dumps(job.spec.submitter_pod_template or {}))
    pod_spec = template.setdefault("spec", {})
    containers = pod_spec.setdefault("containers", [])
    if not containers:
        containers.append({
            "name": SUBMITTER_CONTAINER,
            "image": cluster.head_container["image"],
            "resources": json.loads(json.dumps(SUBMITTER_RESOURCES)),
        })  # fmt: skip
        pod_spec.setdefault("restartPolicy", "Never")
    container = containers[0]
    if not container.get("command"):
        container["command"] = ["/bin/bash", "-ce", "--"]  # stop at the first failure, as KubeRay
        container["args"] = [submit_command(job, address, job_id)]
    container["env"] = _with_submitter_env(container.get("env") or [], cluster, address, job_id)
    labels = {**origin_labels(job), cluster_names.LABEL_CREATED_BY: constants.MANAGED_BY}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job.name,
            "namespace": job.namespace,
            "labels": labels,
            "ownerReferences": [job.owner_reference],
        },
        "spec": {"backoffLimit": job.submitter_backoff_limit, "template": template},
    }


def submission(job: Job, job_id: str) -> dict[str, Any]:
    """The body of `POST /api/jobs/` (HTTPMode)."""
    spec = job.spec
    body: dict[str, Any] = {"entrypoint": (spec.entrypoint or "").strip(), "submission_id": job_id}
    if job.runtime_env:
        body["runtime_env"] = job.runtime_env
    if spec.metadata:
        body["metadata"] = dict(spec.metadata)
    if spec.entrypoint_num_cpus:
        body["entrypoint_num_cpus"] = spec.entrypoint_num_cpus
    if spec.entrypoint_num_gpus:
        body["entrypoint_num_gpus"] = spec.entrypoint_num_gpus
    if spec.entrypoint_resources:
        body["entrypoint_resources"] = json.loads(spec.entrypoint_resources)
    return body
