"""The Services of a RayCluster (no I/O): the head's `<cluster>-head-svc` and, for multi-host
worker groups, `<cluster>-headless`."""

from __future__ import annotations

import copy
from typing import Any

from arenastack_operator import constants
from arenastack_operator.raycluster import names
from arenastack_operator.raycluster.model import Cluster
from arenastack_operator.raycluster.pods import ray_container_ports

HEADLESS = "None"
CLUSTER_IP = "ClusterIP"
# KubeRay's appProtocol on the ports it adds.
APP_PROTOCOL = "tcp"


def service_ports(cluster: Cluster) -> list[dict[str, Any]]:
    """The head container's named ports (plus metrics); KubeRay's defaults if it names none."""
    named = [p for p in cluster.head_container.get("ports") or [] if p.get("name")]
    if not named:
        return [
            {"name": name, "port": port, "protocol": "TCP", "appProtocol": APP_PROTOCOL}
            for name, port in names.DEFAULT_SERVICE_PORTS
        ]
    return [
        {
            "name": p["name"],
            "port": p["containerPort"],
            "protocol": p.get("protocol", "TCP"),
            "appProtocol": APP_PROTOCOL,
        }
        for p in ray_container_ports(cluster.head_container)
        if p.get("name")
    ]


def build_head_service(cluster: Cluster) -> dict[str, Any]:
    head = cluster.spec.head_group_spec
    user = copy.deepcopy(head.head_service or {})
    user_meta = user.get("metadata") or {}
    spec = user.get("spec") or {}
    ports = spec.get("ports") or []
    taken = {p.get("name") for p in ports}
    spec["ports"] = ports + [p for p in service_ports(cluster) if p["name"] not in taken]
    service_type = head.service_type or spec.get("type") or CLUSTER_IP
    spec["type"] = service_type
    if head.head_service is None and service_type == CLUSTER_IP:
        # Headless: workers and clients reach the head pod directly, even before it is ready
        # (the GCS must be reachable while the head's own readiness probe still fails).
        spec["clusterIP"] = HEADLESS
        spec["publishNotReadyAddresses"] = True
    own = {
        names.LABEL_CLUSTER: cluster.name,
        names.LABEL_NODE_TYPE: names.NODE_HEAD,
        names.LABEL_IDENTIFIER: names.identifier(cluster.name, names.NODE_HEAD),
        constants.LABEL_NAME: names.APP_NAME,
        names.LABEL_CREATED_BY: constants.MANAGED_BY,
    }
    # Every label the operator puts on the head pod, as KubeRay selects it.
    spec["selector"] = dict(own)
    labels = {**(user_meta.get("labels") or {}), **own}
    annotations = {
        **(user_meta.get("annotations") or {}),
        **(cluster.spec.head_service_annotations or {}),
    }
    metadata: dict[str, Any] = {
        "name": cluster.head_service_name,
        "namespace": cluster.namespace,
        "labels": labels,
        "ownerReferences": [cluster.owner_reference],
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def build_headless_service(cluster: Cluster) -> dict[str, Any] | None:
    """For worker groups of several hosts per replica (TPU slices, for instance): a headless
    Service over every worker, ready or not, by which the hosts of a replica find each other
    before Ray is up. None when no group has more than one host."""
    if not any(group.num_of_hosts > 1 for group in cluster.worker_groups):
        return None
    selector = {names.LABEL_CLUSTER: cluster.name, names.LABEL_NODE_TYPE: names.NODE_WORKER}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": names.headless_service_name(cluster.name),
            "namespace": cluster.namespace,
            "labels": {names.LABEL_HEADLESS_WORKER_SVC: cluster.name},
            "ownerReferences": [cluster.owner_reference],
        },
        "spec": {
            "clusterIP": HEADLESS,
            "type": CLUSTER_IP,
            "publishNotReadyAddresses": True,
            "selector": selector,
        },
    }
