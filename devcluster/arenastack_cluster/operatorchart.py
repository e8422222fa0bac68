"""The chart installed as a user would, so the operator runs as its Deployment's pod."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from arenastack_cluster.cluster import CHART_DIR

if TYPE_CHECKING:
    from arenastack_cluster.cluster import LocalCluster

RELEASE: Final = "arenastack"
NAMESPACE: Final = "arenastack-system"


@contextmanager
def operator_installed(cluster: LocalCluster, timeout_s: int = 180) -> Iterator[None]:
    """`helm upgrade --install` the chart (waiting for its operator pod), uninstall after."""
    cluster.helm(
        "upgrade", "--install", RELEASE, str(CHART_DIR), "-n", NAMESPACE, "--create-namespace",
        "--wait", "--timeout", f"{timeout_s}s",
    )  # fmt: skip
    try:
        yield
    finally:
        cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
