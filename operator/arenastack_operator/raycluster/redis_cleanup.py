"""Removing a deleted cluster's GCS state from Redis (no I/O here; handlers.py acts).

As KubeRay does: a RayCluster whose GCS keeps its state in Redis carries FINALIZER. Once it is
deleted, the operator deletes its pods and waits until the head is gone (its GCS could still
write), then runs a Job, built from the head pod, that deletes the cluster's storage namespace
from Redis with Ray's own cleanup function. When the Job has finished, the finalizer is
removed: after a failure too (best effort, as KubeRay since v1.1), with a warning naming the
storage namespace left behind. The Job is owned by the RayCluster, so it goes with it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from arenastack_operator.raycluster import names
from arenastack_operator.raycluster.model import Cluster
from arenastack_operator.raycluster.pods import RESTART_NEVER, SHELL, build_head_pod

FINALIZER: Final = "ray.io/gcs-ft-redis-cleanup-finalizer"  # KubeRay's, so either can finish
NODE_TYPE: Final = "redis-cleanup"  # ray.io/node-type of the Job and its pod
JOB_SUFFIX: Final = "-redis-cleanup"
ACTIVE_DEADLINE_S: Final = 300
RESOURCES: Final = {"cpu": "200m", "memory": "256Mi"}
# Redis may be restarting too: keep trying to connect for a minute.
CONNECT_ENV: Final = (
    ("RAY_redis_db_connect_retries", "120"),
    ("RAY_redis_db_connect_wait_milliseconds", "500"),
)
# Reads what the head's Ray container already has: RAY_REDIS_ADDRESS (host:port, maybe a
# redis:// or rediss:// URL, maybe a comma-separated list whose first entry is used),
# REDIS_PASSWORD, REDIS_USERNAME and RAY_external_storage_namespace. Exits 1 if Ray reports
# that nothing was deleted.
SCRIPT: Final = """python - <<'EOF'
import os, sys
from urllib.parse import urlparse
from ray._private.gcs_utils import cleanup_redis_storage
address = os.environ["RAY_REDIS_ADDRESS"].split(",")[0].strip()
url = urlparse(address if "://" in address else "redis://" + address)
namespace = os.environ["RAY_external_storage_namespace"]
print(f"deleting storage namespace {namespace} from Redis at {url.hostname}:{url.port}")
done = cleanup_redis_storage(
    host=url.hostname, port=url.port or 6379, use_ssl=url.scheme == "rediss",
    password=os.environ.get("REDIS_PASSWORD") or url.password or "",
    username=os.environ.get("REDIS_USERNAME") or url.username or "",
    storage_namespace=namespace,
)
sys.exit(0 if done else 1)
EOF"""


def job_name(cluster: str) -> str:
    return f"{cluster[: names.DNS_LABEL_MAX - len(JOB_SUFFIX)].rstrip('-')}{JOB_SUFFIX}"


def build_job(cluster: Cluster) -> dict[str, Any]:
    """The cleanup Job: the head pod's Ray container (image, env, volumes, scheduling) running
    the script instead of Ray, small, without probes or sidecars, never restarted."""
    head = build_head_pod(cluster)
    spec = head["spec"]
    ray = copy.deepcopy(spec["containers"][names.RAY_CONTAINER_INDEX])
    ray["command"] = list(SHELL)
    ray["args"] = [SCRIPT]
    ray["resources"] = {"limits": dict(RESOURCES), "requests": dict(RESOURCES)}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        ray.pop(probe, None)
    present = {e.get("name") for e in ray.get("env") or []}
    ray.setdefault("env", []).extend(
        {"name": k, "value": v} for k, v in CONNECT_ENV if k not in present
    )
    spec["containers"] = [ray]
    spec["restartPolicy"] = RESTART_NEVER
    labels = {names.LABEL_CLUSTER: cluster.name, names.LABEL_NODE_TYPE: NODE_TYPE}
    annotations = {names.ANNOTATION_STORAGE_NAMESPACE: cluster.storage_namespace}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(cluster.name),
            "namespace": cluster.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [cluster.owner_reference],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": ACTIVE_DEADLINE_S,
            "template": {
                "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                "spec": spec,
            },
        },
    }


def outcome(job: Mapping[str, Any]) -> bool | None:
    """True once the Job succeeded, False once it failed, None while it runs."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return True
        if condition.get("type") == "Failed":
            return False
    return None
