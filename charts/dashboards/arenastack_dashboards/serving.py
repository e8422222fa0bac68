"""Serving, per InferenceDeployment: requests and latency as the engines measure them, tokens,
the engines' queues and caches, replicas and the autoscaler, the router."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from arenastack_dashboards.common import (
    THIRD,
    dashboard,
    graph,
    quantiles,
    rate,
    row,
    variable,
)

# The chart's monitors put the deployment's name on every engine and router series; the
# operator's own per-object series carry the same two labels.
SEL = 'namespace=~"$namespace", inferencedeployment=~"$inferencedeployment"'
OPERATOR = "arenastack_operator_inferencedeployment"


def build() -> Dashboard:
    return (
        dashboard(
            "serving",
            "serving",
            "vLLM replicas of each InferenceDeployment: what users get (latency, tokens), why "
            "(queues, KV cache, preemptions), and how the autoscaler and the router respond.",
        )
        .with_variable(
            variable("namespace", "Namespace", f"label_values({OPERATOR}_replicas, namespace)")
        )
        .with_variable(
            variable(
                "inferencedeployment",
                "InferenceDeployment",
                f'label_values({OPERATOR}_replicas{{namespace=~"$namespace"}}, '
                "inferencedeployment)",
            )
        )
        .with_row(row("Requests"))
        .with_panel(
            graph(
                "Finished requests per second",
                "reqps",
                [
                    (
                        rate(
                            "vllm:request_success_total",
                            SEL,
                            "inferencedeployment, finished_reason",
                        ),
                        "{{inferencedeployment}} {{finished_reason}}",
                    )
                ],
                "By why the engine stopped: stop (the model ended), length (max_tokens), abort.",
            )
        )
        .with_panel(
            graph(
                "Router requests and errors per second",
                "reqps",
                [
                    (rate("vllm_router_requests_total", SEL, "route"), "{{route}}"),
                    (
                        rate("vllm_router_request_errors_total", SEL, "error_type"),
                        "error {{error_type}}",
                    ),
                ],
            )
        )
        .with_row(row("Latency"))
        .with_panel(
            graph(
                "Time to first token",
                "s",
                quantiles("vllm:time_to_first_token_seconds", SEL),
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Inter-token latency",
                "s",
                quantiles("vllm:inter_token_latency_seconds", SEL),
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "End-to-end request latency",
                "s",
                quantiles("vllm:e2e_request_latency_seconds", SEL),
                span=THIRD,
            )
        )
        .with_row(row("Tokens"))
        .with_panel(
            graph(
                "Tokens per second",
                "short",
                [
                    (rate("vllm:prompt_tokens_total", SEL), "in (prompt)"),
                    (rate("vllm:generation_tokens_total", SEL), "out (generated)"),
                ],
            )
        )
        .with_panel(
            graph(
                "Preemptions per second",
                "ops",
                [(rate("vllm:num_preemptions_total", SEL, "pod"), "{{pod}}")],
                "Requests the scheduler evicted for want of KV-cache blocks.",
            )
        )
        .with_row(row("Engines"))
        .with_panel(
            graph(
                "Running and waiting requests",
                "short",
                [
                    (f"sum by (pod) (vllm:num_requests_running{{{SEL}}})", "running {{pod}}"),
                    (f"sum by (pod) (vllm:num_requests_waiting{{{SEL}}})", "waiting {{pod}}"),
                ],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "KV-cache usage",
                "percentunit",
                [(f"max by (pod) (vllm:kv_cache_usage_perc{{{SEL}}})", "{{pod}}")],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Prefix-cache hit rate",
                "percentunit",
                [
                    (
                        f"{rate('vllm:prefix_cache_hits_total', SEL)} / "
                        f"{rate('vllm:prefix_cache_queries_total', SEL)}",
                        "hits / queried tokens",
                    )
                ],
                "Share of prompt tokens whose KV blocks were already cached (shared prefixes).",
                span=THIRD,
            )
        )
        .with_row(row("Replicas and autoscaling"))
        .with_panel(
            graph(
                "Replicas desired and ready",
                "short",
                [
                    (
                        f"sum by (inferencedeployment, state) ({OPERATOR}_replicas{{{SEL}}})",
                        "{{inferencedeployment}} {{state}}",
                    )
                ],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Autoscaler: observed metric and target",
                "short",
                [
                    (
                        f"max by (inferencedeployment, metric) "
                        f"({OPERATOR}_autoscaler_metric{{{SEL}}})",
                        "{{inferencedeployment}} {{metric}}",
                    ),
                    (
                        f"max by (inferencedeployment, metric) "
                        f"({OPERATOR}_autoscaler_target{{{SEL}}})",
                        "{{inferencedeployment}} target",
                    ),
                ],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Scaling decisions",
                "short",
                [
                    (
                        f"sum by (inferencedeployment, direction) (increase("
                        f"{OPERATOR}_scaling_decisions_total{{{SEL}}}[$__rate_interval]))",
                        "{{inferencedeployment}} {{direction}}",
                    )
                ],
                span=THIRD,
            )
        )
        .with_row(row("Router"))
        .with_panel(
            graph(
                "Requests per replica",
                "reqps",
                [(rate("vllm_router_processed_requests_total", SEL, "worker"), "{{worker}}")],
                "How the router spreads requests over the engine replicas.",
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Routing policy decisions",
                "ops",
                [
                    (
                        rate("vllm_router_policy_decisions_total", SEL, "policy, worker"),
                        "{{policy}} {{worker}}",
                    )
                ],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "LoRA adapters loaded",
                "short",
                [
                    (
                        f"count by (running_lora_adapters) (vllm:lora_requests_info{{{SEL}}})",
                        "{{running_lora_adapters}}",
                    )
                ],
                "Engines running requests for each set of adapters (vLLM's lora_requests_info).",
                span=THIRD,
            )
        )
    )
