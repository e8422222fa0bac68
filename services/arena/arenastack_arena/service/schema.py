"""Request bodies and identifier patterns shared by the routes.

A judged battle's body is camelCase, as the evaluation runner
(``arenastack_arena.evaluation``) posts it. Every text in it comes from models
and is untrusted: sizes are capped here, and nothing renders it as markup.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from arenastack_arena.service.sources import JUDGE_SOURCE_PATTERN, MAX_NAME, NAME_TEXT_PATTERN

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$"
BATTLE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# Kubernetes names: the namespace is a DNS label, the object name a DNS subdomain.
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$"
EVALUATION_PATTERN = NAMESPACE_PATTERN.removesuffix("$") + "/" + OBJECT_NAME_PATTERN[1:]
# No ":" (board names use it: "overall:style") and nothing that needs escaping.
JUDGED_CATEGORY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,62}$"
Winner = Literal["model_a", "model_b", "tie", "tie (bothbad)"]
Order = Literal["ab", "ba"]
MAX_TEXT_CHARS = 64 * 1024
MAX_JUDGED_TURNS = 16
MAX_GAMES = 2
MAX_WEIGHT = 10
MAX_VERDICT_CHARS = 16
MAX_ARENA_BATTLES = 10_000  # the most an ArenaEvaluation's fromArena.limit asks for


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Camel(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel)


def _text(**kwargs: Any) -> Any:
    return Field(max_length=MAX_TEXT_CHARS, **kwargs)


class JudgedTurn(Camel):
    prompt: str = _text(min_length=1)
    answer_a: str = _text()
    answer_b: str = _text()


class Judgment(Camel):
    order: Order = Field(description='"ab": model A shown first; "ba": the answers swapped')
    verdict: str | None = Field(default=None, max_length=MAX_VERDICT_CHARS)
    reason: str | None = _text(default=None)
    raw: str | None = _text(default=None, description="The judge's whole reply")
    error: str | None = _text(default=None)


class Game(Camel):
    winner: Winner
    weight: int = Field(default=1, ge=1, le=MAX_WEIGHT, description="A strong win may count 3")


class JudgedBattleBody(Camel):
    evaluation: str = Field(pattern=EVALUATION_PATTERN, description="namespace/name")
    run: int = Field(ge=0, le=2**31 - 1, description="The generation that judged it")
    battle_id: str = Field(pattern=BATTLE_ID_PATTERN)
    arena_battle_id: str | None = Field(default=None, pattern=BATTLE_ID_PATTERN)
    source: str = Field(pattern=JUDGE_SOURCE_PATTERN, description='"judge:<judge model>"')
    category: str | None = Field(default=None, pattern=JUDGED_CATEGORY_PATTERN)
    model_a: str = Field(pattern=NAME_TEXT_PATTERN, max_length=MAX_NAME)
    model_b: str = Field(pattern=NAME_TEXT_PATTERN, max_length=MAX_NAME)
    turns: list[JudgedTurn] = Field(min_length=1, max_length=MAX_JUDGED_TURNS)
    judgments: list[Judgment] = Field(min_length=1, max_length=2)
    games: list[Game] = Field(max_length=MAX_GAMES)
    consistent: bool | None = None

    @model_validator(mode="after")
    def _pair_and_orders(self) -> JudgedBattleBody:
        if self.model_a == self.model_b:
            raise ValueError("modelA and modelB must differ")
        orders = [j.order for j in self.judgments]
        if len(set(orders)) != len(orders):
            raise ValueError("judgments: each order at most once")
        return self
