"""Pure pieces of a RayJob's status: KubeRay's jobDeploymentStatus machine, one transition at a
time. The handler reads the world (the cluster, the submitter Job, Ray's job info) and passes
it in; nothing here does I/O.

    ""  -> Initializing -> Running -> Complete | Failed
    ""  -> Initializing -> Waiting (until spec.jobId names the job you submitted) -> Running
    Initializing | Running -> Retrying -> "" (a failure with backoffLimit retries left)
    Initializing | Running -> Suspending -> Suspended -> "" (when suspend is set back)
    any, spec invalid      -> ValidationFailed -> "" (once the spec is fixed)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from arenastack_operator.rayjob import spec as s
from arenastack_operator.rayjob.model import SUBMITTER_CONTAINER, Job

NEW: Final = ""
INITIALIZING: Final = "Initializing"
RUNNING: Final = "Running"
COMPLETE: Final = "Complete"
FAILED: Final = "Failed"
VALIDATION_FAILED: Final = "ValidationFailed"
SUSPENDING: Final = "Suspending"
SUSPENDED: Final = "Suspended"
RETRYING: Final = "Retrying"
WAITING: Final = "Waiting"
TERMINAL: Final = (COMPLETE, FAILED)

# Ray's job states.
JOB_NEW: Final = ""
JOB_SUCCEEDED: Final = "SUCCEEDED"
JOB_FAILED: Final = "FAILED"
JOB_STOPPED: Final = "STOPPED"
JOB_TERMINAL: Final = (JOB_SUCCEEDED, JOB_FAILED, JOB_STOPPED)

REASON_SUBMISSION_FAILED: Final = "SubmissionFailed"
REASON_DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
REASON_APP_FAILED: Final = "AppFailed"
REASON_VALIDATION_FAILED: Final = "ValidationFailed"

# Fields of the previous run cleared when a job is suspended (KubeRay clears the same).
_RUN_FIELDS: Final = (
    "rayClusterStatus", "rayClusterName", "dashboardURL", "jobId", "message", "reason",
    "rayJobInfo",
)  # fmt: skip


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_millis(value: Any) -> str | None:
    if not isinstance(value, int | float) or value <= 0:
        return None
    return rfc3339(datetime.fromtimestamp(value / 1000, UTC))


def phase(status: Mapping[str, Any]) -> str:
    return str(status.get("jobDeploymentStatus") or NEW)


def initial(job: Job, status: Mapping[str, Any], suffix: str, now: datetime) -> dict[str, Any]:
    """New -> Initializing: the job id and cluster name are chosen and written before anything
    is created, so an operator restarted at any moment finds the same ones."""
    new = dict(status)
    if job.mode != s.MODE_INTERACTIVE:  # there the job id comes with your submission
        new["jobId"] = status.get("jobId") or job.spec.job_id or f"{job.name}-{suffix}"
    new["rayClusterName"] = (
        status.get("rayClusterName") or job.selected_cluster or (f"{job.name}-{suffix}")
    )
    new["jobStatus"] = status.get("jobStatus") or JOB_NEW
    new["jobDeploymentStatus"] = INITIALIZING
    new["startTime"] = rfc3339(now)
    new["observedGeneration"] = job.generation
    return new


def deadline_passed(job: Job, status: Mapping[str, Any], now: datetime) -> bool:
    deadline = job.spec.active_deadline_seconds
    started = parse_time(status.get("startTime"))
    return (
        deadline is not None
        and started is not None
        and (now >= started + timedelta(seconds=deadline))
    )


def deadline_failure(job: Job, status: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return finish(
        status, FAILED, REASON_DEADLINE_EXCEEDED,
        f"The RayJob has passed the activeDeadlineSeconds. StartTime: {status.get('startTime')}. "
        f"ActiveDeadlineSeconds: {job.spec.active_deadline_seconds}",
        now,
    )  # fmt: skip


def finish(
    status: Mapping[str, Any], deployment: str, reason: str, message: str, now: datetime
) -> dict[str, Any]:
    """Into Complete or Failed: the end time is stamped and the outcome counted once."""
    new = dict(status)
    new["jobDeploymentStatus"] = deployment
    new["reason"] = reason or None
    new["message"] = message or None
    new["endTime"] = rfc3339(now)
    if deployment == FAILED:
        new["failed"] = int(status.get("failed") or 0) + 1
    elif new.get("jobStatus") == JOB_SUCCEEDED:
        new["succeeded"] = int(status.get("succeeded") or 0) + 1
    new.setdefault("failed", int(status.get("failed") or 0))
    new.setdefault("succeeded", int(status.get("succeeded") or 0))
    return new


def retry_if_allowed(job: Job, before: str, new: dict[str, Any]) -> dict[str, Any]:
    """A job that has just failed goes to Retrying instead while it has failed no more than
    backoffLimit times (KubeRay's rule; a passed deadline is final)."""
    if before == FAILED or phase(new) != FAILED or new.get("reason") == REASON_DEADLINE_EXCEEDED:
        return new
    if int(new.get("failed") or 0) >= (job.spec.backoff_limit or 0) + 1:
        return new
    return {**new, "jobDeploymentStatus": RETRYING}


def submitter_outcome(submitter: Mapping[str, Any] | None) -> tuple[bool, str | None, str | None]:
    """(finished, failure message or None, when it finished) of the submitter Job."""
    if submitter is None:
        return False, None, None
    for condition in (submitter.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Failed":
            message = (f"Job submission has failed. Reason: {condition.get('reason')}. "
                       f"Message: {condition.get('message')}")  # fmt: skip
            return True, message, condition.get("lastTransitionTime")
        if condition.get("type") == "Complete":
            return True, None, condition.get("lastTransitionTime")
    return False, None, None


def job_id_given(job: Job, status: Mapping[str, Any]) -> dict[str, Any]:
    """Waiting -> Running once spec.jobId names the job the user submitted (InteractiveMode)."""
    if not job.spec.job_id:
        return dict(status)
    return {**status, "jobId": job.spec.job_id, "jobDeploymentStatus": RUNNING}


def sidecar_outcome(head: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(finished, failure message or None) of the submitter container in the head pod
    (SidecarMode): `ray job submit` exits 0 once the job succeeded, else not."""
    for container in (head.get("status") or {}).get("containerStatuses") or []:
        if container.get("name") != SUBMITTER_CONTAINER:
            continue
        ended = (container.get("state") or {}).get("terminated")
        if ended is None:
            return False, None
        code = ended.get("exitCode")
        if code == 0:
            return True, None
        return True, (f"Ray head pod container {SUBMITTER_CONTAINER} terminated with exit code "
                      f"{code}: {ended.get('reason')}")  # fmt: skip
    return False, None


def with_job_info(
    status: Mapping[str, Any],
    info: Mapping[str, Any],
    cluster_status: Mapping[str, Any],
    submitter_finished: bool,
    now: datetime,
) -> dict[str, Any]:
    """What Ray says of the job, and Running -> Complete | Failed once it is terminal (and,
    with a submitter, once the submitter is done following its logs)."""
    new = dict(status)
    job_status = str(info.get("status") or JOB_NEW)
    new["jobStatus"] = job_status
    new["message"] = str(info.get("message") or "") or None
    times = {"startTime": from_millis(info.get("start_time")),
             "endTime": from_millis(info.get("end_time"))}  # fmt: skip
    new["rayJobInfo"] = {k: v for k, v in times.items() if v} or None
    new["rayClusterStatus"] = dict(cluster_status) or None
    if job_status in JOB_TERMINAL and submitter_finished:
        if job_status == JOB_FAILED:
            return finish(new, FAILED, REASON_APP_FAILED, new["message"] or "", now)
        return finish(new, COMPLETE, "", new["message"] or "", now)
    return new


def suspended(status: Mapping[str, Any]) -> dict[str, Any]:
    """Suspending -> Suspended once the cluster and submitter are gone: the run is forgotten."""
    new = {k: v for k, v in status.items() if k not in _RUN_FIELDS}
    new["jobStatus"] = JOB_NEW
    new["jobDeploymentStatus"] = SUSPENDED
    return new


def restarted(status: Mapping[str, Any]) -> dict[str, Any]:
    """Back to New (after a suspension, a retry's release or a fixed spec): the next
    reconcile starts afresh, with a new job id and cluster; the counts are kept."""
    new = {k: v for k, v in status.items() if k not in _RUN_FIELDS}
    new["jobStatus"] = JOB_NEW
    new["jobDeploymentStatus"] = NEW
    return new


def invalid(status: Mapping[str, Any], message: str) -> dict[str, Any]:
    new = dict(status)
    new["jobDeploymentStatus"] = VALIDATION_FAILED
    new["reason"] = REASON_VALIDATION_FAILED
    new["message"] = message
    return new


def shutdown_at(job: Job, status: Mapping[str, Any]) -> datetime | None:
    """When the cluster of a finished job goes (shutdownAfterJobFinishes), or None if never."""
    ended = parse_time(status.get("endTime"))
    if not job.shutdown_after_finish or ended is None:
        return None
    return ended + timedelta(seconds=job.spec.ttl_seconds_after_finished or 0)


def changed(previous: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    keys = set(previous) | set(new)
    return any(previous.get(k) != new.get(k) for k in keys)
