"""Labels, paths and child object names of an ArenaEvaluation: defined once here."""

from __future__ import annotations

import hashlib
from typing import Final

from arenastack_operator import constants

# Children carry the evaluation's name and the run (the generation it evaluates).
LABEL_EVALUATION: Final = f"{constants.GROUP}/arenaevaluation"
LABEL_RUN: Final = f"{constants.GROUP}/run"
# On a run's Job: the hash of the spec it evaluates, suspend left out (suspending pauses a run,
# any other change starts a new one).
ANNOTATION_RUN_HASH: Final = f"{constants.GROUP}/run-spec-hash"
COMPONENT_RUNNER: Final = "evaluation-runner"

RUNNER_CONTAINER: Final = "runner"
RUNNER_MODULE: Final = "arenastack_arena.evaluation"
CONFIG_MOUNT: Final = "/etc/arenastack/run"
CONFIG_FILE: Final = "run.json"
PROMPTS_MOUNT: Final = "/etc/arenastack/prompts"
TEMPLATE_MOUNT: Final = "/etc/arenastack/template"
VOLUME_FILE_MOUNT: Final = "/data/prompts"
SCRATCH_MOUNT: Final = "/tmp"
# Environment variables of the runner holding secrets (the config names them, never the values).
ENV_ARENA_TOKEN: Final = "ARENA_JUDGE_TOKEN"
ENV_KEY_PREFIX: Final = "ARENASTACK_API_KEY_"

# Where the arena service exports one evaluation's battles.
ARENA_EXPORT_PATH: Final = "/api/evaluations/{evaluation}/battles.jsonl"
JUDGE_SOURCE_PREFIX: Final = "judge:"

MAX_NAME: Final = 63  # Job names become pod label values


def _bounded(name: str, suffix: str) -> str:
    """`name` + `suffix`, shortened with a hash of the whole when it would pass 63 characters."""
    whole = f"{name}{suffix}"
    if len(whole) <= MAX_NAME:
        return whole
    digest = hashlib.sha256(whole.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - len(suffix) - 9].rstrip('-.')}-{digest}{suffix}"


def runner_name(evaluation: str) -> str:
    """ServiceAccount, Role and RoleBinding of the evaluation's runs."""
    return _bounded(evaluation, "-runner")


def run_name(evaluation: str, run: int) -> str:
    """The Job and the ConfigMap of one run."""
    return _bounded(evaluation, f"-run-{run}")


def judge_source(model: str) -> str:
    return f"{JUDGE_SOURCE_PREFIX}{model}"
