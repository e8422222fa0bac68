"""Where the shared reference data lives: KubeRay's public RayCluster samples and the
corpus of invalid RayClusters. Imported by unit and integration tests alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
# The shared folder sits beside the repository; ARENASTACK_SHARED overrides it.
SHARED = Path(os.environ.get("ARENASTACK_SHARED", REPO_ROOT.parent / "shared"))
KUBERAY_COMPAT = SHARED / "compat" / "kuberay"
INVALID_RAYCLUSTERS = REPO_ROOT / "tests" / "integration" / "invalid_rayclusters"


def compat_manifests() -> list[Path]:
    """The samples; empty when the shared folder is missing, which
    `require_compat_manifests` turns into a failure (collection must not crash)."""
    return sorted(KUBERAY_COMPAT.glob("*.yaml"))


def require_compat_manifests() -> list[Path]:
    files = compat_manifests()
    if not files:
        pytest.fail(
            f"no KubeRay samples in {KUBERAY_COMPAT}; set ARENASTACK_SHARED to the shared folder",
            pytrace=False,
        )
    return files


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
