"""Fixtures shared by every test tier.

Integration tests get one real control plane per test session (started on
first use, stopped and removed at the end unless ARENASTACK_KEEP_CLUSTER=1), a fresh
namespace per test, the project's CRDs, and a kubeconfig that carries the
token of the chart's operator ServiceAccount, so every test that runs the
operator runs it under the chart's RBAC and never as cluster admin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from arenastack_cluster.cluster import CHART_DIR, REPO_ROOT, LocalCluster

CHART = CHART_DIR
CRD_DIR = CHART / "crds"
# The release the fixtures install (RBAC and ServiceAccount only); separate from
# whatever release a test installs itself.
FIXTURE_RELEASE = "arenastack-it"
FIXTURE_NAMESPACE = "arenastack-it"


class TestCluster(LocalCluster):
    """The session's cluster plus helpers for helm."""

    __test__ = False  # not a test class, despite the name

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bin / "helm"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={
                **os.environ,
                "HELM_CACHE_HOME": str(self.state / "helm" / "cache"),
                "HELM_CONFIG_HOME": str(self.state / "helm" / "config"),
                "HELM_DATA_HOME": str(self.state / "helm" / "data"),
            },
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def cluster() -> Iterator[TestCluster]:
    keep = os.environ.get("ARENASTACK_KEEP_CLUSTER") == "1"
    # A cluster of its own for each test run (about 10 s to start), so runs never
    # share state; ARENASTACK_KEEP_CLUSTER=1 keeps and reuses one between runs.
    name = "test-cluster" if keep else f"test-cluster-{os.getpid()}"
    cl = TestCluster(state=REPO_ROOT / ".state" / name)
    cl.up(log=lambda line: print(line, flush=True))
    yield cl
    if not keep:
        cl.down(quiet=True)
        shutil.rmtree(cl.state, ignore_errors=True)


@pytest.fixture(scope="session")
def crds(cluster: TestCluster) -> list[str]:
    files = sorted(CRD_DIR.glob("*.yaml"))
    assert files, f"no CRDs in {CRD_DIR}; run `make crds`"
    return cluster.apply_crds(files)


@pytest.fixture
def namespace(cluster: TestCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def chart_rbac(cluster: TestCluster, crds: list[str]) -> str:
    """Install the chart with no operator replicas: its ServiceAccount and RBAC only.
    Returns the ServiceAccount name."""
    cluster.helm(
        "upgrade",
        "--install",
        FIXTURE_RELEASE,
        str(CHART),
        "--namespace",
        FIXTURE_NAMESPACE,
        "--create-namespace",
        "--set",
        "operator.replicas=0",
        "--wait",
    )
    return f"{FIXTURE_RELEASE}-operator"


@pytest.fixture(scope="session")
def operator_kubeconfig(
    cluster: TestCluster, chart_rbac: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    return cluster.service_account_kubeconfig(FIXTURE_NAMESPACE, chart_rbac, path)
