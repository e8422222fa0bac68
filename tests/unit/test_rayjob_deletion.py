"""RayJob's deletionStrategy: KubeRay's checks, which policies are due when, and the patch
that suspends the workers (no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from arenastack_operator.rayjob import deletion
from arenastack_operator.rayjob.model import InvalidSpec, Job

ENDED = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
CLUSTER_SPEC: dict[str, Any] = {
    "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [
        {"name": "ray-head", "image": "rayproject/ray:2.46.0"}]}}},
}  # fmt: skip


def job(**spec: Any) -> Job:
    spec = {"entrypoint": "python pi.py", "rayClusterSpec": CLUSTER_SPEC, **spec}
    return Job.from_body(
        {"metadata": {"name": "pi", "namespace": "ns", "uid": "u-1"}, "spec": spec}
    )


def rule(policy: str, status: str = "SUCCEEDED", ttl: int = 0) -> dict[str, Any]:
    return {"policy": policy, "condition": {"jobStatus": status, "ttlSeconds": ttl}}


def strategy(*found: dict[str, Any]) -> dict[str, Any]:
    return {"deletionStrategy": {"deletionRules": list(found)}}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**strategy(rule("DeleteCluster")), "shutdownAfterJobFinishes": True},
         "shutdownAfterJobFinishes and spec.deletionStrategy.deletionRules are mutually"),
        ({**strategy(rule("DeleteCluster")), "clusterSelector": {"ray.io/cluster": "c"},
          "rayClusterSpec": None},
         "deletionRules[0]: DeleteCluster is not supported when clusterSelector is set"),
        ({**strategy(rule("DeleteWorkers")),
          "rayClusterSpec": {**CLUSTER_SPEC, "enableInTreeAutoscaling": True}},
         "DeleteWorkers is not supported with autoscaling enabled"),
        (strategy(rule("DeleteCluster"), rule("DeleteCluster", ttl=5)),
         "deletionRules[1]: duplicate rule for DeleteCluster and SUCCEEDED"),
        (strategy(rule("DeleteWorkers", ttl=60), rule("DeleteCluster", ttl=10)),
         "for SUCCEEDED: DeleteCluster TTL (10) must be >= DeleteWorkers TTL (60)"),
        ({"deletionStrategy": {"onSuccess": {"policy": "DeleteNone"},
                               "onFailure": {"policy": "DeleteCluster"}},
          "shutdownAfterJobFinishes": True},
         "onSuccess.policy is DeleteNone while shutdownAfterJobFinishes is true"),
        ({"deletionStrategy": {"onSuccess": {}, "onFailure": {"policy": "DeleteCluster"}}},
         "spec.deletionStrategy.onSuccess.policy must be set"),
    ],
)  # fmt: skip
def test_strategies_kuberay_refuses_are_refused_naming_the_rule(spec, message):
    with pytest.raises(InvalidSpec) as caught:
        deletion.validate(job(**spec))
    assert message in str(caught.value)


def test_the_most_far_reaching_due_policy_acts_and_the_next_rule_is_awaited():
    j = job(**strategy(rule("DeleteWorkers", ttl=0), rule("DeleteCluster", ttl=60),
                       rule("DeleteSelf", ttl=300), rule("DeleteCluster", "FAILED")))  # fmt: skip
    deletion.validate(j)
    succeeded = {"jobStatus": "SUCCEEDED"}
    now = deletion.due(j, succeeded, ENDED, ENDED)
    assert now == deletion.Due(("DeleteWorkers",), ENDED + timedelta(seconds=60))
    later = deletion.due(j, succeeded, ENDED, ENDED + timedelta(seconds=61))
    assert deletion.most_impactful(list(later.policies)) == "DeleteCluster"
    assert later.next_at == ENDED + timedelta(seconds=300)
    last = deletion.due(j, succeeded, ENDED, ENDED + timedelta(seconds=300))
    assert deletion.most_impactful(list(last.policies)) == "DeleteSelf" and last.next_at is None
    # Rules of the other outcome never fire.
    assert deletion.due(j, {"jobStatus": "FAILED"}, ENDED, ENDED).policies == ("DeleteCluster",)


def test_the_legacy_pair_waits_ttl_seconds_after_finished():
    j = job(deletionStrategy={"onSuccess": {"policy": "DeleteSelf"},
                              "onFailure": {"policy": "DeleteNone"}},
            shutdownAfterJobFinishes=False)  # fmt: skip
    deletion.validate(j)
    assert deletion.due(j, {"jobStatus": "SUCCEEDED"}, ENDED, ENDED).policies == ("DeleteSelf",)
    assert deletion.due(j, {"jobStatus": "FAILED"}, ENDED, ENDED).policies == ()


def test_suspending_the_workers_is_a_patch_conditional_on_what_was_read():
    cluster = {"metadata": {"resourceVersion": "7"},
               "spec": {"workerGroupSpecs": [{"groupName": "a"}, {"groupName": "b"}]}}  # fmt: skip
    assert not deletion.workers_suspended(cluster)
    patch = deletion.suspend_workers_patch(cluster)
    assert patch["metadata"] == {"resourceVersion": "7"}
    assert [g["suspend"] for g in patch["spec"]["workerGroupSpecs"]] == [True, True]
    assert deletion.workers_suspended({"spec": patch["spec"]})


def test_a_policy_whose_effect_is_there_is_done():
    due = ("DeleteWorkers", "DeleteCluster", "DeleteSelf")
    running = {"metadata": {}, "spec": {"workerGroupSpecs": [{"groupName": "a"}]}}
    assert deletion.undone(due, running) == list(due)
    suspended = {"metadata": {}, "spec": {"workerGroupSpecs": [{"suspend": True}]}}
    assert deletion.undone(due, suspended) == ["DeleteCluster", "DeleteSelf"]
    going = {**running, "metadata": {"deletionTimestamp": "t"}}
    assert deletion.undone(due, going) == deletion.undone(due, None) == ["DeleteSelf"]
