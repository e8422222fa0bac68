"""Polling and reading helpers shared by the integration tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

TIMEOUT_S = 60.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = TIMEOUT_S) -> Any:
    """Poll `check` until it returns something truthy and return that; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


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
