"""Simulated nodes for the kwok profile: CPU nodes and GPU nodes that kwok keeps Ready."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from arenastack_cluster.cluster import LocalCluster

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_STATUS_ANNOTATION = "kwok.x-k8s.io/status"
GPU_RESOURCE = "nvidia.com/gpu"
GPUS_PER_NODE = 8
# The labels NVIDIA's GPU feature discovery puts on GPU nodes; schedulers and
# users select on them.
GPU_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    "nvidia.com/gpu.count": str(GPUS_PER_NODE),
    "nvidia.com/gpu.memory": "81559",
}


def node_manifest(name: str, gpus: int) -> dict:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "kwok-gpu" if gpus else "kwok-cpu",
    }
    if gpus:
        capacity.update({"cpu": "64", "memory": "1Ti", GPU_RESOURCE: str(gpus)})
        labels.update(GPU_LABELS)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {KWOK_ANNOTATION: "fake"}},
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "kwok",
            },
        },
    }


def register(cluster: LocalCluster, cpu_nodes: int, gpu_nodes: int) -> None:
    manifests = [node_manifest(f"kwok-cpu-{i}", 0) for i in range(cpu_nodes)]
    manifests += [node_manifest(f"kwok-gpu-{i}", GPUS_PER_NODE) for i in range(gpu_nodes)]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))
