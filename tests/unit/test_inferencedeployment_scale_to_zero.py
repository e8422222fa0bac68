"""Scale to zero and back: the router's /metrics parsed into demand, the autoscaler's decisions
at and towards zero, the router's hold (retry) flags and the status it reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from arenastack_operator.inferencedeployment import enginemetrics, routermetrics, workloads
from arenastack_operator.inferencedeployment import status as status_mod
from arenastack_operator.inferencedeployment.autoscaler import Autoscaler
from arenastack_operator.inferencedeployment.routermetrics import Demand, RouterSample
from arenastack_operator.inferencedeployment.spec import InferenceDeploymentSpec
from arenastack_operator.inferencedeployment.workloads import Owner

OWNER = Owner("tiny", "ns", "uid-1")
IDLE_S = 60

# The shape vllm-router 0.1.17 exports (read from a running router): routed requests per route,
# failed attempts per route and error type.
ROUTER_METRICS = """\
# TYPE vllm_router_requests_total counter
vllm_router_requests_total{{route="/v1/completions"}} {completions}
vllm_router_requests_total{{route="/v1/chat/completions"}} {chats}
# TYPE vllm_router_request_errors_total counter
vllm_router_request_errors_total{{route="/v1/completions",error_type="no_available_workers"}} {none}
vllm_router_request_errors_total{{route="/v1/completions",error_type="backend_error"}} 7
# TYPE vllm_router_active_workers gauge
vllm_router_active_workers 0
"""

ENGINE_METRICS = """\
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="m"}} {waiting}
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="m"}} {running}
# TYPE vllm:request_success counter
vllm:request_success_total{{engine="0",finished_reason="length",model_name="m"}} {length}
vllm:request_success_total{{engine="0",finished_reason="stop",model_name="m"}} {stop}
"""


def router(completions: float = 0, chats: float = 0, none: float = 0) -> RouterSample:
    return routermetrics.parse(ROUTER_METRICS.format(completions=completions, chats=chats,
                                                     none=none))  # fmt: skip


def engine(waiting: float = 0, running: float = 0, finished: float = 0):
    return enginemetrics.parse(
        ENGINE_METRICS.format(waiting=waiting, running=running, length=finished, stop=0)
    )


def make(**autoscaling: Any) -> InferenceDeploymentSpec:
    return InferenceDeploymentSpec.model_validate({
        "model": {"path": "/m", "servedModelName": "tiny"},
        "autoscaling": {"minReplicas": 0, "maxReplicas": 3, "target": 2, "scaleToZero": True,
                        "scaleToZeroIdleSeconds": IDLE_S, "scaleDownStabilizationSeconds": 0,
                        **autoscaling},
    })  # fmt: skip


def scaler(**autoscaling: Any) -> Autoscaler:
    spec = make(**autoscaling).autoscaling
    assert spec is not None
    return Autoscaler(spec)


# -- the router's metrics -----------------------------------------------------------------------


def test_router_metrics_count_routed_requests_and_attempts_without_a_replica() -> None:
    sample = router(completions=3, chats=2, none=5)
    assert sample == RouterSample(routed=5, without_replica=5)  # backend errors are not demand


def test_demand_is_the_growth_since_the_previous_reading() -> None:
    assert routermetrics.demand({"r": router(completions=9)}, None) == Demand()  # a baseline
    before = {"r": router(completions=4, none=1)}
    assert routermetrics.demand({"r": router(completions=4, none=1)}, before) == Demand()
    grown = routermetrics.demand({"r": router(completions=6, none=4)}, before)
    assert grown == Demand(routed=2, without_replica=3) and grown.active
    # A restarted router pod starts its counters over; a new router pod counts whole.
    restarted = routermetrics.demand({"r": router(completions=1)}, before)
    assert restarted == Demand(routed=1)
    new_pod = routermetrics.demand({"r": router(completions=4, none=1), "s": router(none=2)},
                                   before)  # fmt: skip
    assert new_pod == Demand(without_replica=2)


def test_engine_request_counter_growth() -> None:
    assert engine(finished=3).finished == 3
    assert enginemetrics.finished_since({"a": engine(finished=5)}, {}) == 0
    assert enginemetrics.finished_since({"a": engine(finished=5)}, {"a": engine(finished=3)}) == 2
    assert enginemetrics.finished_since({"b": engine(finished=5)}, {"a": engine(finished=3)}) == 5


# -- decisions ----------------------------------------------------------------------------------


def test_a_request_at_the_router_scales_up_from_zero_at_once() -> None:
    s = scaler(scaleUpStabilizationSeconds=120)
    quiet = s.decide(0, {}, now=0, demand=Demand())
    assert quiet.replicas == 0 and not quiet.changes(0)
    woken = s.decide(0, {}, now=5, demand=Demand(without_replica=3))
    assert woken.replicas == 1  # no up-window at zero: a request is being held
    assert "0 -> 1" in woken.reason and "3 attempts without one" in woken.reason


def test_from_zero_to_min_replicas_when_that_is_higher() -> None:
    s = scaler(minReplicas=2)
    assert s.decide(0, {}, now=0, demand=Demand(without_replica=1)).replicas == 2


def test_without_scale_to_zero_a_deployment_at_zero_comes_back() -> None:
    s = scaler(minReplicas=1, scaleToZero=False)
    assert s.decide(0, {}, now=0).replicas == 1


def test_the_last_replica_goes_only_after_the_idle_window() -> None:
    s = scaler()
    idle = {"a": engine()}
    assert s.decide(1, idle, now=0).replicas == 1  # the window starts at the first reading
    assert s.decide(1, idle, now=IDLE_S - 1).replicas == 1
    down = s.decide(1, idle, now=IDLE_S)
    assert down.replicas == 0 and f"no request for {IDLE_S}s" in down.reason


@pytest.mark.parametrize(
    ("samples", "demand"),
    [
        pytest.param({"a": engine(running=1)}, Demand(), id="a-request-running"),
        pytest.param({"a": engine(waiting=1)}, Demand(), id="a-request-waiting"),
        pytest.param({"a": engine(finished=1)}, Demand(), id="a-request-finished-between"),
        pytest.param({"a": engine()}, Demand(routed=1), id="routed-by-the-router"),
    ],
)
def test_any_request_restarts_the_idle_window(samples, demand) -> None:
    s = scaler()
    s.decide(1, {"a": engine()}, now=0)
    assert s.decide(1, samples, now=IDLE_S - 10, demand=demand).replicas == 1
    assert s.decide(1, {"a": engine(finished=samples["a"].finished)}, now=IDLE_S).replicas == 1
    assert s.decide(1, {"a": engine(finished=samples["a"].finished)}, now=2 * IDLE_S).replicas == 0


def test_light_traffic_keeps_one_replica_although_the_metric_is_zero() -> None:
    """Requests served between readings leave waiting at 0, yet the deployment is in use."""
    s = scaler()
    for minute in range(6):
        decision = s.decide(1, {"a": engine(finished=minute)}, now=minute * IDLE_S)
        assert decision.replicas == 1 and decision.value == 0


def test_a_starting_replica_is_not_idle() -> None:
    """A replica that loads for longer than the idle window is not removed when it is ready."""
    s = scaler()
    s.decide(0, {}, now=0, demand=Demand(without_replica=1))
    assert s.decide(1, {}, now=IDLE_S * 3).replicas == 1  # loading: no samples
    assert s.decide(1, {"a": engine()}, now=IDLE_S * 3 + 1).replicas == 1


def test_scale_down_between_replicas_still_follows_the_metric_and_window() -> None:
    s = scaler(scaleDownStabilizationSeconds=30)
    assert s.decide(1, {"a": engine(waiting=6)}, now=0).replicas == 3
    busy_then_quiet = {f"r{i}": engine(finished=1) for i in range(3)}
    assert s.decide(3, busy_then_quiet, now=10).replicas == 3
    assert s.decide(3, busy_then_quiet, now=41).replicas == 1  # not 0: not idle long enough
    assert s.decide(1, {"r0": engine(finished=1)}, now=41 + IDLE_S).replicas == 0


# -- the router's hold and the status -----------------------------------------------------------


def router_flags(args: list[str]) -> dict[str, str]:
    return {a: args[i + 1] for i, a in enumerate(args) if a.startswith("--retry-")}


def test_router_holds_requests_for_the_activation_timeout_only_with_scale_to_zero() -> None:
    flags = router_flags(workloads.router_args(make(activationTimeoutSeconds=60), OWNER))
    assert flags == {"--retry-max-retries": "16", "--retry-initial-backoff-ms": "500",
                     "--retry-max-backoff-ms": "5000",
                     "--retry-backoff-multiplier": "2"}  # fmt: skip
    # 0.5 + 1 + 2 + 4 s, then 5 s per attempt: 15 backoffs cover 60 s, 14 would not.
    backoffs = [min(500 * 2**i, 5000) for i in range(15)]
    assert sum(backoffs) >= 60_000 > sum(backoffs[:-1])
    assert workloads.hold_attempts(1) == 3
    plain = make(scaleToZero=False, minReplicas=1)
    assert router_flags(workloads.router_args(plain, OWNER)) == {}


def test_idle_window_and_activation_timeout_defaults_and_validation() -> None:
    spec = InferenceDeploymentSpec.model_validate({
        "model": {"path": "/m"},
        "autoscaling": {"minReplicas": 0, "maxReplicas": 1, "target": 1, "scaleToZero": True},
    })  # fmt: skip
    assert spec.autoscaling is not None
    assert spec.autoscaling.scale_to_zero_idle_seconds == 300
    assert spec.autoscaling.activation_timeout_seconds == 300
    with pytest.raises(ValueError, match="activation_timeout_seconds|activationTimeoutSeconds"):
        make(activationTimeoutSeconds=0)


def test_status_reports_the_demand_and_when_a_request_was_last_seen() -> None:
    now = datetime(2026, 11, 28, 14, 0, 30, tzinfo=UTC)
    reported = status_mod.observed_demand(Demand(routed=2, without_replica=3), 30.0, now)
    assert reported == {"requests": 2, "withoutReplica": 3,
                        "lastRequestTime": "2026-11-28T14:00:00Z",
                        "time": "2026-11-28T14:00:30Z"}  # fmt: skip
    kept = status_mod.build_status(
        previous={"observedDemand": reported, "lastScalingDecision": {"toReplicas": 0}},
        generation=1, desired_replicas=0, engine_pods=[], router_ready=True, endpoint=None,
        served_model="tiny", ray_cluster=None, problem=None, now="2026-11-28T14:00:31Z",
    )  # fmt: skip
    assert kept["observedDemand"] == reported
    ready = next(c for c in kept["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ScaledToZero")
