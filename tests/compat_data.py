"""The reference data of the RayCluster tests: KubeRay's public RayCluster samples and the
corpus of invalid RayClusters. Imported by unit and integration tests alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from arenastack_cluster.cluster import REPO_ROOT, toolchain_bin

# KubeRay's sample manifests (ray-operator/config/samples/ of its Go module at the pinned
# KUBERAY_VERSION), put beside the toolchain's bin folder by `hack/toolchain.sh samples`
# (part of `make setup` and `make toolchain`); never copied into this repository.
KUBERAY_SAMPLES = toolchain_bin(build=False).parent / "kuberay-samples"
# The compat corpus: the samples with one RayCluster each that the builders' golden files
# (tests/unit/golden/raycluster/) and the real-apiserver tests cover.
COMPAT_SAMPLES = (
    "ray-cluster.autoscaler-v2.yaml",
    "ray-cluster.autoscaler.yaml",
    "ray-cluster.complete.yaml",
    "ray-cluster.external-redis.yaml",
    "ray-cluster.head-command.yaml",
    "ray-cluster.sample.yaml",
)
INVALID_RAYCLUSTERS = REPO_ROOT / "tests" / "integration" / "invalid_rayclusters"


def compat_manifests() -> list[Path]:
    """The corpus, whether fetched or not: the test of a missing sample fails
    (`require_sample`) rather than vanishing from the run."""
    return [KUBERAY_SAMPLES / name for name in COMPAT_SAMPLES]


def require_sample(path: Path) -> Path:
    """`path` when it exists; else fails the test, naming what fetches the samples."""
    if not path.is_file():
        pytest.fail(
            f"KubeRay's sample {path.name} is missing from {path.parent}: "
            "run `make toolchain` (or `hack/toolchain.sh samples`)",
            pytrace=False,
        )
    return path


def kuberay_sample(name: str) -> Path:
    return require_sample(KUBERAY_SAMPLES / name)


def require_compat_manifests() -> list[Path]:
    return [require_sample(path) for path in compat_manifests()]


def compat_rayclusters() -> list[tuple[Path, int]]:
    """(sample, index of a RayCluster in it) for the corpus; a missing sample counts once."""
    return [
        (path, index)
        for path in compat_manifests()
        for index in range(len(rayclusters_in(path)) if path.is_file() else 1)
    ]


def rayclusters_in(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "RayCluster"]


def invalid_cases() -> list[Path]:
    return sorted(INVALID_RAYCLUSTERS.glob("*.yaml"))


def expectation(path: Path) -> tuple[str, str]:
    """The `# path:` and `# message:` fragments from an invalid manifest's header."""
    header: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].strip().partition(": ")
        header[key] = value
    return header["path"], header["message"]
