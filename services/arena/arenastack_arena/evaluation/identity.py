"""Deterministic identities of battles and judgments, and the plan of battles.

Identities are hashes of what a battle is, never of when it ran, so a runner
that restarts recomputes the same ids and skips the judgments already stored.
A battle's id covers which model was shown as A: the "ab" judgment of
(x as A, y as B) is a different judgment from the "ab" of (y as A, x as B), and
mixing them up would mirror a verdict the wrong way.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

from arenastack_arena.evaluation.prompts import Prompt

ID_CHARS = 24  # 96 bits of sha256: no collisions at any plausible battle count
# Part of every hash: bump it if the inputs change, so old ids cannot be reused.
ID_VERSION = "arenastack-evaluation-1"
ORDER_AB = "ab"  # model_a's answer shown first, as assistant A
ORDER_BA = "ba"  # the swapped order: model_b's answer shown as assistant A
ORDERS = (ORDER_AB, ORDER_BA)


def _digest(*parts: str | int) -> str:
    # JSON keeps the parts apart: no model name can contain a separator that
    # makes two different tuples hash alike.
    payload = json.dumps([ID_VERSION, *parts], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:ID_CHARS]


def canonical_pair(model_a: str, model_b: str) -> tuple[str, str, int]:
    """(lower name, higher name, 0 when model_a is the lower one else 1)."""
    if model_a == model_b:
        raise ValueError("a battle needs two different models")
    return (model_a, model_b, 0) if model_a < model_b else (model_b, model_a, 1)


def battle_id(evaluation_uid: str, prompt_id: str, model_a: str, model_b: str) -> str:
    lo, hi, first = canonical_pair(model_a, model_b)
    return _digest("battle", evaluation_uid, prompt_id, lo, hi, first)


def judgment_id(battle_id: str, order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; expected one of {', '.join(ORDERS)}")
    return _digest("judgment", battle_id, order)


@dataclass(frozen=True)
class Battle:
    prompt_id: str
    model_a: str
    model_b: str

    def id(self, evaluation_uid: str) -> str:
        return battle_id(evaluation_uid, self.prompt_id, self.model_a, self.model_b)

    def shown(self, order: str) -> tuple[str, str]:
        """The models shown as assistant A and as assistant B in this order."""
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}")
        return (self.model_a, self.model_b) if order == ORDER_AB else (self.model_b, self.model_a)


@dataclass(frozen=True)
class Judgment:
    id: str
    battle: Battle
    order: str


@dataclass(frozen=True)
class Plan:
    battles: tuple[Battle, ...]

    def __len__(self) -> int:
        return len(self.battles)

    def __iter__(self) -> Iterator[Battle]:
        return iter(self.battles)

    def judgments(self, evaluation_uid: str) -> list[Judgment]:
        """Both orders of every battle, battle by battle."""
        out = []
        for battle in self.battles:
            bid = battle.id(evaluation_uid)
            out.extend(Judgment(judgment_id(bid, order), battle, order) for order in ORDERS)
        return out

    def pending(self, evaluation_uid: str, done: Collection[str]) -> list[Judgment]:
        """The judgments whose ids are not in ``done`` (what a restarted runner still owes)."""
        return [j for j in self.judgments(evaluation_uid) if j.id not in done]


def all_pairs(
    prompts: Sequence[Prompt] | Sequence[str], contestants: Sequence[str], seed: int | str
) -> Plan:
    """Every unordered pair of contestants on every prompt, sides balanced per pair.

    Over the prompts each pair is shown each way round equally often (within
    one); which prompts get which side is a seeded shuffle. Sides come from
    hashes of (seed, pair, prompt), so they do not depend on the order the
    prompts or contestants are listed in.
    """
    ids = [p.id if isinstance(p, Prompt) else p for p in prompts]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate prompt ids")
    if len(set(contestants)) != len(contestants):
        raise ValueError("duplicate contestants")
    if len(contestants) < 2:
        raise ValueError("a plan needs at least two contestants")
    lo_first: dict[tuple[str, str, str], bool] = {}
    for lo, hi in itertools.combinations(sorted(contestants), 2):
        ranked = sorted(ids, key=lambda pid, lo=lo, hi=hi: _digest("side", seed, lo, hi, pid))
        # Alternating along a random ranking is what keeps the split within one;
        # an independent coin per prompt would drift like a random walk.
        start = int(_digest("start", seed, lo, hi), 16) % 2
        for rank, pid in enumerate(ranked):
            lo_first[(pid, lo, hi)] = (rank + start) % 2 == 0
    battles = []
    for pid in ids:
        for lo, hi in itertools.combinations(sorted(contestants), 2):
            a, b = (lo, hi) if lo_first[(pid, lo, hi)] else (hi, lo)
            battles.append(Battle(pid, a, b))
    return Plan(tuple(battles))
