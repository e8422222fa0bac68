"""Fixtures shared by every test tier.

Integration tests get one real control plane per test session (started on
first use, stopped and removed at the end unless ARENASTACK_KEEP_CLUSTER=1), a fresh
namespace per test, the project's CRDs, and a kubeconfig that carries the
token of the chart's operator ServiceAccount, so every test that runs the
operator runs it under the chart's RBAC and never as cluster admin.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from arenastack_cluster.cluster import CHART_DIR, REPO_ROOT, LocalCluster
from arenastack_cluster.node.profile import GPUS_ENV

CHART = CHART_DIR
CRD_DIR = CHART / "crds"
# The release the fixtures install (RBAC and ServiceAccount only); separate from
# whatever release a test installs itself.
FIXTURE_RELEASE = "arenastack-it"
FIXTURE_NAMESPACE = "arenastack-it"


class TestCluster(LocalCluster):
    """The session's kwok-profile cluster."""

    __test__ = False  # not a test class, despite the name


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


# -- the local profile: a node that runs pods ------------------------------------------------

LOCAL_NODE_GPUS = 2


def claim_local_slot(octet: int = 246) -> tuple[int, int]:
    """A pod range (10.<octet>.<slot>.0/24) and state folder no other test session holds:
    sessions running at the same time would otherwise share, and stop, one node. The lock
    lasts as long as the session's process."""
    for slot in range(100, 120):  # a demo's node uses 10.244.0.0/24
        if Path(f"/run/netns/asnode-{octet}x{slot}").exists():
            continue  # a node some other cluster runs on this range
        fd = os.open(f"/run/arenastack-node-test-{octet}-{slot}.lock", os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return slot, fd
        except BlockingIOError:
            os.close(fd)
    raise RuntimeError("every local-node test slot is taken by another test session")


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    """The session's local-profile cluster for the end-to-end tests: the real node (the
    upstream kubelet, containerd and runc running the project's images), on a slot of its
    own."""
    os.environ[GPUS_ENV] = str(LOCAL_NODE_GPUS)
    slot, lock = claim_local_slot()
    cl = LocalCluster(
        state=REPO_ROOT / ".state" / f"test-kubeletnode-{slot}",
        profile="local",
        pod_cidr=f"10.246.{slot}.0/24",
    )
    try:
        cl.up(log=lambda line: print(line, flush=True))
    except BaseException:
        # A node that failed half-way (a full disk during an image import, say) must not
        # leave its control plane running for the rest of the session.
        cl.down(quiet=True)
        os.close(lock)
        raise
    yield cl
    if os.environ.get("ARENASTACK_KEEP_CLUSTER") != "1":
        cl.down(quiet=True)
        # The node's image store holds every image unpacked (about 7 GB): a run must
        # not leave that behind in each clone it ran in.
        shutil.rmtree(cl.state, ignore_errors=True)
    os.close(lock)
