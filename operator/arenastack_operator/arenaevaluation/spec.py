"""Typed definition of ``arenastack.io/v1alpha1`` ArenaEvaluation.

An evaluation is one question: "rank these contestants on these prompts with this judge". The
operator answers it with a run: a Job (the arena image's evaluation runner) that asks every
contestant, has the judge compare each pair of answers in both orders, and posts the verdicts
to the arena service under the source ``judge:<judge model>``. A spec change starts a new run.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from arenastack_operator import constants
from arenastack_operator.schema.base import (
    EMPTY_OBJECT_DEFAULT,
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
MAX_TEXT = 32768
MAX_TURNS = 16
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

PHASE_PENDING = "Pending"
PHASE_WAITING = "WaitingForContestants"
PHASE_RUNNING = "Running"
PHASE_SUSPENDED = "Suspended"
PHASE_SUCCEEDED = "Succeeded"
PHASE_FAILED = "Failed"
Phase = Literal["Pending", "WaitingForContestants", "Running", "Suspended", "Succeeded", "Failed"]
Scale = Literal["three", "five"]
Disagreement = Literal["tie", "bothGames"]
BattleMode = Literal["allPairs", "adaptive"]

ONE_SOURCE_RULE = cel(
    "has(self.inferenceDeploymentRef) != has(self.endpoint)",
    "set exactly one of inferenceDeploymentRef and endpoint",
)


class EndpointSpec(ApiModel):
    """An OpenAI-compatible endpoint outside the cluster's InferenceDeployments."""

    base_url: str = Field(
        alias="baseURL",
        description="Base URL of the OpenAI-compatible API, e.g. https://api.example.com/v1.",
        max_length=2048,
        pattern=r"^https?://",
    )
    model: str = Field(description="Model name sent in each request.", min_length=1, max_length=256)
    api_key_secret_ref: SecretKeyReference | None = Field(
        default=None,
        alias="apiKeySecretRef",
        description="Secret key holding the API key (sent as a Bearer token; never logged).",
    )


class Sampling(ApiModel):
    """How a contestant is asked."""

    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature (default: the endpoint's)."
    )
    max_tokens: PositiveInt32 | None = Field(
        default=None, le=32768, description="Most tokens per answer (default 512)."
    )
    system_prompt: str | None = Field(
        default=None, max_length=MAX_TEXT, description="System message before every prompt."
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
        default=None,
        description="An InferenceDeployment in this namespace: its router and served model.",
    )
    endpoint: EndpointSpec | None = Field(default=None, description="An external endpoint.")
    sampling: Sampling | None = Field(default=None, description="Sampling settings.")
    price_per_million_tokens: float | None = Field(
        default=None, ge=0, description="Price per million output tokens, shown on the board."
    )
    family: str | None = Field(
        default=None,
        max_length=63,
        description="Model family, e.g. smollm2: a judge of the same family is flagged for "
        "self-enhancement bias.",
    )


class InlinePrompt(ApiModel):
    """One prompt: a text, or several user turns of one conversation."""

    model_config = {
        "json_schema_extra": rules(
            cel("has(self.text) != has(self.turns)", "set exactly one of text and turns")
        )
    }

    id: str | None = Field(
        default=None, max_length=128, description="Identity of the prompt (default: its index)."
    )
    text: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEXT, description="A one-turn prompt."
    )
    turns: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]],
            Field(min_length=1, max_length=MAX_TURNS),
        ]
        | None
    ) = Field(default=None, description="User turns of a multi-turn prompt.")
    category: str | None = Field(default=None, max_length=63, description="Category of the prompt.")
    reference: (
        Annotated[list[Annotated[str, Field(max_length=MAX_TEXT)]], Field(max_length=MAX_TURNS)]
        | None
    ) = Field(default=None, description="Reference answers, one per turn, shown to the judge.")


class ConfigMapKey(ApiModel):
    """A key of a ConfigMap in the same namespace."""

    name: str = Field(description="Name of the ConfigMap.", min_length=1, max_length=253)
    key: str = Field(description="Key inside the ConfigMap.", min_length=1, max_length=253)


class VolumeFile(ApiModel):
    """A file on a PersistentVolumeClaim, mounted read-only into the runner."""

    claim_name: str = Field(description="The PersistentVolumeClaim.", min_length=1, max_length=253)
    path: str = Field(
        description="Path of the file inside the volume.",
        min_length=1,
        max_length=1024,
        pattern=r"^[^/](.*[^/])?$",
    )


class FromArena(ApiModel):
    """Battles people already voted on in the arena service, re-judged by the judge."""

    category: str | None = Field(default=None, max_length=63, description="Only this category.")
    limit: PositiveInt32 = Field(default=100, le=10000, description="Newest battles first.")


class PromptsSpec(ApiModel):
    """Where the prompts come from. JSON lines are this API's prompt objects or MT-Bench
    questions as they are (question_id, category, turns, reference)."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "[has(self.inline), has(self.configMapRef), has(self.file), "
                "has(self.fromArena)].filter(x, x).size() == 1",
                "set exactly one of inline, configMapRef, file and fromArena",
            )
        )
    }

    inline: (
        Annotated[list[InlinePrompt], Field(min_length=1, max_length=MAX_INLINE_PROMPTS)] | None
    ) = Field(default=None, description="The prompts themselves.")
    config_map_ref: ConfigMapKey | None = Field(
        default=None, description="A ConfigMap key holding JSON lines."
    )
    file: VolumeFile | None = Field(default=None, description="A JSON-lines file on a volume.")
    from_arena: FromArena | None = Field(
        default=None, description="Re-judge human-voted arena battles (judge-human agreement)."
    )


class JudgeTemplate(ApiModel):
    """A user template with the named placeholders {question}, {answer_a}, {answer_b} and,
    optionally, {reference}."""

    config_map_ref: ConfigMapKey = Field(description="The ConfigMap key holding the template.")


class JudgeSpec(ApiModel):
    """The LLM that compares two answers."""

    model_config = {"json_schema_extra": rules(ONE_SOURCE_RULE)}

    inference_deployment_ref: LocalObjectReference | None = Field(
        default=None,
        description="An InferenceDeployment in this namespace (asked with structured output, "
        "so every verdict parses).",
    )
    endpoint: EndpointSpec | None = Field(default=None, description="An external endpoint.")
    structured_output: bool | None = Field(
        default=None,
        description="Constrain the verdict with a JSON schema (default: true for "
        "InferenceDeployments, false for endpoints).",
    )
    template: JudgeTemplate | None = Field(
        default=None, description="Pairwise template (default: the built-in one)."
    )
    scale: Scale = Field(
        default="three", description="three: A, B or tie. five: A>>B, A>B, A=B, B>A, B>>A."
    )
    strong_win_weight: PositiveInt32 = Field(
        default=3, le=10, description="Games a strong win (A>>B) counts for on the five scale."
    )
    both_orders: bool = Field(
        default=True, description="Judge every battle twice, with the answers swapped."
    )
    on_disagreement: Disagreement = Field(
        default="tie",
        description="When the two orders disagree: tie (MT-Bench) or bothGames (each order "
        "counts as its own game, Arena-Hard).",
    )
    reference_guided: bool = Field(
        default=True, description="Show the judge the prompt's reference answer where it has one."
    )
    temperature: float = Field(default=0.0, ge=0, le=2, description="Judge temperature.")
    max_tokens: PositiveInt32 = Field(default=1024, le=32768, description="Most judge tokens.")
    retries: NonNegativeInt32 = Field(
        default=2, le=10, description="Retries of a failed or unparseable judgment."
    )
    timeout_seconds: PositiveInt32 = Field(
        default=300, le=3600, description="Timeout of one judge request."
    )
    family: str | None = Field(
        default=None, max_length=63, description="Model family of the judge (self-enhancement)."
    )


class BattlesSpec(ApiModel):
    """Which battles run."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "!has(self.mode) || self.mode != 'adaptive' || has(self.budget)",
                "battles.budget is required with mode adaptive",
            )
        )
    }

    mode: BattleMode = Field(
        default="allPairs",
        description="allPairs: every pair on every prompt. adaptive: a budget of battles, the "
        "pairs whose ratings are least certain first.",
    )
    budget: PositiveInt32 | None = Field(
        default=None, le=1_000_000, description="Battles to run (adaptive; caps allPairs)."
    )
    seed: Int64 = Field(default=0, description="Seed of every random choice (sides, sampling).")
    baseline: str | None = Field(
        default=None, max_length=63, description="Contestant that win rates are measured against."
    )


class ArenaTarget(ApiModel):
    """The arena service that stores the verdicts."""

    url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://",
        description="Base URL (default: the chart's arena service).",
    )
    token_secret_ref: SecretKeyReference | None = Field(
        default=None,
        description="Secret key, in the evaluation's namespace, with the arena's judge token "
        "(the chart's arena.judgeToken); without it no token is sent, and an arena that has "
        "one refuses the runner.",
    )


class JobSpec(ApiModel):
    """The Job that runs the evaluation."""

    image: str | None = Field(
        default=None, max_length=1024, description="Runner image (default: the arena image)."
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Resources of the runner."
    )
    backoff_limit: NonNegativeInt32 = Field(
        default=2, le=100, description="Runner restarts before the run fails (it resumes)."
    )
    active_deadline_seconds: PositiveInt32 | None = Field(
        default=None, description="Fail the run after this many seconds."
    )


class ArenaEvaluationSpec(ApiModel):
    """Desired evaluation: contestants, prompts, judge, battles."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "!has(self.battles) || !has(self.battles.baseline) || "
                "self.contestants.exists(c, c.name == self.battles.baseline)",
                "battles.baseline must name one of the contestants",
                field_path=".battles.baseline",
            ),
            cel(
                "!has(self.schedule)",
                "schedule is not supported yet: re-apply the evaluation (or change its spec) "
                "to run it again",
                field_path=".schedule",
            ),
        )
    }

    contestants: Annotated[
        list[Contestant],
        Field(min_length=2, max_length=MAX_CONTESTANTS, json_schema_extra=list_map("name")),
    ] = Field(description="Models that battle (2 to 32, unique names).")
    prompts: PromptsSpec = Field(description="Prompts of the battles.")
    judge: JudgeSpec = Field(description="The LLM judge.")
    battles: BattlesSpec = Field(
        default_factory=BattlesSpec,
        description="The battles: all pairs on every prompt, or an adaptive budget.",
        json_schema_extra=EMPTY_OBJECT_DEFAULT,
    )
    arena: ArenaTarget | None = Field(default=None, description="Where verdicts go.")
    concurrency: PositiveInt32 = Field(
        default=8, le=256, description="Requests in flight (answers and judgments together)."
    )
    suspend: bool = Field(
        default=False, description="Stop the run's Job; set back to false to resume."
    )
    schedule: str | None = Field(
        default=None, max_length=128, description="Cron schedule of re-runs (not supported yet)."
    )
    job: JobSpec | None = Field(default=None, description="The runner Job.")


class Progress(ApiModel):
    """Counts of the current run, written by the runner."""

    planned: NonNegativeInt32 = Field(default=0, description="Battles planned.")
    answered: NonNegativeInt32 = Field(default=0, description="Battles with both answers.")
    judged: NonNegativeInt32 = Field(default=0, description="Battles judged and stored.")
    errors: NonNegativeInt32 = Field(default=0, description="Battles that failed.")
    parse_errors: NonNegativeInt32 = Field(
        default=0, description="Judgments whose verdict could not be parsed."
    )


class Standing(ApiModel):
    """A contestant's place on this evaluation's judge board."""

    name: str = Field(description="The contestant.")
    rating: float = Field(description="Bradley-Terry rating (Elo scale).")
    ci_lower: float | None = Field(default=None, description="Lower end of the 95% interval.")
    ci_upper: float | None = Field(default=None, description="Upper end of the 95% interval.")
    rank: PositiveInt32 | None = Field(default=None, description="Rank (ties share one).")
    battles: NonNegativeInt32 = Field(default=0, description="Battles fought.")
    win_rate_vs_baseline: float | None = Field(
        default=None, description="Share of battles won against the baseline (ties half)."
    )
    preliminary: bool | None = Field(
        default=None, description="Too few battles to rank: shown apart."
    )
    output_tokens: NonNegativeInt32 | None = Field(
        default=None, description="Tokens the contestant generated in this run's answers."
    )
    cost: float | None = Field(
        default=None,
        description="Those tokens at the contestant's pricePerMillionTokens (none without it).",
    )
    human_rating: float | None = Field(
        default=None,
        description="For a contestant that is the judge or of its family: its rating on the "
        "arena's human board, beside the judge's (self-enhancement shown both ways).",
    )


class HumanAgreement(ApiModel):
    """Agreement of the judge with human votes on the same battles."""

    battles: NonNegativeInt32 = Field(description="Battles both judged and voted.")
    with_ties: float | None = Field(default=None, description="Share of identical outcomes.")
    without_ties: float | None = Field(
        default=None, description="Same, over battles where both picked a winner."
    )


class JudgeReport(ApiModel):
    """How far the judge can be trusted."""

    model: str | None = Field(default=None, description="The judge's model.")
    source: str | None = Field(default=None, description="Its source label in the arena.")
    position_consistency: float | None = Field(
        default=None, description="Share of battles whose two orders agree."
    )
    human_agreement: HumanAgreement | None = Field(
        default=None, description="Against human votes on the same battles (fromArena)."
    )
    self_enhancement: list[str] | None = Field(
        default=None, description="Contestants that are the judge or of its family."
    )


class Results(ApiModel):
    """Links to the arena service holding every battle of the run."""

    arena: str | None = Field(default=None, description="The arena service.")
    export: str | None = Field(
        default=None,
        description="Battles as JSON lines: both answers, both judgments, the judge's reasons.",
    )


class ArenaEvaluationStatus(ApiModel):
    """Observed state of the evaluation."""

    phase: Phase | None = Field(default=None, description="Where the current run is.")
    reason: str | None = Field(default=None, description="Why, in one CamelCase word.")
    message: str | None = Field(default=None, description="Why, for people.")
    run: NonNegativeInt32 | None = Field(
        default=None, description="The generation the current run evaluates."
    )
    job_name: str | None = Field(default=None, description="The current run's Job.")
    waiting_for: list[str] | None = Field(
        default=None, description="Contestants and judge that are not Ready yet."
    )
    judge_name: str | None = Field(default=None, description="The judge, for the printer.")
    leader: str | None = Field(
        default=None,
        description="Rank 1 of the judge board (while nobody has enough battles to rank: the "
        "best rated, marked preliminary in the ranking).",
    )
    progress: Progress | None = Field(default=None, description="Battles of the current run.")
    start_time: Timestamp | None = Field(default=None, description="When the run started.")
    completion_time: Timestamp | None = Field(default=None, description="When it finished.")
    ranking: Annotated[list[Standing], Field(json_schema_extra=list_map("name"))] | None = Field(
        default=None, description="The judge board of this run, best first."
    )
    judge: JudgeReport | None = Field(
        default=None, description="Position consistency, human agreement, self-enhancement."
    )
    results: Results | None = Field(default=None, description="Where the full results are.")
    conditions: Conditions | None = None
    observed_generation: Int64 | None = Field(
        default=None, description="The .metadata.generation this status describes."
    )


CRD = CrdInfo(
    ref=constants.ARENAEVALUATION,
    spec=ArenaEvaluationSpec,
    status=ArenaEvaluationStatus,
    description="Pairwise LLM-judged battles between models on prompts; verdicts go to the "
    "arena service, the judge board and the judge's consistency to status.",
    short_names=("arenaeval", "aeval"),
    printer_columns=(
        PrinterColumn("phase", "string", ".status.phase"),
        PrinterColumn("judge", "string", ".status.judgeName"),
        PrinterColumn("battles", "integer", ".status.progress.judged"),
        PrinterColumn("leader", "string", ".status.leader"),
        PrinterColumn("age", "date", ".metadata.creationTimestamp"),
    ),
)
