"""Helpers shared by the benchmarks: result paths, machine and version stamps, timing."""

from __future__ import annotations

import datetime
import os
import resource
import subprocess
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
