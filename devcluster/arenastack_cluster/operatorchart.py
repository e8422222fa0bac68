"""The chart installed as a user would, so the operator runs as its Deployment's pod."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from arenastack_cluster.cluster import CHART_DIR

if TYPE_CHECKING:
    from arenastack_cluster.cluster import LocalCluster

RELEASE: Final = "arenastack"
NAMESPACE: Final = "arenastack-system"
OPERATOR_SELECTOR: Final = "app.kubernetes.io/component=operator"


@contextmanager
def operator_installed(
    cluster: LocalCluster,
    timeout_s: int = 180,
    env: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """`helm upgrade --install` the chart (waiting for its operator pod), uninstall after;
    `env`: the operator's further ARENASTACK_* settings (the chart's operator.env); `values`:
    further chart values by their dotted names."""
    chosen = {**(values or {}), **{f"operator.env.{k}": v for k, v in (env or {}).items()}}
    settings = [f"--set-string={name}={value}" for name, value in chosen.items()]
    cluster.helm(
        "upgrade", "--install", RELEASE, str(CHART_DIR), "-n", NAMESPACE, "--create-namespace",
        *settings, "--wait", "--timeout", f"{timeout_s}s",
    )  # fmt: skip
    try:
        yield
    finally:
        cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)


def operator_log(cluster: LocalCluster, namespace: str = NAMESPACE) -> str:
    """What the chart's operator pods in `namespace` have logged so far."""
    return cluster.kubectl("logs", "-n", namespace, "-l", OPERATOR_SELECTOR, "--tail=-1",
                           "--prefix", check=False).stdout  # fmt: skip
