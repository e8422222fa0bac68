"""The arena service's judge API, as the runner uses it (the contract of issue 12).

Transient failures (no connection, 429, 5xx) are retried with exponential backoff; when the
arena still cannot be reached the run stops with ``Unreachable`` (exit 3) and the Job's retry
resumes it. A refused token is a configuration error. A body the arena refuses (413, 422) is
that battle's error only: ``Rejected``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import quote

import aiohttp

from arenastack_arena.evaluation.errors import ConfigError, Unreachable
from arenastack_arena.evaluation.openai_client import (
    CONNECT_TIMEOUT_SECONDS,
    RETRY_STATUSES,
    backoff,
    safe_url,
)

log = logging.getLogger(__name__)

ARENA_RETRIES = 4  # about 1 + 2 + 4 + 8 s of backoff before the run gives up
REQUEST_TIMEOUT_SECONDS = 120.0
EXPORT_TIMEOUT_SECONDS = 1800.0
ERROR_BODY_CHARS = 300
EXPORT_PATH = "/api/evaluations/{namespace}/{name}/battles.jsonl"


class Rejected(Exception):
    """The arena refused one request's content (4xx other than auth): not retried."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class _Transient(Exception):
    pass


class ArenaClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        token: str | None,
        retries: int = ARENA_RETRIES,
        backoff_base: float = 1.0,
    ) -> None:
        self._session = session
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retries = retries
        self.backoff_base = backoff_base

    def export_url(self, namespace: str, name: str) -> str:
        return self.url + EXPORT_PATH.format(namespace=quote(namespace), name=quote(name))

    # -- the routes ------------------------------------------------------------------------

    async def stored_ids(self, evaluation: str) -> set[str]:
        """Every battle id the arena holds for ``evaluation`` (any run)."""
        data = await self._json("GET", "/api/judgments", params={"evaluation": evaluation})
        ids = data.get("battleIds") if isinstance(data, dict) else None
        if not isinstance(ids, list):
            raise Unreachable("arena", "GET /api/judgments: reply without battleIds")
        return {i for i in ids if isinstance(i, str)}

    async def post_judgment(self, body: dict[str, Any]) -> bool:
        """Stores one judged battle; False when the arena had it already (idempotent)."""
        data = await self._json("POST", "/api/judgments", body=body)
        return bool(data.get("stored")) if isinstance(data, dict) else False

    async def arena_battles(self, category: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, str] = {"limit": str(limit)}
        if category:
            params["category"] = category
        data = await self._json("GET", "/api/arena-battles", params=params)
        battles = data.get("battles") if isinstance(data, dict) else None
        if not isinstance(battles, list):
            raise Unreachable("arena", "GET /api/arena-battles: reply without battles")
        return [b for b in battles if isinstance(b, dict)]

    async def agreement(self, a: str, b: str) -> dict[str, Any]:
        data = await self._json("GET", "/api/agreement", params={"a": a, "b": b})
        return data if isinstance(data, dict) else {}

    async def leaderboard(self, source: str) -> dict[str, Any]:
        data = await self._json("GET", "/api/leaderboard", params={"source": source})
        return data if isinstance(data, dict) else {}

    async def export(
        self, namespace: str, name: str, keep: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every stored battle of the evaluation, from the JSON-lines export.

        ``keep`` names the fields kept per line: the answers and replies are the bulk of an
        export, and the ranking needs none of them.
        """
        fields = frozenset(keep) if keep is not None else None
        path = EXPORT_PATH.format(namespace=quote(namespace), name=quote(name))
        attempt = 0
        while True:
            rows: list[dict[str, Any]] = []
            try:
                async for line in self._lines(path):
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        log.warning("export %s: skipping a line that is not JSON", path)
                        continue
                    if isinstance(row, dict):
                        rows.append(row if fields is None else {k: row.get(k) for k in fields})
                return rows
            except _Transient as err:
                attempt = await self._retry(attempt, f"GET {path}", err)

    # -- plumbing --------------------------------------------------------------------------

    async def _retry(self, attempt: int, what: str, err: Exception) -> int:
        if attempt >= self.retries:
            raise Unreachable("arena", f"{what} at {safe_url(self.url)}: {err}") from None
        attempt += 1
        delay = backoff(attempt, self.backoff_base)
        log.warning("arena: %s failed (%s); retry %d in %.1f s", what, err, attempt, delay)
        await asyncio.sleep(delay)
        return attempt

    async def _json(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        attempt = 0
        while True:
            try:
                return await self._request_json(method, path, params, body)
            except _Transient as err:
                attempt = await self._retry(attempt, f"{method} {path}", err)

    async def _request_json(
        self, method: str, path: str, params: dict[str, str] | None, body: dict[str, Any] | None
    ) -> Any:
        timeout = aiohttp.ClientTimeout(
            total=REQUEST_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS
        )
        try:
            async with self._session.request(
                method,
                self.url + path,
                params=params,
                json=body,
                headers=self._headers,
                timeout=timeout,
            ) as response:
                await _check(response, f"{method} {path}")
                try:
                    return await response.json(content_type=None)
                except (json.JSONDecodeError, UnicodeDecodeError) as err:
                    raise _Transient(f"reply is not JSON: {err}") from None
        except (aiohttp.ClientError, TimeoutError) as err:
            raise _Transient(f"{type(err).__name__}: {err}") from None

    async def _lines(self, path: str) -> AsyncIterator[bytes]:
        timeout = aiohttp.ClientTimeout(
            total=EXPORT_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS
        )
        try:
            async with self._session.get(
                self.url + path, headers=self._headers, timeout=timeout
            ) as response:
                await _check(response, f"GET {path}")
                # Lines can be megabytes (16 turns of two answers): split by hand, as
                # StreamReader.readline has a line length limit.
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield line
                if buffer.strip():
                    yield buffer
        except (aiohttp.ClientError, TimeoutError) as err:
            raise _Transient(f"{type(err).__name__}: {err}") from None


async def _check(response: aiohttp.ClientResponse, what: str) -> None:
    if response.status < 400:
        return
    text = (await response.text(errors="replace"))[:ERROR_BODY_CHARS].strip()
    try:
        detail = json.loads(text).get("detail", text)
    except (json.JSONDecodeError, AttributeError):
        detail = text
    message = f"{what}: HTTP {response.status}: {detail}"
    if response.status in (401, 403):
        raise ConfigError(f"arena.tokenEnv: the arena refused the judge token: {message}")
    if response.status in RETRY_STATUSES or response.status >= 500:
        raise _Transient(message)
    raise Rejected(response.status, str(detail))
