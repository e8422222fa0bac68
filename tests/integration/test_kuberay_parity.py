"""The differential tier: every RayCluster and RayJob sample of KubeRay's module, applied
unchanged to arenastack's operator (on the session's control plane) and to KubeRay's own
operator built from the same module (on a fresh control plane of its own), with the
objects each makes compared once both have settled.

Every difference is either fixed or listed, with its reason, in kuberay_parity_allowed.yaml;
an entry that no longer covers anything fails the tier too, so the list only shrinks.
Both sides run on simulated (kwok) nodes: what is compared is what the operators write,
which does not depend on the node.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import parity
import pytest
import yaml
from compat_data import KUBERAY_SAMPLES
from operator_runner import OperatorProcess, fresh_operator

from arenastack_cluster.cluster import REPO_ROOT, LocalCluster, toolchain_bin
from arenastack_cluster.processes import Process, free_port

pytestmark = pytest.mark.integration

ALLOWED = Path(__file__).with_name("kuberay_parity_allowed.yaml")
SAMPLE_GLOBS = ("ray-cluster.*.yaml", "ray-job.*.yaml")
# The kinds of the samples' own documents that each side is given (a sample may also
# carry a Deployment or a Secret for its cluster; those are applied but not compared).
OWNER_KINDS = ("RayCluster", "RayJob")
# A snapshot unchanged over this many polls counts as settled.
SETTLED_POLLS = 3
POLL_S = 4
SETTLE_TIMEOUT_S = 300


def samples() -> list[Path]:
    found = sorted({p for g in SAMPLE_GLOBS for p in KUBERAY_SAMPLES.glob(g)})
    if not found:
        pytest.fail(f"no KubeRay samples in {KUBERAY_SAMPLES}: run `make toolchain`", pytrace=False)
    return found


@pytest.fixture(scope="module")
def kuberay_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A fresh control plane with KubeRay's CRDs and KubeRay's operator, at its defaults."""
    binary = toolchain_bin(part="anchors") / "kuberay-operator"
    state = REPO_ROOT / ".state" / f"kuberay-parity-{time.monotonic_ns()}"
    cl = LocalCluster(state=state)
    cl.up(log=lambda line: print(line, flush=True))
    work = tmp_path_factory.mktemp("kuberay")
    operator = Process(work, "kuberay-operator")
    try:
        cl.apply_crds(sorted((binary.parent.parent / "kuberay-crds").glob("*.yaml")))
        operator.start(
            [
                str(binary),
                f"--kubeconfig={cl.kubeconfig}",
                f"--metrics-addr=127.0.0.1:{free_port()}",
                f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                "--leader-election-namespace=default",
            ]
        )
        yield cl
    finally:
        operator.stop()
        cl.down(quiet=True)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def ours(
    cluster, crds, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with fresh_operator(
        cluster, operator_kubeconfig, tmp_path_factory.mktemp("parity-operator")
    ) as op:
        yield op


def _apply(cl: LocalCluster, namespace: str, sample: Path) -> None:
    cl.kubectl("create", "namespace", namespace)
    # Applied unchanged; a document either side's schema refuses is a difference too,
    # which the object listing shows.
    cl.kubectl("apply", "-n", namespace, "-f", str(sample), check=False)


def _list(cl: LocalCluster, namespace: str, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    out = cl.kubectl("get", ",".join(kinds), "-n", namespace, "-o", "json", check=False)
    return json.loads(out.stdout or '{"items": []}').get("items", [])


def _ours_or_cluster(obj: dict[str, Any]) -> bool:
    """An object an operator made for a sample: owned by one of its RayClusters or RayJobs,
    or labelled with a Ray cluster's name."""
    meta = obj["metadata"]
    owned = any(o.get("kind") in OWNER_KINDS for o in meta.get("ownerReferences") or [])
    return owned or parity.CLUSTER_LABEL in (meta.get("labels") or {})


def _snapshot(cl: LocalCluster, namespace: str) -> dict[str, Any]:
    children = [o for o in _list(cl, namespace, parity.CHILD_KINDS) if _ours_or_cluster(o)]
    owners = _list(cl, namespace, ("rayclusters.ray.io", "rayjobs.ray.io"))
    return parity.snapshot(children, owners)


def _settle(sides: dict[str, LocalCluster], spaces: dict[str, str]) -> dict[str, dict]:
    """Poll every namespace on both sides until no snapshot changes for SETTLED_POLLS polls."""
    last: dict[tuple[str, str], dict] = {}
    quiet = 0
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while quiet < SETTLED_POLLS and time.monotonic() < deadline:
        time.sleep(POLL_S)
        now = {
            (side, ns): _snapshot(cl, ns) for side, cl in sides.items() for ns in spaces.values()
        }
        quiet = quiet + 1 if now == last else 0
        last = now
    return {sample: {side: last[(side, ns)] for side in sides} for sample, ns in spaces.items()}


def test_every_sample_makes_what_kuberay_makes(cluster, ours, kuberay_cluster) -> None:
    sides = {"arenastack": cluster, "kuberay": kuberay_cluster}
    spaces = {sample.name: f"parity-{i}" for i, sample in enumerate(samples())}
    by_name = {sample.name: sample for sample in samples()}
    for name, ns in spaces.items():
        for cl in sides.values():
            _apply(cl, ns, by_name[name])
    try:
        settled = _settle(sides, spaces)
    finally:
        for ns in spaces.values():
            for cl in sides.values():
                cl.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    found = [
        d
        for name, pair in settled.items()
        for d in parity.differences(name, pair["arenastack"], pair["kuberay"])
    ]
    left, stale = parity.unexplained(found, parity.load_allowed(ALLOWED))
    report = REPO_ROOT / ".state" / "kuberay-parity.txt"
    report.write_text("\n".join(str(d) for d in found) + "\n")
    assert ours.proc.poll() is None, f"our operator exited:\n{ours.output()[-3000:]}"
    assert not left and not stale, (
        f"{len(left)} differences from KubeRay are neither fixed nor allowed in {ALLOWED.name}"
        f" (all {len(found)} in {report}):\n"
        + "\n".join(str(d) for d in left[:80])
        + ("\nallowed entries that cover nothing:\n" + yaml.safe_dump([r.__dict__ for r in stale]))
        * bool(stale)
    )
