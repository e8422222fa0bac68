"""RayCluster status with KubeRay's field names and conditions (no I/O).

`state` follows KubeRay: `ready` once every desired pod is running and ready (it then stays
ready while pods come and go, as KubeRay's does), `suspended` once a suspended cluster has no
pods left, `failed` while the spec cannot be reconciled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from arenastack_operator.conditions import set_condition
from arenastack_operator.metrics import Family, Sample
from arenastack_operator.raycluster import podstate, resources
from arenastack_operator.raycluster.model import Cluster
from arenastack_operator.raycluster.podstate import Pod
from arenastack_operator.raycluster.spec import (
    CONDITION_HEAD_POD_READY,
    CONDITION_PROVISIONED,
    CONDITION_REPLICA_FAILURE,
    CONDITION_SUSPENDED,
    CONDITION_SUSPENDING,
    HEAD_GROUP_NAME,
    INT32_MAX,
    RayClusterStatus,
)

STATE_READY: Final = "ready"
STATE_FAILED: Final = "failed"
STATE_SUSPENDED: Final = "suspended"
# Condition reasons (KubeRay's where it has one).
REASON_HEAD_READY: Final = "HeadPodRunningAndReady"
REASON_HEAD_NOT_FOUND: Final = "HeadPodNotFound"
REASON_HEAD_NOT_READY: Final = "HeadPodNotReady"
REASON_ALL_READY: Final = "AllPodRunningAndReadyFirstTime"
REASON_PROVISIONING: Final = "RayClusterPodsProvisioning"
REASON_INVALID_SPEC: Final = "InvalidRayClusterSpec"
REASON_SUSPENDING: Final = "RayClusterSuspending"
REASON_SUSPENDED: Final = "RayClusterSuspended"
# Written whenever another field changes, never on its own (quiet at rest).
VOLATILE: Final = ("lastUpdateTime",)


@dataclass(frozen=True)
class Failure:
    """Why pods could not be created or the spec cannot be used (ReplicaFailure)."""

    reason: str
    message: str


def build_status(
    cluster: Cluster | None,
    generation: int,
    pods: Sequence[Pod],
    service: Mapping[str, Any] | None,
    previous: Mapping[str, Any],
    *,
    failure: Failure | None,
    now: str,
) -> dict[str, Any]:
    """The status to write; `cluster` is None when the spec could not even be parsed."""
    status: dict[str, Any] = {"observedGeneration": generation}
    conditions: list[dict[str, Any]] = list(previous.get("conditions") or [])

    def condition(type_: str, ok: bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(conditions, type_, ok, reason, message,
                                   generation=generation, now=now)  # fmt: skip

    if failure is not None:
        condition(CONDITION_REPLICA_FAILURE, True, failure.reason, failure.message)
    else:
        conditions = [c for c in conditions if c.get("type") != CONDITION_REPLICA_FAILURE]

    state = previous.get("state")
    if cluster is not None:
        live = [p for p in pods if not podstate.is_terminating(p)]
        heads = [p for p in live if podstate.is_head(p)]
        workers = [p for p in live if not podstate.is_head(p)]
        head = next((p for p in heads if podstate.is_ready(p)), heads[0] if heads else None)
        status.update(_replicas(cluster, workers))
        status.update(_desired_resources(cluster))
        status["head"] = _head_info(head, service)
        if service is not None:
            status["endpoints"] = _endpoints(service)
        if head is None:
            condition(CONDITION_HEAD_POD_READY, False, REASON_HEAD_NOT_FOUND, "no head pod")
        elif podstate.is_ready(head):
            condition(CONDITION_HEAD_POD_READY, True, REASON_HEAD_READY, podstate.name(head))
        else:
            condition(CONDITION_HEAD_POD_READY, False, REASON_HEAD_NOT_READY, podstate.name(head))

        all_ready = head is not None and podstate.is_ready(head) and _groups_ready(cluster, workers)
        if cluster.suspended:
            done = not pods
            condition(CONDITION_SUSPENDING, not done, REASON_SUSPENDING, f"{len(pods)} pods left")
            condition(CONDITION_SUSPENDED, done, REASON_SUSPENDED, "spec.suspend is true")
            condition(CONDITION_PROVISIONED, False, REASON_SUSPENDED, "spec.suspend is true")
            state = STATE_SUSPENDED if done else state
        else:
            # Always present, False, with KubeRay's reasons, so that a watcher of either
            # condition can tell "not suspended" from "not reported".
            condition(CONDITION_SUSPENDING, False, REASON_SUSPENDING, "spec.suspend is false")
            condition(CONDITION_SUSPENDED, False, REASON_SUSPENDED, "spec.suspend is false")
            provisioned = all_ready or _is_true(conditions, CONDITION_PROVISIONED)
            if provisioned:
                condition(CONDITION_PROVISIONED, True, REASON_ALL_READY, "all pods ready")
            else:
                condition(CONDITION_PROVISIONED, False, REASON_PROVISIONING, "pods not all ready")
            if all_ready:
                state = STATE_READY
            elif state != STATE_READY:
                state = None
    if failure is not None and failure.reason == REASON_INVALID_SPEC:
        state = STATE_FAILED
        status["reason"] = failure.message
    elif state == STATE_FAILED:
        state = None
    if state:
        status["state"] = state
    status["conditions"] = conditions
    transitions = dict(previous.get("stateTransitionTimes") or {})
    if state and state != previous.get("state"):
        transitions[state] = now
    if transitions:
        status["stateTransitionTimes"] = transitions
    status["lastUpdateTime"] = previous.get("lastUpdateTime") or now
    status = conform(status)
    if changed(previous, status):
        status["lastUpdateTime"] = now
    return status


def conform(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status as the CRD's schema keeps it. The apiserver prunes unknown fields; writing one
    would make every later comparison differ and every reconcile write again."""
    return RayClusterStatus.model_validate(status).to_json()


def changed(previous: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    def strip(status: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in status.items() if k not in VOLATILE and v is not None}

    return strip(previous) != strip(new)


def merge_patch(previous: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch of the status subresource that also removes fields now absent."""
    body: dict[str, Any] = {k: None for k in previous if k not in new}
    body.update(new)
    return {"status": body}


def _is_true(conditions: Sequence[Mapping[str, Any]], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


def _groups_ready(cluster: Cluster, workers: Sequence[Pod]) -> bool:
    for group in cluster.worker_groups:
        ready = sum(
            1 for p in workers if podstate.group(p) == group.group_name and podstate.is_ready(p)
        )
        if ready < cluster.desired_workers(group):
            return False
    return True


def _replicas(cluster: Cluster, workers: Sequence[Pod]) -> dict[str, int]:
    groups = cluster.worker_groups
    return {
        "readyWorkerReplicas": sum(1 for p in workers if podstate.is_ready(p)),
        "availableWorkerReplicas": sum(1 for p in workers if podstate.is_running(p)),
        "desiredWorkerReplicas": sum(cluster.desired_workers(g) for g in groups),
        "minWorkerReplicas": min(INT32_MAX, sum(g.min_replicas * g.num_of_hosts for g in groups)),
        "maxWorkerReplicas": min(INT32_MAX, sum(g.max_replicas * g.num_of_hosts for g in groups)),
    }


def _desired_resources(cluster: Cluster) -> dict[str, str]:
    """What the cluster's desired pods ask the scheduler for, from the user's templates (as
    KubeRay counts it: the autoscaler sidecar and init containers are not included)."""
    totals: dict[str, Decimal] = {}

    def add(template: Mapping[str, Any], count: int, where: str) -> None:
        for i, container in enumerate(template["spec"]["containers"]):
            asked = resources.requested(container.get("resources"), f"{where}.containers[{i}]")
            for name, value in asked.items():
                totals[name] = totals.get(name, Decimal(0)) + value * count

    if not cluster.suspended:
        add(cluster.spec.head_group_spec.template, 1, "spec.headGroupSpec.template.spec")
    for i, group in enumerate(cluster.worker_groups):
        add(group.template, cluster.desired_workers(group), f"spec.workerGroupSpecs[{i}].template")
    zero = Decimal(0)
    gpus = sum((v for k, v in totals.items() if resources.is_gpu(k)), zero)
    return {
        "desiredCPU": resources.format_cpu(totals.get(resources.CPU, zero)),
        "desiredMemory": resources.format_bytes(totals.get(resources.MEMORY, zero)),
        "desiredGPU": resources.format_count(gpus),
        "desiredTPU": resources.format_count(totals.get(resources.TPU, zero)),
    }


def _endpoints(service: Mapping[str, Any]) -> dict[str, str]:
    """Each named port where a client reaches it, as KubeRay reports it: the node port of a
    NodePort or LoadBalancer Service, else the target port (the apiserver defaults it to the
    port)."""
    endpoints: dict[str, str] = {}
    for port in service["spec"].get("ports") or []:
        if not port.get("name"):
            continue
        where = port.get("nodePort") or port.get("targetPort") or port.get("port")
        if where:
            endpoints[str(port["name"])] = str(where)
    return endpoints


def _head_info(head: Pod | None, service: Mapping[str, Any] | None) -> dict[str, str]:
    info: dict[str, str] = {}
    pod_ip = podstate.ip(head) if head is not None else None
    if head is not None:
        info["podName"] = podstate.name(head)
    if pod_ip:
        info["podIP"] = pod_ip
    if service is not None:
        info["serviceName"] = str(service["metadata"]["name"])
        cluster_ip = service["spec"].get("clusterIP")
        # A headless service has no IP of its own; clients reach the head pod's.
        service_ip = pod_ip if cluster_ip in (None, "", "None") else cluster_ip
        if service_ip:
            info["serviceIP"] = service_ip
    return info


# -- per-group gauges ---------------------------------------------------------------------------

POD_SERIES: Final = Family(
    "raycluster_pods",
    "Pods of a RayCluster by group (the head's is headgroup) and state: desired, ready.",
    ("group", "state"),
)


def pod_series(cluster: Cluster, pods: Sequence[Pod]) -> list[Sample]:
    """Desired against ready pods of each group, as the reconciler counted them."""
    live = [p for p in pods if not podstate.is_terminating(p)]
    groups = [
        (HEAD_GROUP_NAME, 0 if cluster.suspended else 1, [p for p in live if podstate.is_head(p)])
    ]
    for group in cluster.worker_groups:
        members = [
            p for p in live if not podstate.is_head(p) and podstate.group(p) == group.group_name
        ]
        groups.append((group.group_name, cluster.desired_workers(group), members))
    out: list[Sample] = []
    for name, desired, members in groups:
        ready = sum(1 for p in members if podstate.is_ready(p))
        out += [
            Sample(POD_SERIES, desired, (name, "desired")),
            Sample(POD_SERIES, ready, (name, "ready")),
        ]
    return out
