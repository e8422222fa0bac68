"""The operator: leadership, objects by phase, reconciles, the work queue, its apiserver calls,
and the process itself."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from arenastack_dashboards.common import (
    FULL,
    HALF,
    QUARTER,
    dashboard,
    graph,
    quantiles,
    rate,
    row,
    single,
    variable,
)

JOB = 'job=~"$job"'


def build() -> Dashboard:
    return (
        dashboard(
            "operator",
            "operator",
            "The arenastack operator: whether a replica leads, what it manages, how its "
            "reconciles and its calls to the apiserver go.",
        )
        .with_variable(variable("job", "Job", "label_values(arenastack_operator_leader, job)"))
        .with_row(row("Leadership and objects"))
        .with_panel(
            single(
                "Leader replicas",
                "short",
                [(f"sum(arenastack_operator_leader{{{JOB}}})", "leaders")],
                "Replicas holding the lease; anything but 1 for long means nothing reconciles.",
            )
        )
        .with_panel(
            graph(
                "Managed objects by phase",
                "short",
                [
                    (
                        f"sum by (kind, phase) (arenastack_operator_managed_objects{{{JOB}}})",
                        "{{kind}} {{phase}}",
                    )
                ],
                span=FULL - QUARTER,
                height=4,
            )
        )
        .with_row(row("Reconciles"))
        .with_panel(
            graph(
                "Reconciles per second by kind and result",
                "ops",
                [
                    (
                        rate("arenastack_operator_reconciles_total", JOB, "kind, result"),
                        "{{kind}} {{result}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Reconcile duration",
                "s",
                quantiles(
                    "arenastack_operator_reconcile_duration_seconds", JOB, "kind", "{{kind}}"
                ),
            )
        )
        .with_panel(
            graph(
                "Work-queue depth",
                "short",
                [(f"sum by (kind) (arenastack_operator_workqueue_depth{{{JOB}}})", "{{kind}}")],
                "Objects waiting for a worker; a depth that stays up means the workers are "
                "too few or the reconciles too slow.",
            )
        )
        .with_panel(
            graph(
                "Retries per second",
                "ops",
                [
                    (
                        rate(
                            "arenastack_operator_reconciles_total",
                            f'{JOB}, result=~"retry|error"',
                            "kind, result",
                        ),
                        "{{kind}} {{result}}",
                    )
                ],
                "Reconciles that come back after the queue's backoff: retry for what may pass "
                "(a conflict, a lost connection), error for a reconciler bug.",
            )
        )
        .with_row(row("Apiserver requests"))
        .with_panel(
            graph(
                "Requests per second by verb and code",
                "reqps",
                [
                    (
                        rate("arenastack_operator_api_requests_total", JOB, "method, code"),
                        "{{method}} {{code}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Requests per second by kind and resource",
                "reqps",
                [
                    (
                        rate("arenastack_operator_api_requests_total", JOB, "kind, resource"),
                        "{{kind}} {{resource}}",
                    )
                ],
            )
        )
        .with_row(row("Process"))
        .with_panel(
            graph(
                "Operator memory (RSS)",
                "bytes",
                [(f"process_resident_memory_bytes{{{JOB}}}", "{{pod}}")],
                span=HALF,
            )
        )
        .with_panel(
            graph(
                "Operator CPU",
                "percentunit",
                [(f"rate(process_cpu_seconds_total{{{JOB}}}[$__rate_interval])", "{{pod}}")],
                span=HALF,
            )
        )
    )
