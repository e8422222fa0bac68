"""Prometheus metrics, one registry per app so several apps can live in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.battles_started = Counter("arena_battles_started", "Battles started", registry=r)
        self.battles_completed = Counter(
            "arena_battles_completed", "Battle turns whose two answers both completed", registry=r
        )
        self.votes = Counter("arena_votes", "Votes recorded, by outcome", ["outcome"], registry=r)
        self.request_latency = Histogram(
            "arena_request_duration_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "arena_upstream_errors", "Model endpoint failures", ["model", "kind"], registry=r
        )
        self.upstream_latency = Histogram(
            "arena_upstream_duration_seconds",
            "Time to a model's complete answer",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.leaderboard_refresh = Histogram(
            "arena_leaderboard_refresh_seconds",
            "Leaderboard recomputation time",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_errors = Counter("arena_db_errors", "Database errors", ["op"], registry=r)
        self.rate_limited = Counter(
            "arena_rate_limited", "Requests refused by rate limits", ["bucket"], registry=r
        )
