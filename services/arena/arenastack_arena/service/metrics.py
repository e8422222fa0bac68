"""Prometheus metrics, one registry per app so several apps can live in one process."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        self.db_batch_size = Histogram(
            "arena_db_batch_writes",
            "Writes per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.db_commit = Histogram(
            "arena_db_commit_seconds",
            "Time to run and commit one batch of writes",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_errors = Counter("arena_db_errors", "Database errors", ["op"], registry=r)
        self.judged_battles = Counter(
            "arena_judged_battles",
            "Judged battles posted, by whether they were new (stored) or repeats",
            ["stored"],
            registry=r,
        )
        self.rate_limited = Counter(
            "arena_rate_limited", "Requests refused by rate limits", ["bucket"], registry=r
        )

    def observe_commit(self, size: int, seconds: float) -> None:
        self.db_batch_size.observe(size)
        self.db_commit.observe(seconds)


class LatencyMiddleware:
    """Observes each HTTP request's latency by route template, method and status.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's
    BaseHTTPMiddleware runs every request through a task group and memory
    streams, which cost more CPU than the vote itself.
    """

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes the app becomes a 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            # The router stores the matched route in the scope it was given.
            route = scope.get("route")
            self.histogram.labels(
                getattr(route, "path", "unmatched"), scope["method"], str(status)
            ).observe(time.perf_counter() - started)
