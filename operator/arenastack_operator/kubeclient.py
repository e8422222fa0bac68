"""A small asyncio client for the kube-apiserver's REST API, on the aiohttp that kopf runs on.

Plain JSON in and out (the builders produce plain objects), no thread pool, one connection pool.
Credentials come from a `kubernetes.client.Configuration` (kubeconfig or in-cluster), read on
every request so that rotated service-account tokens are picked up.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from kubernetes import client

MERGE_PATCH: Final = "application/merge-patch+json"
JSON: Final = "application/json"
DEFAULT_CONNECTIONS: Final = 32
DEFAULT_TIMEOUT_S: Final = 30.0
CONFLICT: Final = 409
NOT_FOUND: Final = 404
FORBIDDEN: Final = 403  # e.g. a create in a namespace being deleted


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _ssl_context(configuration: client.Configuration) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


class KubeClient:
    def __init__(
        self,
        configuration: client.Configuration,
        *,
        connections: int = DEFAULT_CONNECTIONS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        count: Callable[[str, str, int], None] | None = None,
    ) -> None:
        """`count(method, resource, status)`, if given, is told of every response."""
        self._configuration = configuration
        self._host = configuration.host.rstrip("/")
        self._ssl = _ssl_context(configuration) if self._host.startswith("https") else None
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._count = count

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": JSON}
        if content_type:
            headers["Content-Type"] = content_type
        auth = self._configuration.get_api_key_with_prefix(
            "BearerToken"
        ) or self._configuration.get_api_key_with_prefix("authorization")
        if auth:
            headers["Authorization"] = auth if " " in auth else f"Bearer {auth}"
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
    ) -> Any:
        if self._session is None:
            # Created lazily so that it belongs to the event loop that uses it.
            connector = aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl or False)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        data = None if body is None else json.dumps(body)
        async with self._session.request(
            method,
            self._host + path,
            params=params,
            data=data,
            headers=self._headers(content_type if data is not None else None),
        ) as response:
            text = await response.text()
            if self._count is not None:
                self._count(method, _resource(path), response.status)
            if response.status >= 400:
                raise _api_error(response.status, text)
            return json.loads(text) if text else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the calls the RayCluster reconciler makes -------------------------------------------

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        try:
            return await self.request("GET", path)
        except ApiError as e:
            if e.status == NOT_FOUND:
                return None
            raise

    async def list(self, path: str, label_selector: str) -> list[dict[str, Any]]:
        result = await self.request("GET", path, params={"labelSelector": label_selector})
        return list(result.get("items") or [])

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=body)

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=body, content_type=MERGE_PATCH)

    async def delete(
        self, path: str, uid: str | None = None, propagation: str | None = None
    ) -> bool:
        """Delete (only the object with this uid, if given); False if it was already gone.
        `propagation` ("Background", "Foreground") matters for Jobs, whose pods the API
        otherwise orphans."""
        body: dict[str, Any] | None = None
        if uid or propagation:
            body = {"preconditions": {"uid": uid}} if uid else {}
            if propagation:
                body["propagationPolicy"] = propagation
        try:
            await self.request("DELETE", path, body=body)
        except ApiError as e:
            if e.status == NOT_FOUND:
                return False
            raise
        return True


def _resource(path: str) -> str:
    """The resource a path names: `pods`, `rayclusters/status`, ..."""
    parts = path.split("/")
    if "namespaces" in parts:
        rest = parts[parts.index("namespaces") + 2 :]
        return rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    return parts[-1]


def _api_error(status: int, text: str) -> ApiError:
    try:
        payload = json.loads(text)
    except ValueError:
        return ApiError(status, "", text[:500])
    return ApiError(status, str(payload.get("reason") or ""), str(payload.get("message") or ""))


def core_path(namespace: str, plural: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{quote(namespace)}/{plural}"
    return f"{base}/{quote(name)}" if name else base


def group_path(
    group: str, version: str, namespace: str, plural: str, name: str | None = None
) -> str:
    base = f"/apis/{group}/{version}/namespaces/{quote(namespace)}/{plural}"
    return f"{base}/{quote(name)}" if name else base


def object_path(obj: Mapping[str, Any], name: str | None = None) -> str:
    """Collection path (or the named object's) of a manifest, from its apiVersion and kind."""
    api_version = str(obj["apiVersion"])
    plural = str(obj["kind"]).lower() + "s"
    namespace = str(obj["metadata"]["namespace"])
    if "/" not in api_version:
        return core_path(namespace, plural, name)
    group, version = api_version.split("/", 1)
    return group_path(group, version, namespace, plural, name)
