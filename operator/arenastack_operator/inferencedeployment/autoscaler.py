"""Replica count from the engines' own metrics, the way Kubernetes' HPA decides.

desired = ceil(current x value / target), unchanged within a tolerance; then stabilised: a
scale-up goes to the lowest recommendation of the up-window, a scale-down to the highest of the
down-window, so a short burst scales up at once (window 0) and a lull must last before replicas
go. Pure: the caller feeds readings and the clock.

Scale to zero (when allowed) follows requests rather than the metric, as Knative and KEDA do:
the last replica goes once no request has reached the router or an engine for the idle window,
and at zero, where no engine can be read, requests seen at the router (routermetrics) bring one
replica (or minReplicas) back at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from arenastack_operator.inferencedeployment import enginemetrics, routermetrics
from arenastack_operator.inferencedeployment.enginemetrics import Sample
from arenastack_operator.inferencedeployment.routermetrics import NO_DEMAND, Demand, RouterSample
from arenastack_operator.inferencedeployment.spec import AutoscalingSpec

TOLERANCE: Final = 0.1  # HPA's default: within 10% of the target nothing changes


@dataclass(frozen=True)
class Decision:
    replicas: int
    value: float
    reason: str
    recommendation: int  # before stabilisation

    def changes(self, current: int) -> bool:
        return self.replicas != current


def metric_value(
    spec: AutoscalingSpec, now: Mapping[str, Sample], before: Mapping[str, Sample]
) -> float:
    """The metric over the replicas that answered: waiting requests and KV-cache usage averaged
    per replica; TTFT at the percentile over the requests since the previous reading (0 without
    any: an idle deployment is fast)."""
    samples = list(now.values())
    if spec.metric == "waitingRequests":
        return enginemetrics.mean([s.waiting for s in samples])
    if spec.metric == "kvCacheUsage":
        return enginemetrics.mean([s.kv_cache_usage for s in samples])
    quantile = enginemetrics.merged_ttft(now, before).quantile(spec.ttft_percentile / 100)
    return quantile or 0.0


def raw_recommendation(current: int, value: float, target: float) -> int:
    if current == 0:
        return 1 if value > 0 else 0
    ratio = value / target
    if abs(ratio - 1.0) <= TOLERANCE:
        return current
    return math.ceil(current * ratio)


@dataclass
class Autoscaler:
    """Decision state of one InferenceDeployment (kept in memory: a restarted operator starts
    with empty windows and counts the idle time afresh, which only delays a scale-down)."""

    spec: AutoscalingSpec
    history: list[tuple[float, int]] = field(default_factory=list)
    previous: dict[str, Sample] = field(default_factory=dict)
    previous_router: dict[str, RouterSample] | None = None
    last_request: float | None = None  # when a request was last seen (monotonic clock)

    def observe_router(self, readings: Mapping[str, RouterSample]) -> Demand:
        """Requests at the routers since their previous reading."""
        demand = routermetrics.demand(readings, self.previous_router)
        self.previous_router = dict(readings)
        return demand

    def idle_for(self, now: float) -> float:
        return now - self.last_request if self.last_request is not None else 0.0

    def decide(
        self,
        current: int,
        samples: Mapping[str, Sample],
        now: float,
        demand: Demand = NO_DEMAND,
    ) -> Decision:
        spec = self.spec
        active = (
            demand.active
            or any(s.busy for s in samples.values())
            or enginemetrics.finished_since(samples, self.previous) > 0
        )
        if active or self.last_request is None:
            self.last_request = now
        if current == 0:
            self.previous = dict(samples)
            return self._from_zero(demand)
        if not samples:
            # Replicas exist but none answered (still loading): nothing to decide on, and the
            # idle window starts only once they serve.
            self.last_request = now
            return Decision(current, 0.0, "no replica answered its /metrics", current)
        value = metric_value(spec, samples, self.previous)
        self.previous = dict(samples)
        idle = self.idle_for(now)
        if spec.scale_to_zero and not active and idle >= spec.scale_to_zero_idle_seconds:
            reason = (
                f"no request for {idle:.0f}s (scaleToZeroIdleSeconds "
                f"{spec.scale_to_zero_idle_seconds}): {current} -> 0"
            )
            self.history.clear()
            return Decision(0, value, reason, 0)
        floor = max(spec.min_replicas, 1)
        recommendation = raw_recommendation(current, value, spec.target)
        recommendation = min(max(recommendation, floor), spec.max_replicas)

        self.history.append((now, recommendation))
        longest = max(spec.scale_up_stabilization_seconds, spec.scale_down_stabilization_seconds)
        self.history = [(t, r) for t, r in self.history if t >= now - longest]
        up = min(r for t, r in self.history if t >= now - spec.scale_up_stabilization_seconds)
        down = max(r for t, r in self.history if t >= now - spec.scale_down_stabilization_seconds)

        replicas = current
        if up > current:
            replicas = up
        elif down < current:
            replicas = down
        replicas = min(max(replicas, floor), spec.max_replicas)
        reason = (
            f"{spec.metric} {value:.3g} (target {spec.target:g}) over {len(samples)} replicas: "
            f"recommend {recommendation}, stabilised {current} -> {replicas}"
        )
        return Decision(replicas, value, reason, recommendation)

    def _from_zero(self, demand: Demand) -> Decision:
        """At zero only the router can show demand; any request there brings replicas back,
        with no stabilisation (a held request is waiting for them)."""
        spec = self.spec
        floor = spec.min_replicas if spec.scale_to_zero else max(spec.min_replicas, 1)
        if not demand.active:
            return Decision(floor, 0.0, f"no request at the router: 0 -> {floor}", floor)
        replicas = min(max(spec.min_replicas, 1), spec.max_replicas)
        reason = (
            f"requests at the router with no replica ({demand.without_replica:g} attempts "
            f"without one, {demand.routed:g} routed): 0 -> {replicas}"
        )
        return Decision(replicas, 0.0, reason, replicas)
