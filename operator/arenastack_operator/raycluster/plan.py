"""Desired versus observed pods: what to create and what to delete (no I/O).

Scale-down choice when Ray's autoscaler is off: pods named in scaleStrategy.workersToDelete go
first; then pods that are not Ready, then the newest (latest creationTimestamp, then name) --
the pods least likely to hold work. With the autoscaler on, only the pods it names are
deleted: it alone knows which workers are idle, so a surplus waits for its workersToDelete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from arenastack_operator.raycluster import names, podstate
from arenastack_operator.raycluster.model import Cluster
from arenastack_operator.raycluster.pods import build_head_pod, build_worker_pod
from arenastack_operator.raycluster.podstate import Pod

REASON_SUSPENDED: Final = "Suspended"
REASON_FAILED: Final = "Failed"
REASON_OUTDATED: Final = "Outdated"
REASON_DUPLICATE_HEAD: Final = "DuplicateHead"
REASON_WORKERS_TO_DELETE: Final = "WorkersToDelete"
REASON_SCALE_DOWN: Final = "ScaleDown"
REASON_GROUP_REMOVED: Final = "GroupRemoved"


@dataclass(frozen=True)
class Deletion:
    pod: str
    head: bool
    reason: str


@dataclass(frozen=True)
class Creation:
    group: str  # names.HEAD_GROUP for the head
    pod: dict[str, Any]
    count: int


@dataclass
class Plan:
    create: list[Creation] = field(default_factory=list)
    delete: list[Deletion] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not self.create and not self.delete


def make_plan(cluster: Cluster, pods: list[Pod]) -> Plan:
    live = [p for p in pods if not podstate.is_terminating(p)]
    plan = Plan()
    if cluster.suspended:
        plan.delete = [_deletion(p, REASON_SUSPENDED) for p in sorted(live, key=podstate.age_key)]
        return plan

    head = build_head_pod(cluster)
    heads = _keep_healthy(cluster, [p for p in live if podstate.is_head(p)], head, plan)
    for extra in heads[1:]:
        plan.delete.append(_deletion(extra, REASON_DUPLICATE_HEAD))
    if not heads:
        plan.create.append(Creation(names.HEAD_GROUP, head, 1))

    known = set()
    for group in cluster.worker_groups:
        known.add(group.group_name)
        members = [
            p for p in live if not podstate.is_head(p) and podstate.group(p) == group.group_name
        ]
        template = build_worker_pod(cluster, group)
        keep = _keep_healthy(cluster, members, template, plan)
        if cluster.group_suspended(group):
            plan.delete.extend(_deletion(p, REASON_SUSPENDED) for p in keep)
            continue
        named = set(group.scale_strategy.workers_to_delete or []) if group.scale_strategy else set()
        plan.delete.extend(
            _deletion(p, REASON_WORKERS_TO_DELETE) for p in keep if podstate.name(p) in named
        )
        keep = [p for p in keep if podstate.name(p) not in named]
        missing = cluster.desired_workers(group) - len(keep)
        if missing > 0:
            plan.create.append(Creation(group.group_name, template, missing))
        elif missing < 0 and not cluster.autoscaling:
            surplus = _scale_down_order(keep)[:-missing]
            plan.delete.extend(_deletion(p, REASON_SCALE_DOWN) for p in surplus)
    plan.delete.extend(
        _deletion(p, REASON_GROUP_REMOVED)
        for p in live
        if not podstate.is_head(p) and podstate.group(p) not in known
    )
    return plan


def _deletion(pod: Pod, reason: str) -> Deletion:
    return Deletion(podstate.name(pod), podstate.is_head(pod), reason)


def _keep_healthy(cluster: Cluster, pods: list[Pod], desired: Pod, plan: Plan) -> list[Pod]:
    """Schedules failed pods (and, under upgradeStrategy Recreate, outdated ones) for deletion;
    returns the rest, oldest first."""
    wanted = podstate.template_hash(desired)
    keep = []
    for pod in sorted(pods, key=podstate.age_key):
        if podstate.is_failed(pod):
            plan.delete.append(_deletion(pod, REASON_FAILED))
        elif cluster.recreate_on_change and podstate.template_hash(pod) != wanted:
            plan.delete.append(_deletion(pod, REASON_OUTDATED))
        else:
            keep.append(pod)
    return keep


def _scale_down_order(pods: list[Pod]) -> list[Pod]:
    """Not-ready pods first, then the newest first (two stable sorts)."""
    newest_first = sorted(pods, key=podstate.age_key, reverse=True)
    return sorted(newest_first, key=podstate.is_ready)
