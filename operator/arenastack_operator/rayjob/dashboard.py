"""Ray's Jobs API on the head's dashboard (`/api/jobs/`): the operator's view of a Ray job.

Connection failures and 5xx answers propagate (aiohttp.ClientError, TimeoutError), which the
controller base retries; a job the dashboard does not know is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import aiohttp

TIMEOUT_S: Final = 10.0


class DashboardError(RuntimeError):
    """The dashboard answered a request with an error that retrying will not change."""


def _base(address: str) -> str:
    return address if address.startswith("http://") else f"http://{address}"


def _headers(token: str | None) -> dict[str, str]:
    """Ray's token authentication: the cluster's token as a bearer token."""
    return {"Authorization": f"Bearer {token}"} if token else {}


class JobsClient:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def info(
        self, address: str, job_id: str, token: str | None = None
    ) -> dict[str, Any] | None:
        url = f"{_base(address)}/api/jobs/{job_id}"
        async with self._http().get(url, headers=_headers(token)) as response:
            if response.status == 404:
                return None
            response.raise_for_status()
            return dict(await response.json(content_type=None))

    async def submit(self, address: str, body: Mapping[str, Any], token: str | None = None) -> None:
        url = f"{_base(address)}/api/jobs/"
        async with self._http().post(url, json=dict(body), headers=_headers(token)) as response:
            if 400 <= response.status < 500:
                text = (await response.text())[:500]
                if "already exists" in text:  # submitted before a restart: the same job
                    return
                raise DashboardError(f"the dashboard refused the job ({response.status}): {text}")
            response.raise_for_status()

    async def stop(self, address: str, job_id: str, token: str | None = None) -> None:
        url = f"{_base(address)}/api/jobs/{job_id}/stop"
        async with self._http().post(url, headers=_headers(token)) as response:
            if response.status != 404:
                response.raise_for_status()
