"""A small Kubernetes REST client on plain dicts (the API's own camelCase JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import yaml


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class Kube:
    """Talks to the apiserver named in a kubeconfig with client-certificate auth."""

    def __init__(self, kubeconfig: Path) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        ctx_name = cfg["current-context"]
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        self.server = cluster["server"].rstrip("/")
        self.ca = cluster["certificate-authority"]
        self.session = requests.Session()
        # REQUESTS_CA_BUNDLE and proxy variables would override the cluster's own CA
        # and send local traffic elsewhere.
        self.session.trust_env = False
        self.session.verify = self.ca
        if "client-certificate" in user:
            self.session.cert = (user["client-certificate"], user["client-key"])
        elif "token" in user:
            self.session.headers["Authorization"] = f"Bearer {user['token']}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> dict:
        resp = self.session.request(
            method,
            self.server + path,
            data=None if body is None else json.dumps(body),
            params=params,
            headers={"Content-Type": content_type},
            timeout=timeout,
        )
        if resp.status_code >= 400:
            try:
                msg = resp.json().get("message", resp.text)
            except ValueError:
                msg = resp.text
            raise ApiError(resp.status_code, msg)
        return resp.json() if resp.content else {}

    def get(self, path: str, **params: str) -> dict:
        return self.request("GET", path, params=params or None)

    def get_or_none(self, path: str) -> dict | None:
        try:
            return self.get(path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def create(self, path: str, body: dict) -> dict:
        return self.request("POST", path, body)

    def put(self, path: str, body: dict) -> dict:
        return self.request("PUT", path, body)

    def merge_patch(self, path: str, body: dict) -> dict:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def strategic_patch(self, path: str, body: dict) -> dict:
        return self.request(
            "PATCH", path, body, content_type="application/strategic-merge-patch+json"
        )

    def delete(self, path: str, body: dict | None = None) -> dict:
        return self.request("DELETE", path, body)

    def watch(self, path: str, resource_version: str, **params: str) -> Iterator[dict]:
        """Yields watch events until the server ends the stream (then the caller relists)."""
        query = {
            **params,
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        with self.session.get(
            self.server + path, params=query, stream=True, timeout=(10, 330)
        ) as resp:
            if resp.status_code >= 400:
                raise ApiError(resp.status_code, resp.text)
            for line in resp.iter_lines():
                if line:
                    yield json.loads(line)
