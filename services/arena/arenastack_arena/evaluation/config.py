"""run.json, typed: what the operator's ``builders.run_config`` writes, checked before any I/O.

Field names are run.json's (camelCase); every problem is a ``ConfigError`` whose message names
the field, e.g. ``run.json: contestants[1].baseURL: ...``. Unknown fields are ignored (with a
warning) so that a newer operator's run.json still runs on an older runner image. Secrets are
never in the file, only the names of the environment variables holding them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from arenastack_arena.evaluation.errors import ConfigError
from arenastack_arena.evaluation.prompts import Prompt, PromptError, parse_jsonl
from arenastack_arena.evaluation.template import JudgeTemplate, TemplateError
from arenastack_arena.evaluation.verdicts import RULE_BOTH, RULE_TIE

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "/etc/arenastack/run/run.json"
# The operator's default when a contestant sets no maxTokens (builders.DEFAULT_MAX_TOKENS).
DEFAULT_MAX_TOKENS = 512
# run.json has no timeout for contestants: a long answer on a busy engine may take minutes.
ANSWER_TIMEOUT_SECONDS = 300.0
MAX_TEMPLATE_BYTES = 256 * 1024


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )


class Endpoint(_Model):
    """An OpenAI-compatible endpoint and the model asked there."""

    name: str = Field(min_length=1, max_length=200)
    base_url: str = Field(alias="baseURL", pattern=r"^https?://", max_length=2048)
    model: str = Field(min_length=1, max_length=256)
    api_key_env: str | None = Field(default=None, min_length=1, max_length=253)
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=1, le=1_000_000)


class Contestant(Endpoint):
    temperature: float | None = Field(default=None, ge=0, le=2)
    system_prompt: str | None = None
    family: str | None = None
    price_per_million_tokens: float | None = Field(default=None, ge=0)


class Judge(Endpoint):
    name: str = Field(default="judge", min_length=1, max_length=200)
    structured_output: bool = False
    scale: Literal["three", "five"] = "three"
    strong_win_weight: int = Field(default=3, ge=1, le=10)
    both_orders: bool = True
    on_disagreement: Literal["tie", "bothGames"] = "tie"
    reference_guided: bool = True
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=1024, ge=1, le=1_000_000)
    retries: int = Field(default=2, ge=0, le=10)
    timeout_seconds: float = Field(default=300, gt=0, le=86400)
    source: str | None = Field(default=None, pattern=r"^judge:[^\x00-\x1f\x7f]{1,200}$")
    family: str | None = None
    template_file: str | None = None

    @property
    def verdict_source(self) -> str:
        """The arena source of this judge's verdicts (the operator sets it: judge:<model>)."""
        return self.source or f"judge:{self.model}"

    @property
    def rule(self) -> str:
        """verdicts.combine's rule for two orders that disagree."""
        return RULE_BOTH if self.on_disagreement == "bothGames" else RULE_TIE


class FromArena(_Model):
    category: str | None = None
    limit: int = Field(default=100, ge=1, le=10_000)


class Prompts(_Model):
    inline: list[dict[str, Any]] | None = Field(default=None, min_length=1)
    file: str | None = Field(default=None, min_length=1)
    from_arena: FromArena | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Prompts:
        given = [self.inline is not None, self.file is not None, self.from_arena is not None]
        if sum(given) != 1:
            raise ValueError("set exactly one of inline, file and fromArena")
        return self


class Battles(_Model):
    mode: Literal["allPairs", "adaptive"] = "allPairs"
    budget: int | None = Field(default=None, ge=1, le=1_000_000)
    seed: int = 0
    baseline: str | None = None

    @model_validator(mode="after")
    def _budget(self) -> Battles:
        if self.mode == "adaptive" and self.budget is None:
            raise ValueError("budget is required with mode adaptive")
        return self


class Arena(_Model):
    url: str = Field(pattern=r"^https?://", max_length=2048)
    token_env: str | None = Field(default=None, min_length=1, max_length=253)


class Evaluation(_Model):
    namespace: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    name: str = Field(pattern=r"^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$")
    uid: str = Field(min_length=1, max_length=128)
    run: int = Field(ge=0, le=2**31 - 1)

    @property
    def key(self) -> str:
        """namespace/name: how the arena names the evaluation."""
        return f"{self.namespace}/{self.name}"

    @property
    def scope(self) -> str:
        """What battle ids are derived from: the evaluation *and* its run.

        A new run (a changed spec: another judge, other contestants) must judge its battles
        afresh, while a restarted runner of the same run must find its own; the arena lists
        stored ids of every run of an evaluation, so the run is part of the id.
        """
        return f"{self.uid}/run-{self.run}"


class RunConfig(_Model):
    evaluation: Evaluation
    contestants: list[Contestant] = Field(min_length=2, max_length=256)
    judge: Judge
    prompts: Prompts
    battles: Battles = Field(default_factory=Battles)
    arena: Arena
    concurrency: int = Field(default=8, ge=1, le=1024)

    @model_validator(mode="after")
    def _names(self) -> RunConfig:
        names = [c.name for c in self.contestants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate contestant names: {', '.join(duplicates)}")
        baseline = self.battles.baseline
        if baseline is not None and baseline not in names and self.prompts.from_arena is None:
            raise ValueError(f"battles.baseline {baseline!r} is not one of the contestants")
        return self

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.contestants]


def _where(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _unknown_fields(model: BaseModel, where: str = "") -> list[str]:
    """Fields of run.json this runner does not know (extra="allow" keeps them)."""
    out = [f"{where}{'.' if where else ''}{k}" for k in (model.model_extra or {})]
    for name, value in model:
        here = f"{where}{'.' if where else ''}{name}"
        items = value if isinstance(value, list) else [value]
        for k, item in enumerate(items):
            if isinstance(item, BaseModel):
                out += _unknown_fields(item, f"{here}[{k}]" if isinstance(value, list) else here)
    return out


def parse_config(data: Any, source: str = "run.json") -> RunConfig:
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = _where(first["loc"]) or "(top level)"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise ConfigError(f"{source}: {where}: {first['msg']}{more}") from None
    unknown = _unknown_fields(config)
    if unknown:
        log.warning("%s: ignoring unknown fields: %s", source, ", ".join(unknown))
    return config


def load_config(path: str | Path) -> RunConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path}: bad JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    return parse_config(data, Path(path).name)


def load_prompts(config: RunConfig) -> list[Prompt]:
    """The prompts of an inline or file source (fromArena battles come from the arena)."""
    spec = config.prompts
    if spec.inline is not None:
        # Inline prompts are the same objects as a prompt file's lines: one parser for both.
        # Their ids default to the position (1-based, like a file's line numbers).
        text = "\n".join(json.dumps(p) for p in spec.inline)
        source = "prompts.inline"
    elif spec.file is not None:
        try:
            text = Path(spec.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"prompts.file: cannot read {spec.file}: {err}") from None
        source = f"prompts.file {spec.file}"
    else:
        return []
    try:
        prompts = parse_jsonl(text, source)
    except PromptError as err:
        raise ConfigError(str(err)) from None
    if not prompts:
        raise ConfigError(f"{source}: no prompts")
    if not config.judge.reference_guided:
        prompts = [replace(p, reference=None) for p in prompts]
    return prompts


def load_template(config: RunConfig) -> JudgeTemplate:
    path = config.judge.template_file
    if path is None:
        return JudgeTemplate()
    try:
        raw = Path(path).read_bytes()[: MAX_TEMPLATE_BYTES + 1]
        if len(raw) > MAX_TEMPLATE_BYTES:
            raise ConfigError(f"judge.templateFile: {path} is over {MAX_TEMPLATE_BYTES} bytes")
        return JudgeTemplate(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"judge.templateFile: cannot read {path}: {err}") from None
    except TemplateError as err:
        raise ConfigError(f"judge.templateFile: {err}") from None


@dataclass(frozen=True, repr=False)
class Secrets:
    """Keys and the arena token from the environment. ``repr`` never shows them."""

    keys: Mapping[str, str | None]  # contestant name -> API key
    judge_key: str | None
    arena_token: str | None

    def __repr__(self) -> str:
        return "Secrets(<hidden>)"


# The operator's name for the arena token variable (names.ENV_ARENA_TOKEN): used when run.json
# names none, as the chart's default token is then given to the Job under this name, if at all.
DEFAULT_TOKEN_ENV = "ARENA_JUDGE_TOKEN"


def resolve_secrets(config: RunConfig, environ: Mapping[str, str] | None = None) -> Secrets:
    env = os.environ if environ is None else environ

    def need(field: str, var: str | None) -> str | None:
        if var is None:
            return None
        value = env.get(var)
        if not value:
            raise ConfigError(f"{field}: environment variable {var} is not set")
        return value.strip()

    keys = {
        c.name: need(f"contestants[{k}].apiKeyEnv", c.api_key_env)
        for k, c in enumerate(config.contestants)
    }
    judge_key = need("judge.apiKeyEnv", config.judge.api_key_env)
    if config.arena.token_env is not None:
        token = need("arena.tokenEnv", config.arena.token_env)
    else:
        token = (env.get(DEFAULT_TOKEN_ENV) or "").strip() or None
    return Secrets(keys, judge_key, token)
