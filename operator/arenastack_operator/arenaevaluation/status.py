"""The status of an ArenaEvaluation from what was observed: pure, so it is unit-tested.

The operator owns the phase, the run and its Job, times and conditions; the runner writes its
progress, the judge board and the judge's report (RUNNER_FIELDS) with its own narrow rights.
A new run drops what the runner wrote for the previous one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from arenastack_operator import constants
from arenastack_operator.arenaevaluation import spec as s
from arenastack_operator.conditions import set_condition
from arenastack_operator.metrics import Family, Sample, samples_of

RUNNER_FIELDS: Final = ("progress", "ranking", "judge", "results", "leader")

REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_ARENA_NOT_CONFIGURED: Final = "ArenaNotConfigured"
REASON_CONTESTANT_NOT_FOUND: Final = "ContestantNotFound"
REASON_CONTESTANT_NOT_READY: Final = "ContestantNotReady"
REASON_JUDGE_NOT_READY: Final = "JudgeNotReady"
REASON_CREATING: Final = "CreatingRun"
REASON_RUNNING: Final = "Running"
REASON_SUSPENDED: Final = "Suspended"
REASON_SUCCEEDED: Final = "Succeeded"
REASON_JOB_FAILED: Final = "JobFailed"
REASON_VERDICT_PARSE_ERRORS: Final = "VerdictParseErrors"
REASON_BATTLE_ERRORS: Final = "BattleErrors"
REASON_HEALTHY: Final = "AsExpected"

MESSAGE_MAX: Final = 512
_ACTIVE_PHASES: Final = (s.PHASE_PENDING, s.PHASE_WAITING, s.PHASE_RUNNING)


@dataclass(frozen=True)
class Problem:
    """Why the run cannot start (yet): a reason of the constants above and a message."""

    reason: str
    message: str
    phase: str = s.PHASE_FAILED


def waiting(not_ready: Sequence[str], judge_not_ready: bool) -> Problem:
    reason = REASON_JUDGE_NOT_READY if judge_not_ready else REASON_CONTESTANT_NOT_READY
    return Problem(reason, "waiting for " + ", ".join(not_ready) + " to be Ready", s.PHASE_WAITING)


def _job_condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return condition
    return None


def job_phase(job: Mapping[str, Any]) -> tuple[str, str, str]:
    """(phase, reason, message) of a run from its Job, as the Job controller reports it."""
    if (done := _job_condition(job, "Complete")) is not None:
        return s.PHASE_SUCCEEDED, REASON_SUCCEEDED, done.get("message") or "the run finished"
    if (failed := _job_condition(job, "Failed")) is not None:
        reason = failed.get("reason") or REASON_JOB_FAILED
        return s.PHASE_FAILED, reason, failed.get("message") or "the runner Job failed"
    if (job.get("spec") or {}).get("suspend"):
        return s.PHASE_SUSPENDED, REASON_SUSPENDED, "spec.suspend is true: the run is stopped"
    active = int((job.get("status") or {}).get("active") or 0)
    message = "the runner is running" if active else "the runner is starting"
    return s.PHASE_RUNNING, REASON_RUNNING, message


def termination_message(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The newest termination message of a run's runner pods (Kubernetes keeps what the
    container wrote to /dev/termination-log)."""
    found: list[tuple[str, str]] = []
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            if terminated.get("message"):
                found.append((terminated.get("finishedAt") or "", terminated["message"].strip()))
    return max(found)[1][:MESSAGE_MAX] if found else None


def build_status(
    *,
    previous: Mapping[str, Any],
    generation: int,
    run: int,
    judge_name: str | None,
    job_name: str | None,
    job: Mapping[str, Any] | None,
    problem: Problem | None,
    waiting_for: Sequence[str] = (),
    runner_message: str | None = None,
    now: str,
) -> dict[str, Any]:
    """`runner_message`: the last words of a failed run's runner (its termination message)."""
    same_run = previous.get("run") == run
    status: dict[str, Any] = {
        k: previous[k] for k in RUNNER_FIELDS if same_run and previous.get(k) is not None
    }
    status["run"] = run
    status["observedGeneration"] = generation
    if judge_name:
        status["judgeName"] = judge_name
    if job_name and job is not None:
        status["jobName"] = job_name
        phase, reason, message = job_phase(job)
        job_status = job.get("status") or {}
        if job_status.get("startTime"):
            status["startTime"] = job_status["startTime"]
        if phase == s.PHASE_FAILED and runner_message:
            message = f"{message}; the runner said: {runner_message}"
        if phase in (s.PHASE_SUCCEEDED, s.PHASE_FAILED):
            status["completionTime"] = (
                job_status.get("completionTime")
                or (previous.get("completionTime") if same_run else None)
                or now
            )
    elif problem is not None:
        phase, reason, message = problem.phase, problem.reason, problem.message
    else:
        phase, reason, message = s.PHASE_PENDING, REASON_CREATING, "creating the runner Job"
    if waiting_for:
        status["waitingFor"] = list(waiting_for)
    status.update(phase=phase, reason=reason, message=message)
    status["conditions"] = _conditions(previous, status, generation, now)
    return status


def _conditions(
    previous: Mapping[str, Any], status: Mapping[str, Any], generation: int, now: str
) -> list[dict[str, Any]]:
    phase, reason, message = status["phase"], status["reason"], status["message"]
    conditions = list(previous.get("conditions") or [])

    def put(type_: str, value: bool, why: str, text: str) -> None:
        nonlocal conditions
        conditions = set_condition(conditions, type_, value, why, text,
                                   generation=generation, now=now)  # fmt: skip

    succeeded = phase == s.PHASE_SUCCEEDED
    put(constants.CONDITION_READY, succeeded, reason, message)
    put(constants.CONDITION_PROGRESSING, phase in _ACTIVE_PHASES, reason, message)
    degraded = _degradation(status)
    put(constants.CONDITION_DEGRADED, degraded is not None, *(degraded or (REASON_HEALTHY, "")))
    return conditions


def _degradation(status: Mapping[str, Any]) -> tuple[str, str] | None:
    phase, reason, message = status["phase"], status["reason"], status["message"]
    if phase in (s.PHASE_FAILED, s.PHASE_WAITING):
        return reason, message
    progress = status.get("progress") or {}
    if progress.get("parseErrors"):
        return REASON_VERDICT_PARSE_ERRORS, (
            f"{progress['parseErrors']} judgments had no verdict that could be parsed"
        )
    if progress.get("errors"):
        return REASON_BATTLE_ERRORS, f"{progress['errors']} battles failed"
    return None


# -- gauges from the object ---------------------------------------------------------------------

BATTLES: Final = Family(
    "arenaevaluation_battles",
    "Battles of the current run by state: planned, answered, judged, errors, parseErrors.",
    ("state",),
)
POSITION_CONSISTENCY: Final = Family(
    "arenaevaluation_judge_position_consistency",
    "Share of battles whose verdicts in both answer orders agree.",
)
HUMAN_AGREEMENT: Final = Family(
    "arenaevaluation_judge_human_agreement",
    "Share of battles where the judge and the human vote agree, ties counted or not (ties).",
    ("ties",),
)
RATING: Final = Family(
    "arenaevaluation_rating",
    "A contestant's Bradley-Terry rating on the judge board and its 95% interval (bound).",
    ("contestant", "bound"),
)
PROGRESS_STATES: Final = ("planned", "answered", "judged", "errors", "parseErrors")


def series(body: Mapping[str, Any]) -> list[Sample]:
    status = body.get("status") or {}
    progress = status.get("progress") or {}
    judge = status.get("judge") or {}
    agreement = judge.get("humanAgreement") or {}
    out = samples_of(BATTLES, [((state,), progress.get(state)) for state in PROGRESS_STATES])
    out += samples_of(POSITION_CONSISTENCY, [((), judge.get("positionConsistency"))])
    out += samples_of(
        HUMAN_AGREEMENT,
        [(("with",), agreement.get("withTies")), (("without",), agreement.get("withoutTies"))],
    )
    for standing in status.get("ranking") or []:
        name = str(standing.get("name"))
        out += samples_of(
            RATING,
            [
                ((name, "rating"), standing.get("rating")),
                ((name, "lower"), standing.get("ciLower")),
                ((name, "upper"), standing.get("ciUpper")),
            ],
        )
    return out
