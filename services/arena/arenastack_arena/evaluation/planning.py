"""Which battles a run fights: all pairs, an adaptive budget, or human-voted arena battles.

Battle ids come from ``identity.battle_id`` over the run's scope (``Evaluation.scope``), the
prompt and the sides, so a restarted runner plans the same ids and skips those the arena
already stores.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from arenastack_arena.evaluation.identity import all_pairs, battle_id
from arenastack_arena.evaluation.prompts import DEFAULT_CATEGORY, Prompt
from arenastack_arena.evaluation.sampling import AdaptiveSampler, Sampler, Tally

log = logging.getLogger(__name__)

ARENA_PROMPT_PREFIX = "arena:"


@dataclass(frozen=True)
class PlannedBattle:
    id: str
    prompt: Prompt
    model_a: str
    model_b: str
    # fromArena: the arena battle re-judged, its answers (one per turn) and the human vote.
    arena_battle_id: str | None = None
    answers: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    human_winner: str | None = None


def pending(battles: Iterable[PlannedBattle], stored: Collection[str]) -> list[PlannedBattle]:
    """The battles whose ids the arena does not hold yet (what a restarted runner still owes)."""
    return [b for b in battles if b.id not in stored]


def plan_all_pairs(
    prompts: Sequence[Prompt],
    contestants: Sequence[str],
    scope: str,
    seed: int,
    budget: int | None = None,
) -> list[PlannedBattle]:
    """Every unordered pair on every prompt, seeded sides, prompt by prompt; the first
    ``budget`` of them when capped (whole prompts first, so every pair keeps its share)."""
    by_id = {p.id: p for p in prompts}
    plan = all_pairs(prompts, contestants, seed)
    battles = plan.battles if budget is None else plan.battles[:budget]
    return [
        PlannedBattle(
            battle_id(scope, b.prompt_id, b.model_a, b.model_b),
            by_id[b.prompt_id],
            b.model_a,
            b.model_b,
        )
        for b in battles
    ]


def plan_from_arena(
    battles: Iterable[Mapping[str, Any]], scope: str, budget: int | None = None
) -> tuple[list[PlannedBattle], list[str]]:
    """(battles to re-judge as they are, why others were skipped) from GET /api/arena-battles."""
    planned: list[PlannedBattle] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for row in battles:
        if budget is not None and len(planned) >= budget:
            break
        arena_id = row.get("id")
        try:
            a, b = str(row["modelA"]), str(row["modelB"])
            turns = row["turns"]
            if not isinstance(arena_id, str) or not arena_id or arena_id in seen:
                raise ValueError("missing or repeated id")
            if not isinstance(turns, list) or not turns:
                raise ValueError("no turns")
            questions = [str(t["prompt"]) for t in turns]
            answers_a = tuple(str(t["answerA"]) for t in turns)
            answers_b = tuple(str(t["answerB"]) for t in turns)
            category = row.get("category")
            prompt = Prompt(
                id=ARENA_PROMPT_PREFIX + arena_id,
                turns=questions,
                category=category if isinstance(category, str) and category else DEFAULT_CATEGORY,
            )
            bid = battle_id(scope, prompt.id, a, b)
        except (KeyError, TypeError, ValueError) as err:
            skipped.append(f"arena battle {arena_id!r}: {err}")
            continue
        seen.add(arena_id)
        winner = row.get("winner")
        planned.append(
            PlannedBattle(
                bid,
                prompt,
                a,
                b,
                arena_id,
                (answers_a, answers_b),
                winner if isinstance(winner, str) else None,
            )
        )
    return planned, skipped


class AdaptivePlanner:
    """A budget of battles in rounds: the sampler picks pairs from the games judged so far.

    The first round fights every pair not played yet once; after that each round asks the
    sampler for ``k`` pairs. A chosen pair takes the next prompt it has not fought on, in
    prompt order (so battles of different pairs share answers), cycling when all are used;
    a repeated prompt gets its own battle id (``<prompt>#<cycle>``) and the sides swapped
    on odd cycles. Battles already stored (before a restart) are skipped and count against
    the budget; their games are in the tally the caller passes.
    """

    def __init__(
        self,
        prompts: Sequence[Prompt],
        contestants: Sequence[str],
        scope: str,
        seed: int,
        budget: int,
        stored: Collection[str] = frozenset(),
        already: int = 0,
        sampler: Sampler | None = None,
    ) -> None:
        if not prompts:
            raise ValueError("adaptive battles need prompts")
        self.prompts = list(prompts)
        self.contestants = list(contestants)
        self.scope = scope
        self.seed = seed
        self.stored = stored
        self.remaining = max(0, budget - already)
        self.sampler = sampler or AdaptiveSampler(seed)
        self._cursor: dict[tuple[str, str], int] = {}
        self._lo_first: dict[tuple[str, str], list[bool]] = {}
        self.rounds = 0

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [tuple(sorted(p)) for p in itertools.combinations(self.contestants, 2)]

    def _sides(self, lo: str, hi: str) -> list[bool]:
        # The same sides all_pairs gives this pair: a pair's sides depend on it alone.
        if (lo, hi) not in self._lo_first:
            plan = all_pairs(self.prompts, [lo, hi], self.seed)
            self._lo_first[(lo, hi)] = [b.model_a == lo for b in plan.battles]
        return self._lo_first[(lo, hi)]

    def next_battle(self, pair: tuple[str, str]) -> PlannedBattle:
        lo, hi = sorted(pair)
        sides = self._sides(lo, hi)
        while True:
            n = self._cursor.get((lo, hi), 0)
            self._cursor[(lo, hi)] = n + 1
            cycle, k = divmod(n, len(self.prompts))
            prompt = self.prompts[k]
            a, b = (lo, hi) if sides[k] != (cycle % 2 == 1) else (hi, lo)
            key = prompt.id if cycle == 0 else f"{prompt.id}#{cycle}"
            bid = battle_id(self.scope, key, a, b)
            if bid not in self.stored:
                return PlannedBattle(bid, prompt, a, b)

    def first_round(self, tally: Tally) -> list[PlannedBattle]:
        games = tally.games()
        fresh = [p for p in self.pairs if games[tally.index(p[0]), tally.index(p[1])] == 0]
        if len(fresh) > self.remaining:
            order = np.random.default_rng(self.seed).permutation(len(fresh))
            fresh = [fresh[k] for k in sorted(order[: self.remaining])]
        return self._take(fresh)

    def next_round(self, tally: Tally, k: int) -> list[PlannedBattle]:
        k = min(k, self.remaining)
        if k <= 0:
            return []
        return self._take(self.sampler.choose(tally, k))

    def _take(self, pairs: Sequence[tuple[str, str]]) -> list[PlannedBattle]:
        battles = [self.next_battle(p) for p in pairs]
        self.remaining -= len(battles)
        if battles:
            self.rounds += 1
        return battles
