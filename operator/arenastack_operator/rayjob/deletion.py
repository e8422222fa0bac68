"""spec.deletionStrategy: what goes once a RayJob has finished, and when (no I/O).

KubeRay's two forms: deletionRules (each a policy, a terminal Ray job status and a delay after
the end), or the legacy pair onSuccess/onFailure (delayed by ttlSecondsAfterFinished). KubeRay
keeps both behind its RayJobDeletionPolicy feature gate; here they are always on, with its
checks. Policies, from least to most: DeleteNone, DeleteWorkers (every worker group
suspended), DeleteCluster (the job's RayCluster), DeleteSelf (the RayJob, and with it
everything it owns).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from arenastack_operator.rayjob.model import InvalidSpec, Job

DELETE_NONE: Final = "DeleteNone"
DELETE_WORKERS: Final = "DeleteWorkers"
DELETE_CLUSTER: Final = "DeleteCluster"
DELETE_SELF: Final = "DeleteSelf"
# Which of several due policies to carry out: the one that removes the most.
IMPACT: Final = {DELETE_NONE: 1, DELETE_WORKERS: 2, DELETE_CLUSTER: 3, DELETE_SELF: 4}
# TTLs must not decrease along this order (workers go no later than the cluster, and so on).
_TTL_ORDER: Final = (DELETE_WORKERS, DELETE_CLUSTER, DELETE_SELF)


@dataclass(frozen=True)
class Rule:
    policy: str
    job_status: str
    ttl_seconds: int


def rules(job: Job) -> list[Rule]:
    """The strategy as rules: the legacy pair becomes one rule per outcome."""
    strategy = job.spec.deletion_strategy
    if strategy is None:
        return []
    if strategy.deletion_rules:
        return [Rule(r.policy, r.condition.job_status, r.condition.ttl_seconds or 0)
                for r in strategy.deletion_rules]  # fmt: skip
    ttl = job.spec.ttl_seconds_after_finished or 0
    legacy = (("SUCCEEDED", strategy.on_success), ("FAILED", strategy.on_failure))
    return [Rule(p.policy, status, ttl) for status, p in legacy if p is not None and p.policy]


def validate(job: Job) -> None:
    """KubeRay's checks of a deletionStrategy (ValidateRayJobSpec), with its wording."""
    strategy = job.spec.deletion_strategy
    if strategy is None:
        return
    spec = job.spec
    selector = job.uses_existing_cluster
    cluster = spec.ray_cluster_spec
    autoscaling = cluster is not None and bool(cluster.enable_in_tree_autoscaling)
    if strategy.deletion_rules:
        if spec.shutdown_after_job_finishes:
            raise InvalidSpec("spec.shutdownAfterJobFinishes and spec.deletionStrategy."
                              "deletionRules are mutually exclusive")  # fmt: skip
        _validate_rules(rules(job), selector, autoscaling)
        return
    if strategy.on_success is None or strategy.on_failure is None:
        raise InvalidSpec("spec.deletionStrategy: both onSuccess and onFailure must be set when "
                          "using the legacy deletion policy fields")  # fmt: skip
    for name, policy in (("onSuccess", strategy.on_success.policy),
                         ("onFailure", strategy.on_failure.policy)):  # fmt: skip
        if policy is None:
            raise InvalidSpec(f"spec.deletionStrategy.{name}.policy must be set")
        if selector and policy in (DELETE_CLUSTER, DELETE_WORKERS):
            raise InvalidSpec(f"spec.deletionStrategy.{name}.policy: the clusterSelector mode "
                              f"doesn't support {policy}")  # fmt: skip
        if autoscaling and policy == DELETE_WORKERS:
            raise InvalidSpec(f"spec.deletionStrategy.{name}.policy: DeleteWorkers does not "
                              "support a RayCluster with autoscaling enabled")  # fmt: skip
        if spec.shutdown_after_job_finishes and policy == DELETE_NONE:
            raise InvalidSpec(f"spec.deletionStrategy.{name}.policy is DeleteNone while "
                              "shutdownAfterJobFinishes is true")  # fmt: skip


def _validate_rules(found: list[Rule], selector: bool, autoscaling: bool) -> None:
    errors: list[str] = []
    ttls: dict[str, dict[str, int]] = {}
    for i, rule in enumerate(found):
        where = f"spec.deletionStrategy.deletionRules[{i}]"
        if selector and rule.policy in (DELETE_CLUSTER, DELETE_WORKERS):
            errors.append(f"{where}: {rule.policy} is not supported when clusterSelector is set")
            continue
        if autoscaling and rule.policy == DELETE_WORKERS:
            errors.append(f"{where}: DeleteWorkers is not supported with autoscaling enabled")
            continue
        by_policy = ttls.setdefault(rule.job_status, {})
        if rule.policy in by_policy:
            errors.append(f"{where}: duplicate rule for {rule.policy} and {rule.job_status}")
            continue
        by_policy[rule.policy] = rule.ttl_seconds
    for status, by_policy in sorted(ttls.items()):
        ordered = [(p, by_policy[p]) for p in _TTL_ORDER if p in by_policy]
        for (before, low), (after, high) in zip(ordered, ordered[1:], strict=False):
            if high < low:
                errors.append(f"spec.deletionStrategy.deletionRules for {status}: {after} TTL "
                              f"({high}) must be >= {before} TTL ({low})")  # fmt: skip
    if errors:
        raise InvalidSpec("; ".join(errors))


@dataclass(frozen=True)
class Due:
    """The policies whose time has come (to be checked for being done already), and when the
    next one comes, if any."""

    policies: tuple[str, ...]
    next_at: datetime | None


def due(job: Job, status: Mapping[str, Any], ended: datetime, now: datetime) -> Due:
    job_status = status.get("jobStatus")
    policies: list[str] = []
    next_at: datetime | None = None
    for rule in rules(job):
        if rule.job_status != job_status:
            continue
        at = ended + timedelta(seconds=rule.ttl_seconds)
        if now < at:
            next_at = at if next_at is None else min(next_at, at)
        elif rule.policy != DELETE_NONE:
            policies.append(rule.policy)
    return Due(tuple(policies), next_at)


def most_impactful(policies: list[str]) -> str:
    return max(policies, key=lambda p: IMPACT[p])


def undone(policies: tuple[str, ...], cluster: Mapping[str, Any] | None) -> list[str]:
    """The due policies whose effect is not there yet, given the job's own cluster as read
    (None when it is gone or not the job's): KubeRay's isDeletionActionCompleted."""
    gone = cluster is None or bool(cluster["metadata"].get("deletionTimestamp"))
    done = {DELETE_NONE}
    if gone:
        done |= {DELETE_CLUSTER, DELETE_WORKERS}
    elif workers_suspended(cluster):
        done.add(DELETE_WORKERS)
    return [p for p in policies if p not in done]


def workers_suspended(cluster: Mapping[str, Any]) -> bool:
    return all(g.get("suspend") for g in cluster["spec"].get("workerGroupSpecs") or [])


def suspend_workers_patch(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch (conditional on the version read) that suspends every worker group."""
    groups = [{**g, "suspend": True} for g in cluster["spec"].get("workerGroupSpecs") or []]
    return {
        "metadata": {"resourceVersion": cluster["metadata"]["resourceVersion"]},
        "spec": {"workerGroupSpecs": groups},
    }
