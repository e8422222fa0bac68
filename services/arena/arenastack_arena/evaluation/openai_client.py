"""OpenAI-compatible chat completions over aiohttp (no openai client in the arena image).

``POST {baseURL}/chat/completions`` with a Bearer key when one is configured. The reply is read
as JSON, or as server-sent events when the server streams anyway (some proxies and the test
double do). Failures are ``ChatError``s that say whether a retry may help and whether the
server could not be reached at all, which the judge turns into exit code 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

# Gateways answer these while the engine behind them is down or restarting.
UNREACHABLE_STATUSES = frozenset({502, 503, 504})
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500}) | UNREACHABLE_STATUSES
CONNECT_TIMEOUT_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
ERROR_BODY_CHARS = 300

Slot = Callable[[], AbstractAsyncContextManager[Any]]


def safe_url(url: str) -> str:
    """The URL without user info or query, fit for logs (a URL may embed credentials)."""
    try:
        parsed = URL(url)
    except ValueError:
        return "<bad url>"
    return str(parsed.with_user(None).with_query(None).with_fragment(None))


def backoff(attempt: int, base: float = BACKOFF_BASE_SECONDS) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): exponential with jitter, capped."""
    return min(BACKOFF_MAX_SECONDS, base * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)


class ChatError(Exception):
    def __init__(
        self, message: str, *, status: int | None = None, retryable: bool, unreachable: bool
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        # Not even an HTTP answer from the server itself (refused, DNS, reset, 502-504).
        self.unreachable = unreachable


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None = None
    # usage.completion_tokens where the endpoint reports it (priced per million).
    tokens: int | None = None


@contextlib.asynccontextmanager
async def _no_slot() -> AsyncIterator[None]:
    yield


class ChatClient:
    """One endpoint and model; the session is shared by every client of a run."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_seconds: float = 300.0,
        backoff_base: float = BACKOFF_BASE_SECONDS,
    ) -> None:
        self._session = session
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(
            total=timeout_seconds, sock_connect=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds)
        )
        self.backoff_base = backoff_base

    def __repr__(self) -> str:
        return f"ChatClient({safe_url(self.url)!r}, {self.model!r})"

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float | None = None,
        response_format: dict[str, Any] | None = None,
        retries: int = 0,
        slot: Slot = _no_slot,
    ) -> Completion:
        """One completion; transient failures retried with exponential backoff.

        ``slot`` is held for each attempt only, never while backing off, so a failing
        endpoint does not keep the run's request slots from the others.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": False,
        }
        if temperature is not None:
            body["temperature"] = temperature
        if response_format is not None:
            body["response_format"] = response_format
        attempt = 0
        while True:
            try:
                async with slot():
                    return await self._once(body)
            except ChatError as err:
                if not err.retryable or attempt >= retries:
                    raise
            attempt += 1
            await asyncio.sleep(backoff(attempt, self.backoff_base))

    async def _once(self, body: dict[str, Any]) -> Completion:
        where = f"{safe_url(self.url)} ({self.model})"
        try:
            async with self._session.post(
                self.url, json=body, headers=self._headers, timeout=self._timeout
            ) as response:
                if response.status >= 400:
                    text = (await response.text(errors="replace"))[:ERROR_BODY_CHARS]
                    raise ChatError(
                        f"{where}: HTTP {response.status}: {text.strip()}",
                        status=response.status,
                        retryable=response.status in RETRY_STATUSES,
                        unreachable=response.status in UNREACHABLE_STATUSES,
                    )
                if response.content_type == "text/event-stream":
                    return await _read_events(response, where)
                try:
                    payload = await response.json(content_type=None)
                except (json.JSONDecodeError, UnicodeDecodeError, aiohttp.ContentTypeError):
                    raise ChatError(
                        f"{where}: reply is not JSON", retryable=True, unreachable=False
                    ) from None
                return _from_payload(payload, where)
        except TimeoutError:
            raise ChatError(
                f"{where}: no reply within {self._timeout.total:g} s",
                retryable=True,
                unreachable=False,
            ) from None
        except aiohttp.ClientConnectorError as err:
            raise ChatError(
                f"{where}: cannot connect: {err.os_error or err}", retryable=True, unreachable=True
            ) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as err:
            raise ChatError(
                f"{where}: connection lost: {err}", retryable=True, unreachable=True
            ) from None
        except aiohttp.ClientError as err:
            raise ChatError(f"{where}: {err}", retryable=True, unreachable=False) from None

    async def reachable(self, retries: int = 0) -> None:
        """Raises ChatError(unreachable) unless the server answers HTTP at all (GET /models)."""
        attempt = 0
        while True:
            try:
                async with self._session.get(
                    f"{self.base_url}/models",
                    headers=self._headers,
                    timeout=aiohttp.ClientTimeout(total=30, sock_connect=CONNECT_TIMEOUT_SECONDS),
                ) as response:
                    # Any answer, even 401 or 404, shows a server is there.
                    if response.status not in UNREACHABLE_STATUSES:
                        return
                    detail = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as err:
                detail = f"{type(err).__name__}: {err}"
            if attempt >= retries:
                raise ChatError(
                    f"{safe_url(self.base_url)}: {detail}", retryable=False, unreachable=True
                )
            attempt += 1
            await asyncio.sleep(backoff(attempt, self.backoff_base))


def _from_payload(payload: Any, where: str) -> Completion:
    try:
        choice = payload["choices"][0]
        message = choice.get("message") or {}
        text = message.get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ChatError(
            f"{where}: reply has no choices[0].message", retryable=True, unreachable=False
        ) from None
    usage = payload.get("usage") if isinstance(payload, dict) else None
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return Completion(
        text if isinstance(text, str) else "",
        choice.get("finish_reason"),
        tokens if isinstance(tokens, int) and tokens >= 0 else None,
    )


async def _read_events(response: aiohttp.ClientResponse, where: str) -> Completion:
    parts: list[str] = []
    finish: str | None = None
    buffer = b""
    async for chunk in response.content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return Completion("".join(parts), finish)
            try:
                event = json.loads(data)
                choice = event["choices"][0]
            except (json.JSONDecodeError, KeyError, IndexError, TypeError):
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                parts.append(delta["content"])
            finish = choice.get("finish_reason") or finish
    if not parts:
        raise ChatError(f"{where}: stream ended without content", retryable=True, unreachable=False)
    return Completion("".join(parts), finish)
