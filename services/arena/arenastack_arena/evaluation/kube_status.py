"""The runner's writes to its ArenaEvaluation's status subresource (no kubernetes client).

Every write is a JSON patch whose first operation tests ``/status/run``: the operator sets the
run when it starts one, so a runner of an outdated run (its Job not yet deleted) fails the
test and can never overwrite a newer run's status. After a failed test the writer stops for
good. Status is a report, never a reason to fail the run: other errors are logged once each.
"""

from __future__ import annotations

import json
import logging
import math
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

log = logging.getLogger(__name__)

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
STATUS_PATH = "/apis/arenastack.io/v1alpha1/namespaces/{namespace}/arenaevaluations/{name}/status"
JSON_PATCH = "application/json-patch+json"
STATUS_SWITCH = "ARENASTACK_STATUS"
TIMEOUT_SECONDS = 15.0


def _clean(value: Any) -> Any:
    """The value without None members (the CRD's fields are not nullable) or NaN numbers."""
    if isinstance(value, Mapping):
        cleaned = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def patch_body(run: int, fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch: test the run first, then set each field (``add`` replaces a member)."""
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/status/run", "value": run}]
    for key, value in fields.items():
        if value is None:
            continue
        ops.append({"op": "add", "path": f"/status/{key}", "value": _clean(value)})
    return ops


class StatusSink(Protocol):
    async def write(self, fields: Mapping[str, Any]) -> bool: ...

    async def close(self) -> None: ...


class NoStatus:
    """Outside a pod, or with ARENASTACK_STATUS=off: nothing is written."""

    async def write(self, fields: Mapping[str, Any]) -> bool:
        return False

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class KubeTarget:
    base_url: str  # https://host:port of the API server
    token_file: Path
    ca_file: Path | None


def in_cluster(
    environ: Mapping[str, str] | None = None, root: Path = SERVICE_ACCOUNT
) -> KubeTarget | None:
    """Where the API server is when running in a pod; None outside one or when turned off."""
    env = os.environ if environ is None else environ
    if env.get(STATUS_SWITCH, "").strip().lower() in ("off", "false", "0", "no"):
        return None
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    token, ca = root / "token", root / "ca.crt"
    if not host or not port or not token.is_file() or not ca.is_file():
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 service address
    return KubeTarget(f"https://{host}:{port}", token, ca)


class StatusWriter:
    """Patches one evaluation's status for one run."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        target: KubeTarget,
        namespace: str,
        name: str,
        run: int,
    ) -> None:
        self._session = session
        self._target = target
        self._url = target.base_url + STATUS_PATH.format(namespace=namespace, name=name)
        self._run = run
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(target.ca_file)) if target.ca_file else True
        )
        self.stopped = False
        self._logged: set[str] = set()

    def _once(self, key: str, message: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(message, *args)

    async def write(self, fields: Mapping[str, Any]) -> bool:
        if self.stopped:
            return False
        try:
            # Re-read every time: projected service-account tokens are rotated.
            token = self._target.token_file.read_text().strip()
        except OSError as err:
            self._once("token", "status not written: cannot read the token: %s", err)
            return False
        headers = {"Authorization": f"Bearer {token}", "Content-Type": JSON_PATCH}
        try:
            async with self._session.patch(
                self._url,
                data=json.dumps(patch_body(self._run, fields)).encode(),
                headers=headers,
                ssl=self._ssl,
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
            ) as response:
                if response.status < 300:
                    return True
                text = (await response.text(errors="replace"))[:500]
        except (aiohttp.ClientError, TimeoutError) as err:
            self._once(f"net:{type(err).__name__}", "status not written: %s", err)
            return False
        return self._refused(response.status, text)

    def _refused(self, status: int, text: str) -> bool:
        stale = status == 422 and "test" in text.lower()
        if stale or status in (403, 404):
            self.stopped = True
            why = (
                f"status.run is no longer {self._run}: a newer run owns the status"
                if stale
                else f"HTTP {status}: {text}"
            )
            log.warning("status writes stopped: %s", why)
        else:
            self._once(f"http:{status}", "status not written: HTTP %d: %s", status, text)
        return False

    async def close(self) -> None:
        return None
