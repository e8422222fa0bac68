"""Ray, per RayCluster: pods desired against ready in each group, scale events, and Ray's own
node metrics (CPU, memory, object store) from each node's metrics port."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from arenastack_dashboards.common import (
    HALF,
    THIRD,
    dashboard,
    graph,
    row,
    variable,
)

# The operator labels its series with the cluster's name; the chart's monitors put the same
# name (and the pod's group) on the series Ray's nodes export.
SEL = 'namespace=~"$namespace", raycluster=~"$raycluster"'
PODS = "arenastack_operator_raycluster_pods"


def build() -> Dashboard:
    return (
        dashboard(
            "ray",
            "ray",
            "Ray clusters: whether every group has the pods it should, how the autoscaler moves "
            "them, and what Ray's nodes report about CPU, memory and the object store.",
        )
        .with_variable(variable("namespace", "Namespace", f"label_values({PODS}, namespace)"))
        .with_variable(
            variable(
                "raycluster",
                "RayCluster",
                f'label_values({PODS}{{namespace=~"$namespace"}}, raycluster)',
            )
        )
        .with_row(row("Pods"))
        .with_panel(
            graph(
                "Head ready",
                "short",
                [
                    (
                        f'sum by (raycluster) ({PODS}{{{SEL}, group="headgroup", state="ready"}})',
                        "{{raycluster}}",
                    )
                ],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Workers desired and ready by group",
                "short",
                [
                    (
                        f'sum by (raycluster, group, state) ({PODS}{{{SEL}, group!="headgroup"}})',
                        "{{raycluster}} {{group}} {{state}}",
                    )
                ],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Workers missing",
                "short",
                [
                    (
                        f'sum by (raycluster, group) ({PODS}{{{SEL}, state="desired"}}) - '
                        f'sum by (raycluster, group) ({PODS}{{{SEL}, state="ready"}})',
                        "{{raycluster}} {{group}}",
                    )
                ],
                "Desired minus ready: pods still starting, unschedulable or failing.",
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Scale events",
                "short",
                [
                    (
                        f"sum by (raycluster, group) (changes("
                        f'{PODS}{{{SEL}, state="desired"}}[$__rate_interval]))',
                        "{{raycluster}} {{group}}",
                    )
                ],
                "Changes of a group's desired pods: the autoscaler's (or a user's) decisions.",
                span=HALF,
            )
        )
        .with_panel(
            graph(
                "Ray nodes reporting",
                "short",
                [(f"count by (raycluster, group) (ray_node_cpu_count{{{SEL}}})", "{{group}}")],
                "Nodes whose metrics agent answers on port 8080.",
                span=HALF,
            )
        )
        .with_row(row("Ray nodes"))
        .with_panel(
            graph(
                "CPU utilisation",
                "percent",
                [(f"avg by (group) (ray_node_cpu_utilization{{{SEL}}})", "{{group}}")],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Memory used",
                "bytes",
                [
                    (f"sum by (group) (ray_node_mem_used{{{SEL}}})", "used {{group}}"),
                    (f"sum by (group) (ray_node_mem_total{{{SEL}}})", "total {{group}}"),
                ],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Object store memory",
                "bytes",
                [
                    (
                        f"sum by (Location, ObjectState) (ray_object_store_memory{{{SEL}}})",
                        "{{Location}} {{ObjectState}}",
                    )
                ],
                span=THIRD,
            )
        )
    )
