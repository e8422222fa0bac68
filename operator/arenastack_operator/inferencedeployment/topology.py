"""Where a replica runs: one pod, a RayCluster of its own, or an existing RayCluster.

Decided from the spec and the GPU capacity of the nodes the replica may use; no I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from arenastack_operator.inferencedeployment import engine, names
from arenastack_operator.inferencedeployment.spec import InferenceDeploymentSpec

Layout = Literal["pod", "ray", "rayRef"]
REASON_INSUFFICIENT_GPU = "InsufficientGPU"


@dataclass(frozen=True)
class Topology:
    layout: Layout
    gpus: int  # of one replica
    nodes: int  # Ray nodes of one replica (1 for a pod)
    gpus_per_node: int
    insufficient: str | None = None  # why no node (or set of nodes) can hold a replica

    @property
    def workers(self) -> int:
        return self.nodes - 1


def node_gpus(node: Mapping[str, Any]) -> int:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    try:
        return int(str(allocatable.get(names.GPU_RESOURCE, "0")))
    except ValueError:
        return 0


def _schedulable(node: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    spec = node.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    return not spec.get("unschedulable") and all(labels.get(k) == v for k, v in selector.items())


def largest_node_gpus(nodes: Iterable[Mapping[str, Any]], selector: Mapping[str, str]) -> int:
    """The most GPUs one node the replicas may land on has (by nodeSelector; taints and affinity
    are left to the scheduler, whose refusals are read from the pods)."""
    return max((node_gpus(n) for n in nodes if _schedulable(n, selector)), default=0)


def plan(spec: InferenceDeploymentSpec, node_capacity: int | None) -> Topology:
    """`node_capacity`: the most GPUs one eligible node has, None when nodes cannot be read."""
    gpus = engine.gpus_per_replica(spec)
    if spec.ray_cluster_ref is not None:
        return Topology("rayRef", gpus, 1, 0)
    insufficient = None
    if gpus > 0 and node_capacity is not None:
        if node_capacity == 0:
            insufficient = f"a replica needs {gpus} GPUs and no eligible node has any"
        elif gpus > node_capacity and spec.distributed == "none":
            insufficient = (
                f"a replica needs {gpus} GPUs, the largest eligible node has {node_capacity}, "
                "and distributed is none"
            )
    multi_node = spec.distributed == "ray" or (
        spec.distributed == "auto"
        and gpus > 0
        and node_capacity is not None
        and 0 < node_capacity < gpus
    )
    if not multi_node:
        return Topology("pod", gpus, 1, gpus, insufficient)
    if gpus == 0:
        # CPU: one Ray node per pipeline stage.
        nodes = spec.engine.pipeline_parallel_size
    else:
        per_node_max = node_capacity if node_capacity else gpus
        nodes = math.ceil(gpus / per_node_max)
    return Topology("ray", gpus, nodes, math.ceil(gpus / nodes), insufficient)
