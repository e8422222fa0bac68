"""Typed definition of ``arenastack.io/v1alpha1`` ArenaEvaluation (first draft).

An evaluation runs as a Job: battles between contestants (InferenceDeployments
or external OpenAI-compatible endpoints) on a set of prompts, judged by an LLM,
with the verdicts posted to the arena service and the ratings put in status.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from arenastack_operator import constants
from arenastack_operator.schema.base import (
    ApiModel,
    Conditions,
    CrdInfo,
    Int64,
    LocalObjectReference,
    NonNegativeInt32,
    PositiveInt32,
    PrinterColumn,
    ResourceRequirements,
    SecretKeyReference,
    Timestamp,
    cel,
    list_map,
    rules,
)

MAX_CONTESTANTS = 32
MAX_INLINE_PROMPTS = 1000
MAX_PROMPT_LENGTH = 32768
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

Phase = Literal["Pending", "Running", "Succeeded", "Failed"]
Pairing = Literal["allPairs", "random"]


class EndpointSpec(ApiModel):
    """An external OpenAI-compatible endpoint."""

    base_url: str = Field(
        alias="baseURL",
        description="Base URL, e.g. https://api.example.com/v1.",
        max_length=2048,
        pattern=r"^https?://",
    )
    model: str = Field(description="Model name to request.", max_length=256)
    api_key_secret_ref: SecretKeyReference | None = Field(
        default=None, description="Secret key holding the API key."
    )


ONE_SOURCE_RULE = cel(
    "has(self.inferenceDeploymentRef) != has(self.endpoint)",
    "set exactly one of inferenceDeploymentRef and endpoint",
)


class Contestant(ApiModel):
    """A model taking part in the battles."""

    model_config = {"json_schema_extra": rules(ONE_SOURCE_RULE)}

    name: str = Field(
        description="Name of the contestant on the leaderboard.",
        min_length=1,
        max_length=63,
        pattern=NAME_PATTERN,
    )
    inference_deployment_ref: LocalObjectReference | None = Field(
        default=None, description="An InferenceDeployment in this namespace."
    )
    endpoint: EndpointSpec | None = Field(default=None, description="An external endpoint.")


class JudgeSpec(ApiModel):
    """The LLM that judges each battle."""

    model_config = {"json_schema_extra": rules(ONE_SOURCE_RULE)}

    inference_deployment_ref: LocalObjectReference | None = Field(
        default=None, description="An InferenceDeployment in this namespace."
    )
    endpoint: EndpointSpec | None = Field(default=None, description="An external endpoint.")
    rubric: str | None = Field(
        default=None,
        description="Instructions to the judge (default: the arena's pairwise rubric).",
        max_length=MAX_PROMPT_LENGTH,
    )
    swap_positions: bool = Field(
        default=True,
        description="Judge each battle twice with the answers swapped; disagreement is a tie.",
    )


class ConfigMapKey(ApiModel):
    """A key of a ConfigMap in the same namespace."""

    name: str = Field(description="Name of the ConfigMap.", max_length=253)
    key: str = Field(description="Key holding one prompt per line (JSON Lines).", max_length=253)


class PromptsSpec(ApiModel):
    """Where the prompts come from."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "has(self.inline) != has(self.configMapRef)",
                "set exactly one of prompts.inline and prompts.configMapRef",
            )
        )
    }

    inline: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_LENGTH)]],
            Field(min_length=1, max_length=MAX_INLINE_PROMPTS),
        ]
        | None
    ) = Field(default=None, description="The prompts themselves.")
    config_map_ref: ConfigMapKey | None = Field(
        default=None, description="A ConfigMap key with one JSON prompt per line."
    )
    sample: PositiveInt32 | None = Field(
        default=None, description="Use this many prompts, sampled with the seed (default: all)."
    )


class BattlesSpec(ApiModel):
    """How battles are drawn and run."""

    count: PositiveInt32 = Field(description="Battles to run.")
    pairing: Pairing = Field(
        default="allPairs",
        description="allPairs cycles through every pair evenly; random draws pairs at random.",
    )
    concurrency: PositiveInt32 = Field(default=4, le=256, description="Battles in flight.")
    seed: Int64 | None = Field(default=None, description="Seed of every random choice.")
    max_tokens: PositiveInt32 = Field(default=512, description="Most tokens per answer.")
    temperature: float = Field(default=0.7, ge=0, le=2, description="Sampling temperature.")


class JobSpec(ApiModel):
    """The Job that runs the evaluation."""

    image: str | None = Field(
        default=None, description="Runner image (default: the operator's arena image)."
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Resources of the runner."
    )
    backoff_limit: NonNegativeInt32 = Field(default=2, description="Retries of the runner.")
    active_deadline_seconds: PositiveInt32 | None = Field(
        default=None, description="Give up after this many seconds."
    )
    ttl_seconds_after_finished: NonNegativeInt32 | None = Field(
        default=None, description="Delete the finished Job after this many seconds."
    )


class ArenaEvaluationSpec(ApiModel):
    """Desired evaluation: contestants, prompts, judge, battles."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "self == oldSelf",
                "an ArenaEvaluation's spec is immutable; create a new evaluation instead",
            )
        )
    }

    contestants: Annotated[
        list[Contestant],
        Field(min_length=2, max_length=MAX_CONTESTANTS, json_schema_extra=list_map("name")),
    ] = Field(description="Models that battle (at least two, unique names).")
    prompts: PromptsSpec = Field(description="Prompts of the battles.")
    judge: JudgeSpec = Field(description="The LLM judge.")
    battles: BattlesSpec = Field(description="How many battles and how they run.")
    arena_url: str | None = Field(
        default=None,
        alias="arenaURL",
        description="Arena service that receives the verdicts (default: the chart's arena "
        "service).",
        max_length=2048,
        pattern=r"^https?://",
    )
    job: JobSpec | None = Field(default=None, description="The runner Job.")


class ContestantResult(ApiModel):
    """A contestant's rating from this evaluation's battles."""

    name: str = Field(description="The contestant.")
    rating: float = Field(description="Bradley-Terry rating (Elo scale).")
    ci_lower: float | None = Field(default=None, description="Lower end of the 95% interval.")
    ci_upper: float | None = Field(default=None, description="Upper end of the 95% interval.")
    wins: NonNegativeInt32 = Field(default=0, description="Battles won.")
    losses: NonNegativeInt32 = Field(default=0, description="Battles lost.")
    ties: NonNegativeInt32 = Field(default=0, description="Battles tied.")


class ArenaEvaluationStatus(ApiModel):
    """Observed state of the evaluation."""

    phase: Phase | None = Field(default=None, description="Pending, Running, Succeeded, Failed.")
    job_name: str | None = Field(default=None, description="The runner Job.")
    battles_total: NonNegativeInt32 | None = Field(default=None, description="Battles planned.")
    battles_completed: NonNegativeInt32 | None = Field(
        default=None, description="Battles judged and posted."
    )
    start_time: Timestamp | None = Field(default=None, description="When the runner started.")
    completion_time: Timestamp | None = Field(default=None, description="When it finished.")
    results: Annotated[list[ContestantResult], Field(json_schema_extra=list_map("name"))] | None = (
        Field(default=None, description="Ratings, best first.")
    )
    conditions: Conditions | None = None
    observed_generation: Int64 | None = Field(
        default=None, description="The .metadata.generation this status describes."
    )


CRD = CrdInfo(
    ref=constants.ARENAEVALUATION,
    spec=ArenaEvaluationSpec,
    status=ArenaEvaluationStatus,
    description="A batch of judged battles between models, posted to the arena; ratings in status.",
    short_names=("arenaeval", "aeval"),
    printer_columns=(
        PrinterColumn("phase", "string", ".status.phase"),
        PrinterColumn("completed", "integer", ".status.battlesCompleted"),
        PrinterColumn("total", "integer", ".status.battlesTotal"),
        PrinterColumn("age", "date", ".metadata.creationTimestamp"),
    ),
)
