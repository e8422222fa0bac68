"""The RayCluster reconciler against a real control plane with simulated (kwok) nodes.

One operator process (the real `python -m arenastack_operator`, with the chart's ServiceAccount
credentials) serves the whole module; each test works in its own namespace, and the last test
checks that nothing made the operator exit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from compat_data import require_compat_manifests
from kube_helpers import get, wait_for
from operator_runner import OperatorProcess, OperatorRunner

from arenastack_cluster.nodes import KWOK_STATUS_ANNOTATION
from arenastack_operator.raycluster import names
from arenastack_operator.raycluster.render import rayclusters, render

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ray_operator(
    cluster, crds, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    # Production lease timing: this module tests reconciling, not takeover, and a busy machine
    # must not cost the operator its lease halfway through.
    runner = OperatorRunner(
        operator_kubeconfig, tmp_path_factory.mktemp("raycluster-operator"), extra_args=()
    )
    cluster.kubectl(
        "delete", "lease", runner.lease_name, "-n", runner.lease_namespace, "--ignore-not-found"
    )
    process = runner.start()
    yield process
    runner.stop_all()


@pytest.fixture(autouse=True)
def _operator_alive(request: pytest.FixtureRequest) -> None:
    """Fail at once, with the operator's last words, rather than time out in every later test."""
    if "ray_operator" in request.fixturenames:
        process: OperatorProcess = request.getfixturevalue("ray_operator")
        assert process.proc.poll() is None, f"operator exited:\n{process.output()[-4000:]}"


# -- helpers ------------------------------------------------------------------------------------


def ray_pods(cluster, namespace: str, name: str, *, live: bool = True) -> list[dict[str, Any]]:
    pods = get(cluster, "pods", namespace, selector=f"{names.LABEL_CLUSTER}={name}") or []
    return [p for p in pods if not (live and p["metadata"].get("deletionTimestamp"))]


def by_group(pods: list[dict[str, Any]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for pod in pods:
        groups.setdefault(pod["metadata"]["labels"][names.LABEL_GROUP], []).append(
            pod["metadata"]["name"]
        )
    return {g: sorted(p) for g, p in groups.items()}


def counts(cluster, namespace: str, name: str) -> dict[str, int]:
    return {g: len(p) for g, p in by_group(ray_pods(cluster, namespace, name)).items()}


def status(cluster, namespace: str, name: str) -> dict[str, Any]:
    return (get(cluster, "raycluster", namespace, name) or {}).get("status") or {}


def condition(cluster, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
    for c in status(cluster, namespace, name).get("conditions") or []:
        if c["type"] == type_:
            return c
    return None


def apply(cluster, namespace: str, manifest: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def small_cluster(name: str, *, replicas: int = 1, autoscaling: bool = False, **extra: Any) -> str:
    spec: dict[str, Any] = {
        "rayVersion": "2.60.0",
        "enableInTreeAutoscaling": autoscaling,
        "headGroupSpec": {"template": {"spec": {"containers": [
            {"name": "ray-head", "image": "rayproject/ray:2.60.0",
             "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}]}}},
        "workerGroupSpecs": [{
            "groupName": "cpu", "replicas": replicas, "minReplicas": 0, "maxReplicas": 5,
            "template": {"spec": {"containers": [
                {"name": "ray-worker", "image": "rayproject/ray:2.60.0",
                 "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}}],
        **extra,
    }  # fmt: skip
    return yaml.safe_dump({"apiVersion": "ray.io/v1", "kind": "RayCluster",
                           "metadata": {"name": name}, "spec": spec})  # fmt: skip


def patch(cluster, namespace: str, name: str, body: Any, type_: str = "merge") -> None:
    cluster.kubectl(
        "patch", "raycluster", name, "-n", namespace, "--type", type_, "-p", json.dumps(body)
    )


def wait_ready(cluster, namespace: str, name: str, expected: dict[str, int]) -> None:
    wait_for(f"{name} pods {expected}", lambda: counts(cluster, namespace, name) == expected)
    wait_for(f"{name} ready", lambda: status(cluster, namespace, name).get("state") == "ready")


# -- tests --------------------------------------------------------------------------------------


def test_every_compat_sample_applied_unchanged_yields_the_expected_objects(
    cluster, ray_operator, namespace
) -> None:
    # All samples at once, one namespace each, so they reconcile in parallel.
    samples = require_compat_manifests()
    spaces = {}
    for index, sample in enumerate(samples):
        ns = f"{namespace}-{index}"
        cluster.kubectl("create", "namespace", ns)
        cluster.kubectl("apply", "-n", ns, "-f", str(sample))
        spaces[sample] = ns
    try:
        for sample, ns in spaces.items():
            (manifest,) = rayclusters(sample.read_text())
            name = manifest["metadata"]["name"]
            body = get(cluster, "raycluster", ns, name)
            try:
                expected = render(body, ns)
            except ValueError as invalid:  # a spec KubeRay refuses (rocksdb without its gate)
                c = wait_for(
                    f"{sample.name}: invalid-spec condition",
                    lambda ns=ns, name=name: condition(cluster, ns, name, "ReplicaFailure"),
                )
                assert c["reason"] == "InvalidRayClusterSpec" and str(invalid) == c["message"]
                assert ray_pods(cluster, ns, name) == []
                continue
            _assert_objects(cluster, ns, name, body, expected)
    finally:
        for ns in spaces.values():
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _assert_objects(cluster, ns: str, name: str, body, expected: list[dict[str, Any]]) -> None:
    spec = body["spec"]
    want = {names.HEAD_GROUP: 1}
    for group in spec.get("workerGroupSpecs") or []:
        replicas = min(max(group.get("replicas", 0), group.get("minReplicas", 0)),
                       group.get("maxReplicas", 2**31 - 1))  # fmt: skip
        if replicas:
            want[group["groupName"]] = replicas * group.get("numOfHosts", 1)
    wait_ready(cluster, ns, name, want)
    hashes = {
        obj["metadata"]["labels"][names.LABEL_GROUP]: obj["metadata"]["annotations"][
            names.ANNOTATION_POD_HASH
        ]
        for obj in expected
        if obj["kind"] == "Pod"
    }
    for pod in ray_pods(cluster, ns, name):
        group = pod["metadata"]["labels"][names.LABEL_GROUP]
        # Same hash: the pod was built from exactly what the builders make of this spec.
        assert pod["metadata"]["annotations"][names.ANNOTATION_POD_HASH] == hashes[group]
        (owner,) = pod["metadata"]["ownerReferences"]
        assert owner["uid"] == body["metadata"]["uid"] and owner["controller"] is True
    for obj in expected:
        if obj["kind"] == "Pod":
            continue
        kind = obj["kind"].lower()
        got = get(cluster, kind, ns, obj["metadata"]["name"])
        assert got is not None, f"{name}: no {kind} {obj['metadata']['name']}"
        assert got["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
        if kind == "service":
            assert got["spec"]["ports"] == [
                {**p, "targetPort": p["port"]} for p in obj["spec"]["ports"]
            ]
    st = status(cluster, ns, name)
    assert st["observedGeneration"] == body["metadata"]["generation"]
    assert st["head"]["serviceName"] == names.head_service_name(name)
    assert st["desiredWorkerReplicas"] == sum(v for k, v in want.items() if k != "headgroup")
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "HeadPodReady": "True", "RayClusterProvisioned": "True",
        "RayClusterSuspending": "False", "RayClusterSuspended": "False"}  # fmt: skip


def test_scale_up_down_quiet_at_rest(cluster, ray_operator, namespace) -> None:
    apply(cluster, namespace, small_cluster("scale", replicas=1))
    wait_ready(cluster, namespace, "scale", {"headgroup": 1, "cpu": 1})
    patch(
        cluster, namespace, "scale",
        [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 4}], "json",
    )  # fmt: skip
    wait_for("4 workers", lambda: counts(cluster, namespace, "scale").get("cpu") == 4)
    wait_for("4 ready", lambda: status(cluster, namespace, "scale").get("readyWorkerReplicas") == 4)
    workers = [
        p
        for p in ray_pods(cluster, namespace, "scale")
        if p["metadata"]["labels"][names.LABEL_GROUP] == "cpu"
    ]
    newest = sorted(
        workers, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"])
    )
    patch(
        cluster,
        namespace,
        "scale",
        [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2}],
        "json",
    )
    wait_for("2 workers", lambda: counts(cluster, namespace, "scale").get("cpu") == 2)
    left = by_group(ray_pods(cluster, namespace, "scale"))["cpu"]
    # Without the autoscaler, the newest pods go first.
    assert left == sorted(p["metadata"]["name"] for p in newest[:2])

    reasons = _event_reasons(cluster, namespace, "scale")
    assert {"CreatedService", "CreatedHeadPod", "CreatedWorkerPod", "DeletedWorkerPod"} <= reasons

    # Quiet at rest: once settled, neither the cluster nor its pods are written to.
    wait_for(
        "status settled",
        lambda: status(cluster, namespace, "scale").get("readyWorkerReplicas") == 2,
    )
    time.sleep(1.0)
    before = _versions(cluster, namespace, "scale")
    time.sleep(4.0)
    assert _versions(cluster, namespace, "scale") == before


def test_many_clusters_at_rest_cause_no_writes(cluster, ray_operator, namespace) -> None:
    count = 10
    manifests = [
        small_cluster(f"rest-{i}", replicas=2, autoscaling=i % 2 == 0) for i in range(count)
    ]
    apply(cluster, namespace, "---\n".join(manifests))
    for i in range(count):
        wait_ready(cluster, namespace, f"rest-{i}", {"headgroup": 1, "cpu": 2})

    def snapshot() -> dict[str, str]:
        objs = []
        for kind in ("rayclusters", "pods", "services", "events", "roles", "rolebindings"):
            objs += [(kind, o) for o in get(cluster, kind, namespace) or []]
        return {f"{k}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for k, o in objs}

    wait_for("statuses settled", lambda: all(
        status(cluster, namespace, f"rest-{i}").get("readyWorkerReplicas") == 2
        for i in range(count)))  # fmt: skip
    time.sleep(1.0)
    before = snapshot()
    time.sleep(10.0)
    assert snapshot() == before


def _event_reasons(cluster, namespace: str, name: str) -> set[str]:
    events = get(cluster, "events", namespace) or []
    return {e["reason"] for e in events if e["involvedObject"]["name"] == name}


def test_recreate_upgrade_replaces_outdated_pods(cluster, ray_operator, namespace) -> None:
    apply(
        cluster, namespace, small_cluster("upg", replicas=2, upgradeStrategy={"type": "Recreate"})
    )
    wait_ready(cluster, namespace, "upg", {"headgroup": 1, "cpu": 2})
    before = {p["metadata"]["name"] for p in ray_pods(cluster, namespace, "upg")}
    patch(cluster, namespace, "upg", [
        {"op": "replace", "value": "rayproject/ray:2.61.0",
         "path": "/spec/workerGroupSpecs/0/template/spec/containers/0/image"}], "json")  # fmt: skip

    def replaced() -> bool:
        pods = ray_pods(cluster, namespace, "upg", live=False)
        workers = [p for p in pods if p["metadata"]["labels"][names.LABEL_GROUP] == "cpu"]
        return len(workers) == 2 and all(
            p["spec"]["containers"][0]["image"] == "rayproject/ray:2.61.0" for p in workers
        )

    wait_for("workers on the new image", replaced)
    after = by_group(ray_pods(cluster, namespace, "upg"))
    assert not set(after["cpu"]) & before
    assert set(after["headgroup"]) <= before  # the head's template did not change


def _versions(cluster, namespace: str, name: str) -> dict[str, str]:
    objs = [
        get(cluster, "raycluster", namespace, name),
        *ray_pods(cluster, namespace, name, live=False),
    ]
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in objs}


def test_autoscaler_workers_to_delete_and_its_rbac(cluster, ray_operator, namespace) -> None:
    apply(cluster, namespace, small_cluster("auto", replicas=3, autoscaling=True))
    wait_ready(cluster, namespace, "auto", {"headgroup": 1, "cpu": 3})
    head = ray_pods(cluster, namespace, "auto")
    head = next(p for p in head if p["metadata"]["labels"][names.LABEL_NODE_TYPE] == "head")
    assert [c["name"] for c in head["spec"]["containers"]] == ["ray-head", "autoscaler"]
    assert head["spec"]["serviceAccountName"] == "auto"
    # The autoscaler's Role lets its ServiceAccount do what `ray kuberay-autoscaler` does.
    for verb, resource in (("patch", "rayclusters.ray.io"), ("list", "pods"), ("patch", "pods")):
        account = f"--as=system:serviceaccount:{namespace}:auto"
        can = cluster.kubectl(
            "auth", "can-i", verb, resource, "-n", namespace, account, check=False
        )
        assert can.stdout.strip() == "yes", (verb, resource)

    victim = by_group(ray_pods(cluster, namespace, "auto"))["cpu"][1]
    # Exactly what Ray's autoscaler sends: a JSON patch of replicas and scaleStrategy.
    patch(cluster, namespace, "auto", [
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 2},
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/scaleStrategy",
         "value": {"workersToDelete": [victim]}},
    ], "json")  # fmt: skip
    wait_for(
        "victim gone",
        lambda: (
            victim not in by_group(ray_pods(cluster, namespace, "auto", live=False)).get("cpu", [])
        ),
    )
    left = by_group(ray_pods(cluster, namespace, "auto"))["cpu"]
    assert len(left) == 2 and victim not in left
    # A lower replicas value alone never deletes: the autoscaler names which pods go.
    patch(cluster, namespace, "auto", [
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 1},
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/scaleStrategy",
         "value": {"workersToDelete": []}},
    ], "json")  # fmt: skip
    time.sleep(3.0)
    assert by_group(ray_pods(cluster, namespace, "auto"))["cpu"] == left


def test_suspend_and_resume(cluster, ray_operator, namespace) -> None:
    apply(cluster, namespace, small_cluster("sus", replicas=2))
    wait_ready(cluster, namespace, "sus", {"headgroup": 1, "cpu": 2})
    patch(cluster, namespace, "sus", {"spec": {"suspend": True}})
    wait_for("no pods", lambda: ray_pods(cluster, namespace, "sus", live=False) == [])
    wait_for("suspended", lambda: status(cluster, namespace, "sus").get("state") == "suspended")
    assert condition(cluster, namespace, "sus", "RayClusterSuspended")["status"] == "True"
    patch(cluster, namespace, "sus", {"spec": {"suspend": False}})
    wait_ready(cluster, namespace, "sus", {"headgroup": 1, "cpu": 2})
    assert condition(cluster, namespace, "sus", "RayClusterSuspended")["status"] == "False"


def test_head_deleted_and_worker_failed_are_replaced(cluster, ray_operator, namespace) -> None:
    apply(cluster, namespace, small_cluster("heal", replicas=2))
    wait_ready(cluster, namespace, "heal", {"headgroup": 1, "cpu": 2})
    pods = by_group(ray_pods(cluster, namespace, "heal"))
    (head,) = pods["headgroup"]
    cluster.kubectl("delete", "pod", head, "-n", namespace, "--wait=false")
    wait_for(
        "a new head",
        lambda: by_group(ray_pods(cluster, namespace, "heal")).get("headgroup", [head]) != [head],
    )
    # Workers stay: they reconnect to the new head (and keep running with GCS fault tolerance).
    assert by_group(ray_pods(cluster, namespace, "heal"))["cpu"] == pods["cpu"]

    # The kubelet (kwok here) reports the Ray container of a worker as exited for good.
    worker = pods["cpu"][0]
    cluster.kubectl("annotate", "pod", worker, "-n", namespace, f"{KWOK_STATUS_ANNOTATION}=custom")
    cluster.kubectl("patch", "pod", worker, "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"phase": "Failed"}}))  # fmt: skip
    wait_for(
        "failed worker replaced",
        lambda: (
            worker not in by_group(ray_pods(cluster, namespace, "heal", live=False)).get("cpu", [])
        ),
    )
    wait_for("2 workers again", lambda: counts(cluster, namespace, "heal").get("cpu") == 2)


def test_deleting_the_cluster_collects_everything(cluster, ray_operator, namespace) -> None:
    apply(cluster, namespace, small_cluster("gone", replicas=1, autoscaling=True))
    wait_ready(cluster, namespace, "gone", {"headgroup": 1, "cpu": 1})
    cluster.kubectl("delete", "raycluster", "gone", "-n", namespace, "--wait=true", "--timeout=30s")
    kinds = "pods,services,serviceaccounts,roles,rolebindings"

    def leftovers() -> list[str]:
        out = cluster.kubectl(
            "get", kinds, "-n", namespace, "-l", f"{names.LABEL_CLUSTER}=gone", "-o", "name"
        )
        # Pods on kwok nodes are removed at once; nothing may stay.
        return out.stdout.split()

    wait_for("garbage collection", lambda: leftovers() == [] or None)


def test_invalid_specs_are_reported_without_crashing(cluster, ray_operator, namespace) -> None:
    # Accepted by the schema, refused by the reconciler: GCS fault tolerance without Redis.
    apply(cluster, namespace, small_cluster("bad", gcsFaultToleranceOptions={"backend": "redis"}))
    c = wait_for(
        "invalid-spec condition", lambda: condition(cluster, namespace, "bad", "ReplicaFailure")
    )
    assert c["reason"] == "InvalidRayClusterSpec" and "redisAddress" in c["message"]
    assert status(cluster, namespace, "bad")["state"] == "failed"
    assert ray_pods(cluster, namespace, "bad") == []
    # Accepted by the schema, refused by the apiserver when the pod is created.
    body = yaml.safe_load(small_cluster("badpod"))
    body["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["name"] = (
        "Not_A_DNS_Label"
    )
    apply(cluster, namespace, yaml.safe_dump(body))
    c = wait_for(
        "create failure", lambda: condition(cluster, namespace, "badpod", "ReplicaFailure")
    )
    assert c["reason"] == "FailedCreateWorkerPod" and "Not_A_DNS_Label" in c["message"]
    assert counts(cluster, namespace, "badpod") == {"headgroup": 1}
    # Fixed, it recovers: the condition goes away and the cluster becomes ready.
    patch(
        cluster,
        namespace,
        "bad",
        {"spec": {"gcsFaultToleranceOptions": {"redisAddress": "redis:6379"}}},
    )
    wait_ready(cluster, namespace, "bad", {"headgroup": 1, "cpu": 1})
    assert condition(cluster, namespace, "bad", "ReplicaFailure") is None


def test_operator_survived_the_module(ray_operator) -> None:
    assert ray_operator.proc.poll() is None, ray_operator.output()[-4000:]
    created = ray_operator.metric(
        "arenastack_operator_api_requests_total",
        kind="RayCluster", method="POST", resource="pods", code="201",
    )  # fmt: skip
    assert created is not None and created > 0
    logs = ray_operator.logs()
    assert not [r for r in logs if "unparsed" in r]
    # Failures the reconciler did not expect are logged as errors by its logger.
    assert not [
        r for r in logs if r.get("level") == "ERROR" and r.get("logger", "").endswith("raycluster")
    ]
