"""The runner's fatal errors, each with the exit code the Job's backoff acts on.

Anything else that goes wrong with one battle (a failed answer, a judge reply that never
parses, a body the arena refuses) is counted and reported, never fatal: the run finishes.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3


class RunnerError(Exception):
    """A reason to stop the whole run; ``exit_code`` is what the process exits with."""

    exit_code = 1


class ConfigError(RunnerError):
    """A bad run.json, prompt file, template or credential, naming the field."""

    exit_code = EXIT_CONFIG


class Unreachable(RunnerError):
    """The judge or the arena did not answer at all after retries: the Job retries (resumes)."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what} unreachable: {detail}")
        self.what = what
