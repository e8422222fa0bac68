"""GCS fault tolerance: the storage namespace, and the Job that removes a deleted cluster's state
from Redis. The Job's script runs here against a real redis-server with Ray's own cleanup
function (Ray of the CPU vLLM environment, which `make setup` builds; skipped where Debian's
redis-server is missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from compat_data import kuberay_sample

from arenastack_cluster import vllmenv
from arenastack_cluster.processes import free_port
from arenastack_operator.raycluster import names, redis_cleanup
from arenastack_operator.raycluster.model import Cluster
from arenastack_operator.raycluster.pods import SHELL, build_head_pod

REPO = Path(__file__).resolve().parents[2]
SAMPLE = "ray-cluster.external-redis.yaml"
PASSWORD = "s3cret"


def _cluster(annotations: dict[str, str] | None = None, **ft: Any) -> Cluster:
    sample = kuberay_sample(SAMPLE)
    body = next(yaml.safe_load_all(sample.read_text()))  # the first document: the RayCluster
    body["metadata"].update(namespace="ns", uid="u-1", annotations=annotations or {})
    body["spec"]["gcsFaultToleranceOptions"].update(ft)
    return Cluster.from_body(body)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize(
    ("annotations", "ft", "expected"),
    [
        ({}, {}, "u-1"),
        ({names.ANNOTATION_STORAGE_NAMESPACE: "from-annotation"}, {}, "from-annotation"),
        (
            {names.ANNOTATION_STORAGE_NAMESPACE: "from-annotation"},
            {"externalStorageNamespace": "from-option"},
            "from-option",
        ),
    ],
)
def test_storage_namespace_option_then_annotation_then_uid(
    annotations: dict[str, str], ft: dict[str, str], expected: str
) -> None:
    cluster = _cluster(annotations, **ft)
    assert cluster.storage_namespace == expected
    head = build_head_pod(cluster)
    assert _env(head["spec"]["containers"][0])["RAY_external_storage_namespace"] == expected
    assert head["metadata"]["annotations"][names.ANNOTATION_STORAGE_NAMESPACE] == expected


def test_cleanup_job_is_the_head_container_running_the_script() -> None:
    cluster = _cluster()
    job = redis_cleanup.build_job(cluster)
    assert job["metadata"]["name"] == "raycluster-external-redis-redis-cleanup"
    assert job["metadata"]["ownerReferences"] == [cluster.owner_reference]
    assert job["metadata"]["labels"] == {
        names.LABEL_CLUSTER: "raycluster-external-redis",
        names.LABEL_NODE_TYPE: redis_cleanup.NODE_TYPE,
    }
    assert job["metadata"]["annotations"] == {names.ANNOTATION_STORAGE_NAMESPACE: "u-1"}
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    head = build_head_pod(cluster)["spec"]["containers"][0]
    assert container["image"] == head["image"] and container["name"] == head["name"]
    assert container["command"] == SHELL and container["args"] == [redis_cleanup.SCRIPT]
    assert "readinessProbe" not in container and "livenessProbe" not in container
    assert container["resources"]["limits"] == {"cpu": "200m", "memory": "256Mi"}
    env = _env(container)
    assert env["RAY_REDIS_ADDRESS"] == "redis:6379"
    assert env["REDIS_PASSWORD"] == {
        "secretKeyRef": {"name": "redis-password-secret", "key": "password"}
    }
    assert env["RAY_external_storage_namespace"] == "u-1"
    assert env["RAY_redis_db_connect_retries"] == "120"
    # The head's volumes stay, so the container's mounts still resolve.
    assert pod["volumes"] == build_head_pod(cluster)["spec"]["volumes"]


def test_job_name_is_a_valid_object_name_for_long_cluster_names() -> None:
    name = redis_cleanup.job_name("c" * 63)
    assert len(name) <= names.DNS_LABEL_MAX and name.endswith("-redis-cleanup")


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([], None),
        ([{"type": "Complete", "status": "True"}], True),
        ([{"type": "Failed", "status": "True"}], False),
        ([{"type": "Failed", "status": "False"}], None),
    ],
)
def test_job_outcome(conditions: list[dict[str, str]], expected: bool | None) -> None:
    assert redis_cleanup.outcome({"status": {"conditions": conditions}}) is expected


# -- the script against a real Redis ------------------------------------------------------------


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[int]:
    if shutil.which("redis-server") is None:
        pytest.skip("Debian's redis-server is not installed (hack/apt.sh)")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while _cli(port, "PING") != "PONG":
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _cli(port: int, *args: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "--no-auth-warning", *args],
        env={"REDISCLI_AUTH": PASSWORD, "PATH": os.environ["PATH"]},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return out.stdout.strip()


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "redis://127.0.0.1:{port}"])
def test_script_deletes_exactly_the_clusters_keys(redis: int, address: str) -> None:
    # Keys as Ray 2.60's GCS writes them: RAY<namespace>@<table> hashes.
    for namespace in ("gone", "kept"):
        for table in ("NODE", "KV", "ACTOR"):
            _cli(redis, "HSET", f"RAY{namespace}@{table}", "k", "v")
    env = {
        "PATH": f"{vllmenv.vllm_python().parent}:{os.environ['PATH']}",
        "RAY_REDIS_ADDRESS": address.format(port=redis),
        "REDIS_PASSWORD": PASSWORD,
        "RAY_external_storage_namespace": "gone",
    }
    done = subprocess.run(
        [*SHELL, redis_cleanup.SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(_cli(redis, "KEYS", "*").split()) == [
        "RAYkept@ACTOR", "RAYkept@KV", "RAYkept@NODE"]  # fmt: skip
