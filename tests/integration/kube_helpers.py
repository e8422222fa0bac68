"""Polling and reading helpers shared by the integration tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from arenastack_cluster.processes import poll

TIMEOUT_S = 60.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = TIMEOUT_S) -> Any:
    """Poll `check` until it returns something truthy and return that; fail naming `what`."""
    return poll(what, check, timeout, period=0.3)


def get(cluster, kind: str, namespace: str, name: str | None = None, selector: str | None = None):
    """One object (by name) or a list of items, or None when the apiserver has none."""
    args = ["get", kind, "-n", namespace, "-o", "json"]
    if name:
        args.insert(2, name)
    if selector:
        args += ["-l", selector]
    proc = cluster.kubectl(*args, check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout)
    return data["items"] if name is None else data
