"""Helpers shared by the benchmarks: result paths, machine and version stamps, timing."""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import subprocess
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[2]


def today() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()


def machine() -> str:
    mem_kib = int(
        next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1]
    )
    return f"{os.cpu_count()} cores, {mem_kib / 2**20:.0f} GiB"


def git_sha() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_average() -> float:
    """1-minute load average: on a shared 2-core machine, context for every figure."""
    return round(os.getloadavg()[0], 2)


def quick_run(description: str, prefix: str) -> tuple[bool, Path, Path]:
    """Parses `--quick` (a small run that checks the script); returns whether it was given, a
    fresh work folder, and where results go: the work folder for a quick run, whose figures
    are no result, else RESULTS."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small run to check the script (results go to a temporary folder)",
    )
    quick = parser.parse_args().quick
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    return quick, workdir, workdir if quick else RESULTS
