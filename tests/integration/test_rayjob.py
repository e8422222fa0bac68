"""The RayJob reconciler against a real control plane with simulated (kwok) nodes: what it
refuses and how it says so, the cluster it makes and the names it chooses, suspension, a
selected cluster that does not exist, and every RayJob sample of KubeRay's module. (Runs of
real Ray jobs: tests/e2e/test_rayjob_on_local_node.py.)"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from compat_data import KUBERAY_SAMPLES, kuberay_sample
from kube_helpers import get, wait_for
from operator_runner import OperatorProcess, OperatorRunner

from arenastack_operator.rayjob import builders

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "operator" / "examples" / "rayjob-sample.yaml"


@pytest.fixture(scope="module")
def rayjob_operator(
    cluster, crds, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    runner = OperatorRunner(
        operator_kubeconfig, tmp_path_factory.mktemp("rayjob-operator"), extra_args=()
    )
    cluster.kubectl(
        "delete", "lease", runner.lease_name, "-n", runner.lease_namespace, "--ignore-not-found"
    )
    process = runner.start()
    yield process
    runner.stop_all()


def example(name: str, **spec: Any) -> dict[str, Any]:
    job = copy.deepcopy(next(yaml.safe_load_all(EXAMPLE.read_text())))
    job["metadata"]["name"] = name
    job["spec"].update(spec)
    return job


def apply(cluster, namespace: str, body: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def status_of(cluster, namespace: str, name: str) -> dict[str, Any]:
    return (get(cluster, "rayjob", namespace, name) or {}).get("status") or {}


def events_of(cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    events = get(cluster, "events", namespace) or []
    return [e for e in events if e["involvedObject"].get("name") == name]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"suspend": True, "shutdownAfterJobFinishes": False},
         "spec.suspend: a RayJob with shutdownAfterJobFinishes set to false"),
        ({"submissionMode": "InteractiveMode", "backoffLimit": 1},
         "spec.backoffLimit is incompatible with InteractiveMode"),
        ({"rayClusterSpec": None}, "one of rayClusterSpec or clusterSelector must be set"),
    ],
)  # fmt: skip
def test_a_job_the_operator_cannot_run_says_why(cluster, namespace, rayjob_operator, spec, message):
    apply(cluster, namespace, example("bad", **spec))
    status = wait_for(
        "ValidationFailed",
        lambda: (
            (s := status_of(cluster, namespace, "bad")).get("jobDeploymentStatus")
            == "ValidationFailed"
            and s
        ),
    )
    assert status["reason"] == "ValidationFailed"
    assert message in status["message"], status
    warning = wait_for("a Warning event", lambda: [
        e for e in events_of(cluster, namespace, "bad") if e["type"] == "Warning"])  # fmt: skip
    assert message in warning[0]["message"]
    assert not get(cluster, "rayclusters", namespace)


def test_a_job_gets_its_own_cluster_named_once(cluster, namespace, rayjob_operator):
    apply(cluster, namespace, example("pi"))
    status = wait_for("a cluster name", lambda: status_of(cluster, namespace, "pi").get(
        "rayClusterName"))  # fmt: skip
    full = status_of(cluster, namespace, "pi")
    assert full["jobId"].startswith("pi-") and status.startswith("pi-")
    assert full["jobDeploymentStatus"] in ("Initializing", "Running")
    rc = wait_for("the RayCluster", lambda: get(cluster, "raycluster", namespace, status))
    labels = rc["metadata"]["labels"]
    assert labels[builders.LABEL_ORIGIN_NAME] == "pi"
    assert labels[builders.LABEL_ORIGIN_KIND] == "RayJob"
    owner = rc["metadata"]["ownerReferences"][0]
    job = get(cluster, "rayjob", namespace, "pi")
    assert (owner["kind"], owner["uid"]) == ("RayJob", job["metadata"]["uid"])
    assert "ray.io/rayjob-finalizer" in job["metadata"]["finalizers"]
    # Only one cluster, whatever the number of reconciles meanwhile.
    assert [c["metadata"]["name"] for c in get(cluster, "rayclusters", namespace)] == [status]

    # Suspending deletes the cluster and forgets the run.
    cluster.kubectl("patch", "rayjob", "pi", "-n", namespace, "--type=merge",
                    "-p", '{"spec":{"suspend":true}}')  # fmt: skip
    suspended = wait_for(
        "Suspended",
        lambda: (
            (s := status_of(cluster, namespace, "pi")).get("jobDeploymentStatus") == "Suspended"
            and s
        ),
    )
    assert "rayClusterName" not in suspended and "jobId" not in suspended
    wait_for("the cluster gone", lambda: not get(cluster, "rayclusters", namespace))


def test_a_selected_cluster_that_does_not_exist_is_waited_for(cluster, namespace, rayjob_operator):
    apply(cluster, namespace, example("on-shared", rayClusterSpec=None,
                                      clusterSelector={"ray.io/cluster": "shared"}))  # fmt: skip
    wait_for("RayClusterNotFound", lambda: [
        e for e in events_of(cluster, namespace, "on-shared")
        if e["reason"] == "RayClusterNotFound"])  # fmt: skip
    status = status_of(cluster, namespace, "on-shared")
    assert status["rayClusterName"] == "shared"
    assert status["jobDeploymentStatus"] == "Initializing"
    assert not get(cluster, "rayclusters", namespace)
    # Deleting it with no Ray job started releases the finalizer at once.
    cluster.kubectl("delete", "rayjob", "on-shared", "-n", namespace, "--timeout=30s")


# Every RayJob sample in KubeRay's module at the pinned version, applied unchanged: those
# refused name what is not supported yet; the others get their cluster (or the one selected).
RAYJOB_SAMPLES = sorted(p.name for p in KUBERAY_SAMPLES.glob("ray-job.*.yaml"))
REFUSED_SAMPLES: dict[str, str] = {}  # sample: what its ValidationFailed message names
APPLIED_KINDS = ("RayJob", "RayCluster", "ConfigMap")


def test_kuberay_rayjob_samples_are_run_or_refused_by_name(cluster, namespace, rayjob_operator):
    assert len(RAYJOB_SAMPLES) >= 17, f"KubeRay's samples are missing from {KUBERAY_SAMPLES}"
    jobs: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for index, sample in enumerate(RAYJOB_SAMPLES):
        ns = f"{namespace}-{index}"
        cluster.kubectl("create", "namespace", ns)
        docs = [d for d in yaml.safe_load_all(kuberay_sample(sample).read_text())
                if d and d.get("kind") in APPLIED_KINDS]  # fmt: skip
        for doc in docs:
            verb = "create" if doc["metadata"].get("generateName") else "apply"
            out = cluster.kubectl(verb, "-n", ns, "-f", "-", "-o", "json", input=json.dumps(doc))
            if doc["kind"] == "RayJob":
                jobs[sample] = (ns, json.loads(out.stdout)["metadata"]["name"], doc)
    try:
        for sample, (ns, name, doc) in jobs.items():
            wanted = REFUSED_SAMPLES.get(sample)
            if wanted is not None:
                status = wait_for(f"{sample}: ValidationFailed", lambda ns=ns, name=name: (
                    s := status_of(cluster, ns, name)).get("jobDeploymentStatus")
                    == "ValidationFailed" and s)  # fmt: skip
                assert wanted in status["message"], (sample, status)
                continue
            cluster_name = wait_for(f"{sample}: its cluster", lambda ns=ns, name=name: (
                status_of(cluster, ns, name).get("rayClusterName")))  # fmt: skip
            selected = (doc["spec"].get("clusterSelector") or {}).get("ray.io/cluster")
            if selected:
                assert cluster_name == selected, sample
                continue
            rc = wait_for(
                f"{sample}: RayCluster {cluster_name}",
                lambda ns=ns, c=cluster_name: get(cluster, "raycluster", ns, c),
            )
            assert rc["metadata"]["labels"][builders.LABEL_ORIGIN_NAME] == name, sample
            want = doc["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
            have = rc["spec"]["headGroupSpec"]["template"]["spec"]
            assert have["containers"][0]["image"] == want["containers"][0]["image"], sample
            if doc["spec"].get("submissionMode") == "SidecarMode":  # the submitter beside Ray
                assert have["containers"][-1]["name"] == "ray-job-submitter", sample
                assert have["restartPolicy"] == "Never", sample
    finally:
        for ns, _, _ in jobs.values():
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
