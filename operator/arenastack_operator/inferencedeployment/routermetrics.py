"""Reading vLLM's router's own /metrics: the requests it routed and the attempts that found no
replica. That is the demand a deployment at zero replicas has no engine to show, so it is what
scales it up (as Knative's activator or KEDA's HTTP add-on count requests in front of the pods).

vllm-router 0.1.17 counts a routed request in `vllm_router_requests_total{route}` (inference
routes only: not /health, /v1/models or /metrics, so probes are not demand) and each attempt
without a replica in `vllm_router_request_errors_total{error_type="no_available_workers"}`; a
request it holds and retries counts once per attempt. Parsing is pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

from arenastack_operator.inferencedeployment.enginemetrics import growth

ROUTED: Final = "vllm_router_requests_total"
ERRORS: Final = "vllm_router_request_errors_total"
NO_REPLICA: Final = "no_available_workers"


@dataclass(frozen=True)
class RouterSample:
    """One router pod's counters, summed over routes."""

    routed: float = 0.0
    without_replica: float = 0.0


@dataclass(frozen=True)
class Demand:
    """Requests seen at the routers between two readings."""

    routed: float = 0.0
    without_replica: float = 0.0

    @property
    def active(self) -> bool:
        return self.routed > 0 or self.without_replica > 0


NO_DEMAND: Final = Demand()


def parse(text: str) -> RouterSample:
    routed = without = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == ROUTED:
                routed += s.value
            elif s.name == ERRORS and s.labels.get("error_type") == NO_REPLICA:
                without += s.value
    return RouterSample(routed, without)


def demand(now: Mapping[str, RouterSample], before: Mapping[str, RouterSample] | None) -> Demand:
    """The counters' growth since `before`, over all router pods. Without any earlier reading
    (a restarted operator) this is a baseline: no demand. A router pod new since then counts
    whole: everything it counted happened after the previous reading."""
    if before is None:
        return NO_DEMAND
    routed = without = 0.0
    for pod, sample in now.items():
        previous = before.get(pod, RouterSample())
        routed += growth(sample.routed, previous.routed)
        without += growth(sample.without_replica, previous.without_replica)
    return Demand(routed, without)
