"""Streaming chat completions from an OpenAI-compatible endpoint (vLLM, etc.)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp

from arenastack_arena.service.store import ModelEntry


class UpstreamError(Exception):
    """The model endpoint failed, timed out or answered something unusable."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


async def stream_chat(
    session: aiohttp.ClientSession,
    model: ModelEntry,
    messages: list[dict[str, str]],
    first_token_timeout: float,
    total_timeout: float,
    max_chars: int,
    max_tokens: int | None = None,
) -> AsyncIterator[str]:
    """Yields text deltas; raises UpstreamError on any failure."""
    url = model.endpoint.rstrip("/") + "/chat/completions"
    body: dict[str, object] = {"model": model.upstream_model, "messages": messages, "stream": True}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    timeout = aiohttp.ClientTimeout(total=total_timeout, sock_read=first_token_timeout)
    received = 0
    started = time.monotonic()
    try:
        async with session.post(url, json=body, timeout=timeout) as resp:
            if resp.status != 200:
                raise UpstreamError("status", f"endpoint answered HTTP {resp.status}")
            async for raw in resp.content:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    delta = json.loads(data)["choices"][0].get("delta", {}).get("content") or ""
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                    raise UpstreamError(
                        "protocol", "endpoint sent a malformed stream chunk"
                    ) from None
                if delta:
                    received += len(delta)
                    if received > max_chars:
                        raise UpstreamError("too_long", "answer exceeded the size limit")
                    yield delta
                if time.monotonic() - started > total_timeout:
                    raise UpstreamError("timeout", "answer took too long")
    except TimeoutError:
        raise UpstreamError("timeout", "endpoint timed out") from None
    except aiohttp.ClientError as err:
        raise UpstreamError("connection", f"endpoint unreachable: {type(err).__name__}") from None
