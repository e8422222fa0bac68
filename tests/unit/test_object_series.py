"""Per-object gauges: the collector, and what each kind derives from its objects and pods."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from arenastack_operator.arenaevaluation import status as evaluation_status
from arenastack_operator.inferencedeployment import status as deployment_status
from arenastack_operator.metrics import Family, OperatorMetrics, Sample
from arenastack_operator.raycluster import names
from arenastack_operator.raycluster.model import Cluster
from arenastack_operator.raycluster.status import pod_series

WORKERS = Family("demo_workers", "Workers by state.", ("state",))
HEALTH = Family("demo_health", "Health.")


def exported(metrics: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_each_source_of_an_object_keeps_its_samples_until_the_object_is_forgotten() -> None:
    metrics = OperatorMetrics()
    objects = metrics.objects
    objects.set("RayCluster", "ns", "a", "pods", [Sample(WORKERS, 3, ("ready",))])
    objects.set("RayCluster", "ns", "a", "status", [Sample(HEALTH, 1)])
    objects.set("RayCluster", "ns", "b", "pods", [Sample(WORKERS, 1, ("ready",))])
    # A newer report from one source replaces only that source's samples.
    objects.set("RayCluster", "ns", "a", "pods", [Sample(WORKERS, 2, ("ready",))])
    got = exported(metrics)
    key = "arenastack_operator_demo_workers"
    assert got[(key, (("namespace", "ns"), ("raycluster", "a"), ("state", "ready")))] == 2
    assert got[(key, (("namespace", "ns"), ("raycluster", "b"), ("state", "ready")))] == 1
    assert got[("arenastack_operator_demo_health", (("namespace", "ns"), ("raycluster", "a")))] == 1

    objects.forget("RayCluster", "ns", "a")
    got = exported(metrics)
    assert not [k for k in got if ("raycluster", "a") in k[1]]
    assert (key, (("namespace", "ns"), ("raycluster", "b"), ("state", "ready"))) in got


def _pod(kind: str, group: str, ready: bool, terminating: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"{group}-{kind}",
        "labels": {names.LABEL_NODE_TYPE: kind, names.LABEL_GROUP: group},
    }
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return {"metadata": meta, "status": {"conditions": [condition]}}


def _cluster(suspend: bool = False) -> Cluster:
    template = {"spec": {"containers": [{"name": "ray", "image": "rayproject/ray:2.60.0"}]}}
    spec = {
        "suspend": suspend,
        "headGroupSpec": {"rayStartParams": {}, "template": template},
        "workerGroupSpecs": [
            {"groupName": "cpu", "replicas": 3, "maxReplicas": 5, "rayStartParams": {},
             "template": template},
            {"groupName": "tpu", "replicas": 1, "numOfHosts": 2, "maxReplicas": 1,
             "rayStartParams": {}, "template": template},
        ],
    }  # fmt: skip
    return Cluster.from_body(
        {"metadata": {"name": "rc", "namespace": "ns", "uid": "u"}, "spec": spec}
    )


def _by_group(samples: list[Sample]) -> dict[tuple[str, ...], float]:
    return {s.labels: s.value for s in samples}


def test_raycluster_pods_desired_against_ready_per_group() -> None:
    pods = [
        _pod(names.NODE_HEAD, names.HEAD_GROUP, ready=True),
        _pod("worker", "cpu", ready=True),
        _pod("worker", "cpu", ready=False),
        _pod("worker", "cpu", ready=True, terminating=True),  # on its way out: not counted
        _pod("worker", "tpu", ready=True),
    ]
    assert _by_group(pod_series(_cluster(), pods)) == {
        (names.HEAD_GROUP, "desired"): 1, (names.HEAD_GROUP, "ready"): 1,
        ("cpu", "desired"): 3, ("cpu", "ready"): 1,
        ("tpu", "desired"): 2, ("tpu", "ready"): 1,  # two hosts per replica
    }  # fmt: skip


def test_a_suspended_raycluster_desires_no_pods() -> None:
    got = _by_group(pod_series(_cluster(suspend=True), []))
    assert {k: v for k, v in got.items() if k[1] == "desired"} == {
        (names.HEAD_GROUP, "desired"): 0, ("cpu", "desired"): 0, ("tpu", "desired"): 0,
    }  # fmt: skip


def _values(samples: list[Sample]) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(s.family.name, s.labels): s.value for s in samples}


def test_inferencedeployment_replicas_and_the_autoscalers_reading_against_its_target() -> None:
    body = {
        "spec": {"autoscaling": {"metric": "waitingRequests", "target": 4}},
        "status": {
            "replicas": 3,
            "readyReplicas": 2,
            "observedMetric": {"name": "waitingRequests", "value": 6.5, "time": "t"},
        },
    }
    assert _values(deployment_status.series(body)) == {
        ("inferencedeployment_replicas", ("desired",)): 3,
        ("inferencedeployment_replicas", ("ready",)): 2,
        ("inferencedeployment_autoscaler_target", ("waitingRequests",)): 4,
        ("inferencedeployment_autoscaler_metric", ("waitingRequests",)): 6.5,
    }


def test_a_new_inferencedeployment_exports_only_what_is_known() -> None:
    assert deployment_status.series({"spec": {}}) == []


def test_arenaevaluation_progress_judge_trust_and_ratings() -> None:
    body = {
        "status": {
            "progress": {"planned": 40, "answered": 30, "judged": 28, "errors": 1},
            "judge": {
                "positionConsistency": 0.75,
                "humanAgreement": {"battles": 10, "withTies": 0.6, "withoutTies": None},
            },
            "ranking": [{"name": "m1", "rating": 1010.5, "ciLower": 990.0, "ciUpper": 1030.0}],
        }
    }
    assert _values(evaluation_status.series(body)) == {
        ("arenaevaluation_battles", ("planned",)): 40,
        ("arenaevaluation_battles", ("answered",)): 30,
        ("arenaevaluation_battles", ("judged",)): 28,
        ("arenaevaluation_battles", ("errors",)): 1,
        ("arenaevaluation_judge_position_consistency", ()): 0.75,
        ("arenaevaluation_judge_human_agreement", ("with",)): 0.6,
        ("arenaevaluation_rating", ("m1", "rating")): 1010.5,
        ("arenaevaluation_rating", ("m1", "lower")): 990.0,
        ("arenaevaluation_rating", ("m1", "upper")): 1030.0,
    }


def test_api_requests_and_queue_depth_are_labelled_by_kind() -> None:
    metrics = OperatorMetrics()
    count = metrics.api_requests_of("RayJob")
    count("POST", "pods", 201)
    count("POST", "pods", 201)
    got = exported(metrics)
    key = (
        "arenastack_operator_api_requests_total",
        (("code", "201"), ("kind", "RayJob"), ("method", "POST"), ("resource", "pods")),
    )
    assert got[key] == 2
