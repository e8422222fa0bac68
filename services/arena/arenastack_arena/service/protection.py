"""Abuse protection: bearer tokens, per-client token buckets, body size limits, security
headers."""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_TRACKED_CLIENTS = 100_000
# Model answers are shown in the browser; the page may only load its own
# scripts and styles, so injected markup cannot fetch or run anything.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def bearer_auth(
    accepted: tuple[str, ...], disabled: str, wrong: str
) -> Callable[..., Awaitable[None]]:
    """A dependency that wants ``Authorization: Bearer <one of accepted>``.

    An empty token is never accepted: with every one of them empty the API is off
    (403, ``disabled``); a missing or other token is 401 (``wrong``). Tokens are
    compared in constant time and never logged.
    """
    tokens = [t.encode() for t in accepted if t]

    async def check(authorization: Annotated[str | None, Header()] = None) -> None:
        if not tokens:
            raise HTTPException(403, disabled)
        given = (authorization or "").removeprefix("Bearer ").strip().encode()
        # Every token is compared, so the time taken does not say which one matched.
        if not any([hmac.compare_digest(given, token) for token in tokens]):
            raise HTTPException(401, wrong, headers={"www-authenticate": "Bearer"})

    return check


class RateLimiter:
    """Token bucket per client: ``rate_per_minute`` sustained, bursts up to a minute's worth."""

    def __init__(self, rate_per_minute: float) -> None:
        self.rate = rate_per_minute / 60.0
        self.capacity = max(1.0, rate_per_minute)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._buckets.popitem(last=False)
        return allowed


class BodyLimitMiddleware:
    """Refuses request bodies over the limit (413) before the app reads them all."""

    def __init__(self, app: ASGIApp, default_limit: int, limits: dict[str, int]) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default_limit)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await _too_large(send, limit)


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"detail":"request body too large (limit {limit} bytes)"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)
