"""The arena and its evaluations: battles and votes, the models' answers as the arena sees
them, the leaderboard and the database, and each ArenaEvaluation's progress and judge."""

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

ARENA = 'namespace=~"$namespace"'
EVALUATION = 'namespace=~"$namespace", arenaevaluation=~"$arenaevaluation"'
OPERATOR = "arenastack_operator_arenaevaluation"


def build() -> Dashboard:
    return (
        dashboard(
            "arena",
            "arena",
            "The arena service (battles, votes, leaderboard) and the ArenaEvaluations judged "
            "into it: their progress, verdict errors and how far their judge can be trusted.",
        )
        .with_variable(
            variable(
                "namespace", "Namespace", "label_values(arena_battles_started_total, namespace)"
            )
        )
        .with_variable(
            variable(
                "arenaevaluation",
                "ArenaEvaluation",
                f'label_values({OPERATOR}_battles{{namespace=~"$namespace"}}, arenaevaluation)',
            )
        )
        .with_row(row("Battles and votes"))
        .with_panel(
            graph(
                "Battles per second",
                "ops",
                [
                    (rate("arena_battles_started_total", ARENA), "started"),
                    (rate("arena_battles_completed_total", ARENA), "both answers complete"),
                    (
                        rate("arena_judged_battles_total", ARENA, "stored"),
                        "judged stored={{stored}}",
                    ),
                ],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Votes per second by outcome",
                "ops",
                [(rate("arena_votes_total", ARENA, "outcome"), "{{outcome}}")],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Requests refused by rate limits",
                "reqps",
                [(rate("arena_rate_limited_total", ARENA, "bucket"), "{{bucket}}")],
                span=THIRD,
            )
        )
        .with_row(row("Models"))
        .with_panel(
            graph(
                "Upstream errors per second by model",
                "ops",
                [(rate("arena_upstream_errors_total", ARENA, "model, kind"), "{{model}} {{kind}}")],
            )
        )
        .with_panel(
            graph(
                "Time to a complete answer by model",
                "s",
                quantiles("arena_upstream_duration_seconds", ARENA, "model", "{{model}}"),
            )
        )
        .with_row(row("Service and database"))
        .with_panel(
            graph(
                "HTTP latency by route",
                "s",
                quantiles("arena_request_duration_seconds", ARENA, "route", "{{route}}"),
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Leaderboard refresh time",
                "s",
                quantiles("arena_leaderboard_refresh_seconds", ARENA),
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Writes stored per second",
                "ops",
                [
                    (rate("arena_db_batch_writes_sum", ARENA), "writes"),
                    (rate("arena_db_batch_writes_count", ARENA), "commits"),
                    (rate("arena_db_errors_total", ARENA, "op"), "errors {{op}}"),
                ],
                "Votes and battles reach the database in group commits.",
                span=THIRD,
            )
        )
        .with_row(row("Evaluations"))
        .with_panel(
            graph(
                "Evaluation progress",
                "short",
                [
                    (
                        f"sum by (arenaevaluation, state) ({OPERATOR}_battles{{{EVALUATION}, "
                        'state=~"planned|answered|judged"})',
                        "{{arenaevaluation}} {{state}}",
                    )
                ],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Verdict and battle errors",
                "short",
                [
                    (
                        f"sum by (arenaevaluation, state) ({OPERATOR}_battles{{{EVALUATION}, "
                        'state=~"errors|parseErrors"})',
                        "{{arenaevaluation}} {{state}}",
                    )
                ],
                "parseErrors: judgments with no verdict that could be read.",
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Evaluations by phase",
                "short",
                [
                    (
                        "sum by (phase) "
                        '(arenastack_operator_managed_objects{kind="ArenaEvaluation"})',
                        "{{phase}}",
                    )
                ],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Judge position consistency",
                "percentunit",
                [
                    (
                        f"max by (arenaevaluation) ({OPERATOR}_judge_position_consistency"
                        f"{{{EVALUATION}}})",
                        "{{arenaevaluation}}",
                    )
                ],
                "Share of battles whose verdicts agree when the answers swap places.",
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Judge-human agreement",
                "percentunit",
                [
                    (
                        f"max by (arenaevaluation, ties) ({OPERATOR}_judge_human_agreement"
                        f"{{{EVALUATION}}})",
                        "{{arenaevaluation}} ties {{ties}}",
                    )
                ],
                span=THIRD,
            )
        )
        .with_panel(
            graph(
                "Ratings with 95% intervals",
                "short",
                [
                    (
                        f"max by (arenaevaluation, contestant, bound) ({OPERATOR}_rating"
                        f"{{{EVALUATION}}})",
                        "{{contestant}} {{bound}}",
                    )
                ],
                "Bradley-Terry ratings on each evaluation's judge board.",
                span=THIRD,
            )
        )
    )
