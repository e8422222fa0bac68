"""Reading observed pods: which group, terminating, ready, failed (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arenastack_operator.raycluster import names

Pod = Mapping[str, Any]


def name(pod: Pod) -> str:
    return str(pod["metadata"]["name"])


def labels(pod: Pod) -> Mapping[str, str]:
    return pod["metadata"].get("labels") or {}


def is_head(pod: Pod) -> bool:
    return labels(pod).get(names.LABEL_NODE_TYPE) == names.NODE_HEAD


def group(pod: Pod) -> str | None:
    return labels(pod).get(names.LABEL_GROUP)


def owned_by(pod: Pod, uid: str) -> bool:
    """Whether the pod belongs to the cluster with this uid (not merely carries its name, as
    the pods of a deleted cluster of the same name do until they are collected)."""
    return any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])


def is_terminating(pod: Pod) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def phase(pod: Pod) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_running(pod: Pod) -> bool:
    return phase(pod) == "Running"


def is_ready(pod: Pod) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def ip(pod: Pod) -> str | None:
    return (pod.get("status") or {}).get("podIP")


def is_failed(pod: Pod) -> bool:
    """Finished for good: the pod phase says so, or (restartPolicy Never) its Ray container
    has exited, which no kubelet will restart."""
    if phase(pod) in ("Failed", "Succeeded"):
        return True
    if (pod.get("spec") or {}).get("restartPolicy") != "Never":
        return False
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        return False
    ray_name = containers[names.RAY_CONTAINER_INDEX].get("name")
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == ray_name:
            return "terminated" in (status.get("state") or {})
    return False


def template_hash(pod: Pod) -> str | None:
    return (pod["metadata"].get("annotations") or {}).get(names.ANNOTATION_POD_HASH)


def age_key(pod: Pod) -> tuple[str, str]:
    """Orders pods oldest first (RFC 3339 timestamps sort as strings), then by name."""
    return (str(pod["metadata"].get("creationTimestamp") or ""), name(pod))
