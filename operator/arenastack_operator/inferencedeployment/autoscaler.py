"""Replica count from the engines' own metrics, the way Kubernetes' HPA decides.

desired = ceil(current x value / target), unchanged within a tolerance; then stabilised: a
scale-up goes to the lowest recommendation of the up-window, a scale-down to the highest of the
down-window, so a short burst scales up at once (window 0) and a lull must last before replicas
go. Scale to zero happens only when allowed and nothing is running or waiting. Pure: the caller
feeds readings and the clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from arenastack_operator.inferencedeployment import enginemetrics
from arenastack_operator.inferencedeployment.enginemetrics import Sample
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
    with empty windows, which only delays a scale-down)."""

    spec: AutoscalingSpec
    history: list[tuple[float, int]] = field(default_factory=list)
    previous: dict[str, Sample] = field(default_factory=dict)

    def decide(self, current: int, samples: Mapping[str, Sample], now: float) -> Decision:
        spec = self.spec
        value = metric_value(spec, samples, self.previous)
        self.previous = dict(samples)
        busy = any(s.waiting > 0 or s.running > 0 for s in samples.values())
        floor = 0 if spec.scale_to_zero and not busy else max(spec.min_replicas, 1)
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
