"""Reading a vLLM replica's own /metrics: the gauges and the time-to-first-token histogram the
autoscaler decides on. Parsing is pure; `scrape` is the one network call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

WAITING: Final = "vllm:num_requests_waiting"
RUNNING: Final = "vllm:num_requests_running"
KV_CACHE_USAGE: Final = "vllm:kv_cache_usage_perc"
TTFT: Final = "vllm:time_to_first_token_seconds"
FINISHED: Final = "vllm:request_success_total"
SCRAPE_TIMEOUT_S: Final = 3.0
T = TypeVar("T")


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts by upper bound (the last bound is +Inf)."""

    buckets: tuple[tuple[float, float], ...] = ()

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0

    def minus(self, earlier: Histogram | None) -> Histogram:
        """Observations made since `earlier` (a restarted replica's counters start over)."""
        if earlier is None or not earlier.buckets:
            return self
        before = dict(earlier.buckets)
        delta = tuple((le, count - before.get(le, 0.0)) for le, count in self.buckets)
        if any(count < 0 for _, count in delta):
            return self
        return Histogram(delta)

    def merged(self, other: Histogram) -> Histogram:
        if not self.buckets:
            return other
        theirs = dict(other.buckets)
        return Histogram(tuple((le, count + theirs.get(le, 0.0)) for le, count in self.buckets))

    def quantile(self, q: float) -> float | None:
        """Prometheus' histogram_quantile: linear inside the bucket; None without observations."""
        total = self.count
        if total <= 0:
            return None
        rank = q * total
        lower_bound, lower_count = 0.0, 0.0
        for le, count in self.buckets:
            if count >= rank:
                if math.isinf(le):
                    return lower_bound
                if count == lower_count:
                    return le
                return lower_bound + (le - lower_bound) * (rank - lower_count) / (
                    count - lower_count
                )
            lower_bound, lower_count = le, count
        return lower_bound


@dataclass(frozen=True)
class Sample:
    """One replica's reading, summed over its models (an engine serves one)."""

    waiting: float = 0.0
    running: float = 0.0
    kv_cache_usage: float = 0.0
    ttft: Histogram = field(default_factory=Histogram)
    finished: float = 0.0  # requests finished since the engine started (a counter)

    @property
    def busy(self) -> bool:
        return self.waiting > 0 or self.running > 0


def parse(text: str) -> Sample:
    waiting = running = kv = finished = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == WAITING:
                waiting += s.value
            elif s.name == RUNNING:
                running += s.value
            elif s.name == KV_CACHE_USAGE:
                kv = max(kv, s.value)
            elif s.name == FINISHED:
                finished += s.value
            elif s.name == f"{TTFT}_bucket":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    return Sample(waiting, running, kv, Histogram(tuple(sorted(buckets.items()))), finished)


def growth(now: float, before: float | None) -> float:
    """A counter's increase; a counter that went back (its process restarted) counts from 0."""
    if before is None:
        return 0.0
    return now - before if now >= before else now


def finished_since(now: Mapping[str, Sample], before: Mapping[str, Sample]) -> float:
    """Requests the replicas finished since the previous reading (a replica new since then
    counts whole, unless there was no previous reading at all)."""
    if not before:
        return 0.0
    return sum(
        growth(s.finished, before[r].finished if r in before else 0.0) for r, s in now.items()
    )


def merged_ttft(now: Mapping[str, Sample], before: Mapping[str, Sample]) -> Histogram:
    """The TTFT observations of all replicas since the previous reading."""
    total = Histogram()
    for replica, sample in now.items():
        previous = before.get(replica)
        total = total.merged(sample.ttft.minus(previous.ttft if previous else None))
    return total


async def scrape(session: aiohttp.ClientSession, url: str, parser: Callable[[str], T]) -> T:
    timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
    async with session.get(url, timeout=timeout) as response:
        response.raise_for_status()
        return parser(await response.text())


async def fetch_all(urls: Mapping[str, str], parser: Callable[[str], T]) -> dict[str, T]:
    """Parsed /metrics of the pods that answered, by pod name."""
    result: dict[str, T] = {}
    async with aiohttp.ClientSession() as session:
        for pod, url in urls.items():
            try:
                result[pod] = await scrape(session, url, parser)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                continue  # a pod that does not answer has no say this round
    return result


async def scrape_all(urls: Mapping[str, str]) -> dict[str, Sample]:
    """Readings of the replicas that answered, by replica name."""
    return await fetch_all(urls, parse)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
