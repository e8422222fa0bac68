"""A deleted RayCluster with GCS fault tolerance has its state removed from Redis first: the
operator holds it with a finalizer, deletes its pods, runs the cleanup Job and lets it go.

On simulated nodes kwok completes the Job's pod, so no Redis is involved here; the Job's script
runs against a real Redis in tests/unit/test_raycluster_redis_cleanup.py, and the whole flow with
real Ray and Redis in tests/e2e/test_raycluster_gcs_ft.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml
from kube_helpers import get, wait_for

from arenastack_operator.raycluster import names, redis_cleanup

pytestmark = pytest.mark.integration

SMALL = {"limits": {"cpu": "100m", "memory": "128Mi"}}


def ft_cluster(name: str) -> str:
    container = {"image": "rayproject/ray:2.60.0", "resources": SMALL}
    spec: dict[str, Any] = {
        "rayVersion": "2.60.0",
        "gcsFaultToleranceOptions": {
            "redisAddress": "redis:6379",
            "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "redis", "key": "pw"}}},
        },
        "headGroupSpec": {"template": {"spec": {"containers": [
            {"name": "ray-head", **container}]}}},
        "workerGroupSpecs": [{"groupName": "cpu", "replicas": 1, "maxReplicas": 2,
                              "template": {"spec": {"containers": [
                                  {"name": "ray-worker", **container}]}}}],
    }  # fmt: skip
    return yaml.safe_dump(
        {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": name}, "spec": spec}
    )


def _finalizers(cluster, namespace: str, name: str) -> list[str] | None:
    body = get(cluster, "raycluster", namespace, name)
    return None if body is None else body["metadata"].get("finalizers") or []


def _ray_pods(cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return get(cluster, "pods", namespace, selector=f"{names.LABEL_CLUSTER}={name}") or []


def test_deletion_waits_for_the_cleanup_job(cluster, operator_runner, namespace) -> None:
    operator = operator_runner.start()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=ft_cluster("ft"))
    wait_for(
        "the finalizer", lambda: redis_cleanup.FINALIZER in _finalizers(cluster, namespace, "ft")
    )
    wait_for("head and worker", lambda: len(_ray_pods(cluster, namespace, "ft")) == 2)
    uid = get(cluster, "raycluster", namespace, "ft")["metadata"]["uid"]

    cluster.kubectl("delete", "raycluster", "ft", "-n", namespace, "--wait=false")
    job_name = redis_cleanup.job_name("ft")
    job = wait_for("the cleanup Job", lambda: get(cluster, "job", namespace, job_name))
    # Created once the head was gone, so its GCS could no longer write to Redis.
    head_gone = [p for p in _ray_pods(cluster, namespace, "ft")
                 if p["metadata"]["labels"][names.LABEL_NODE_TYPE] == names.NODE_HEAD]  # fmt: skip
    assert head_gone == []
    assert job["metadata"]["annotations"][names.ANNOTATION_STORAGE_NAMESPACE] == uid
    assert job["metadata"]["ownerReferences"][0]["uid"] == uid
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RAY_external_storage_namespace"]["value"] == uid
    wait_for("the RayCluster gone", lambda: get(cluster, "raycluster", namespace, "ft") is None)
    events = get(cluster, "events", namespace) or []
    reasons = {e["reason"] for e in events if e["involvedObject"].get("uid") == uid}
    assert {"CreatedRedisCleanupJob", "RedisCleanupSucceeded"} <= reasons, reasons
    assert operator.proc.poll() is None, operator.output()[-4000:]


def test_a_namespace_being_deleted_is_not_held_up(cluster, operator_runner) -> None:
    """A namespace being deleted refuses the cleanup Job; the finalizer must go anyway, or the
    namespace would never finish deleting."""
    operator = operator_runner.start()
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=ft_cluster("ft"))
    wait_for(
        "the finalizer", lambda: redis_cleanup.FINALIZER in _finalizers(cluster, namespace, "ft")
    )
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")

    wait_for(
        f"namespace {namespace} deleted",
        lambda: cluster.kubectl("get", "namespace", namespace, check=False).returncode != 0,
        timeout=120,
    )
    assert operator.proc.poll() is None, operator.output()[-4000:]
