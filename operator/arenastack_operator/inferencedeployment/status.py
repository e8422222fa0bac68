"""The status of an InferenceDeployment from what was observed: pure, so it is unit-tested."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from arenastack_operator import constants
from arenastack_operator.conditions import rfc3339, upsert_condition
from arenastack_operator.inferencedeployment import names
from arenastack_operator.inferencedeployment.routermetrics import Demand
from arenastack_operator.inferencedeployment.topology import REASON_INSUFFICIENT_GPU
from arenastack_operator.metrics import Family, Sample, samples_of

REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_MODEL_LOAD_FAILED: Final = "ModelLoadFailed"
REASON_AS_EXPECTED: Final = "AsExpected"
REASON_SERVING: Final = "Serving"
REASON_NO_READY_REPLICA: Final = "NoReadyReplica"
REASON_ROUTER_NOT_READY: Final = "RouterNotReady"
REASON_ROLLING_OUT: Final = "RollingOut"
REASON_STABLE: Final = "Stable"
REASON_SCALED_TO_ZERO: Final = "ScaledToZero"
UNSCHEDULABLE: Final = "Unschedulable"
# Written by the autoscaler, kept by the reconciler.
AUTOSCALER_FIELDS: Final = ("observedMetric", "lastScalingDecision", "observedDemand")
# A container restarted this often without becoming ready has failed to load its model.
LOAD_FAILURE_RESTARTS: Final = 1


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str


def is_ready(pod: Mapping[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def unschedulable_for_gpus(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The scheduler's message for a pending engine pod it could not place for lack of GPUs."""
    for pod in pods:
        for c in (pod.get("status") or {}).get("conditions") or []:
            message = str(c.get("message") or "")
            if (
                c.get("type") == "PodScheduled"
                and c.get("status") == "False"
                and c.get("reason") == UNSCHEDULABLE
                and names.GPU_RESOURCE in message
            ):
                return f"pod {pod['metadata']['name']}: {message}"
    return None


def load_failure(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """An engine container that exited with an error (or keeps crashing) before becoming ready."""
    for pod in pods:
        if is_ready(pod):
            continue
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") != names.ENGINE_CONTAINER:
                continue
            terminated = (cs.get("state") or {}).get("terminated") or (
                cs.get("lastState") or {}
            ).get("terminated")
            waiting = (cs.get("state") or {}).get("waiting") or {}
            crashing = waiting.get("reason") == "CrashLoopBackOff"
            if terminated and terminated.get("exitCode", 0) != 0 or crashing:
                detail = (terminated or {}).get("message") or (terminated or {}).get("reason")
                detail = detail or waiting.get("message") or "container exited"
                restarts = cs.get("restartCount", 0)
                return (
                    f"pod {pod['metadata']['name']}: engine exited "
                    f"(exit code {(terminated or {}).get('exitCode', '?')}, "
                    f"{restarts} restarts): {str(detail)[-500:]}"
                )
    return None


def build_status(
    *,
    previous: Mapping[str, Any],
    generation: int,
    desired_replicas: int,
    engine_pods: Sequence[Mapping[str, Any]],
    router_ready: bool | None,
    endpoint: str | None,
    served_model: str | None,
    ray_cluster: str | None,
    problem: Problem | None,
    now: str,
) -> dict[str, Any]:
    """The new status; keeps the autoscaler's fields from `previous`."""
    live = [p for p in engine_pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    ready = sum(1 for p in live if is_ready(p))
    if problem is None and ready < desired_replicas:
        if (gpu := unschedulable_for_gpus(live)) is not None:
            problem = Problem(REASON_INSUFFICIENT_GPU, gpu)
        elif (failure := load_failure(live)) is not None:
            problem = Problem(REASON_MODEL_LOAD_FAILED, failure)

    status: dict[str, Any] = {k: v for k, v in previous.items() if k in AUTOSCALER_FIELDS}
    status.update(
        {
            "observedGeneration": generation,
            "replicas": desired_replicas,
            "readyReplicas": ready,
        }
    )
    if endpoint:
        status["endpoint"] = endpoint
    if served_model:
        status["servedModel"] = served_model
    if ray_cluster:
        status["rayCluster"] = ray_cluster

    if ready == 0 and desired_replicas == 0:
        ready_c = ("False", REASON_SCALED_TO_ZERO, "scaled to zero replicas")
    elif ready == 0:
        ready_c = ("False", REASON_NO_READY_REPLICA, f"0/{desired_replicas} replicas ready")
    elif router_ready is False:
        ready_c = ("False", REASON_ROUTER_NOT_READY, "the router has no ready replica")
    else:
        ready_c = ("True", REASON_SERVING, f"{ready}/{desired_replicas} replicas ready")
    settled = ready == desired_replicas and len(live) == desired_replicas
    progressing = (
        ("False", REASON_STABLE, "all replicas ready")
        if settled
        else ("True", REASON_ROLLING_OUT, f"{ready}/{desired_replicas} ready, {len(live)} live")
    )
    degraded = (
        ("True", problem.reason, problem.message)
        if problem is not None
        else ("False", REASON_AS_EXPECTED, "")
    )
    conditions = list(previous.get("conditions") or [])
    for type_, (state, reason, message) in (
        (constants.CONDITION_READY, ready_c),
        (constants.CONDITION_PROGRESSING, progressing),
        (constants.CONDITION_DEGRADED, degraded),
    ):
        conditions = upsert_condition(
            conditions,
            type_=type_,
            status=state,
            reason=reason,
            message=message,
            generation=generation,
            now=now,
        )
    status["conditions"] = conditions
    return status


def observed_demand(demand: Demand, idle_s: float, now: datetime) -> dict[str, Any]:
    """status.observedDemand: the router's requests since its previous reading."""
    return {
        "requests": demand.routed,
        "withoutReplica": demand.without_replica,
        "lastRequestTime": rfc3339(now - timedelta(seconds=idle_s)),
        "time": rfc3339(now),
    }


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


# -- gauges from the object ---------------------------------------------------------------------

REPLICAS: Final = Family(
    "inferencedeployment_replicas", "Engine replicas by state: desired, ready.", ("state",)
)
AUTOSCALER_METRIC: Final = Family(
    "inferencedeployment_autoscaler_metric",
    "The metric the autoscaler last read (status.observedMetric), by metric name.",
    ("metric",),
)
AUTOSCALER_TARGET: Final = Family(
    "inferencedeployment_autoscaler_target",
    "The autoscaler's target (spec.autoscaling.target), by metric name.",
    ("metric",),
)


def series(body: Mapping[str, Any]) -> list[Sample]:
    status = body.get("status") or {}
    autoscaling = (body.get("spec") or {}).get("autoscaling") or {}
    out = samples_of(
        REPLICAS,
        [(("desired",), status.get("replicas")), (("ready",), status.get("readyReplicas"))],
    )
    metric = autoscaling.get("metric")
    if metric:
        out += samples_of(AUTOSCALER_TARGET, [((metric,), autoscaling.get("target"))])
    observed = status.get("observedMetric") or {}
    if observed.get("name"):
        out += samples_of(AUTOSCALER_METRIC, [((observed["name"],), observed.get("value"))])
    return out
