"""Battles: two anonymous models answer the same conversation side by side.

Both answers stream concurrently from their endpoints into one event stream
for the client. A side that fails or times out ends with an error event while
the other goes on; such a turn is not votable, so infrastructure failures never
become rating data. Model names stay server-side until the vote.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from arenastack_arena.service.boards import LeaderboardCache
from arenastack_arena.service.metrics import Metrics
from arenastack_arena.service.sampling import sample_pair
from arenastack_arena.service.settings import Settings
from arenastack_arena.service.store import ModelEntry, Store, Vote
from arenastack_arena.service.style_features import total_style
from arenastack_arena.service.upstream import UpstreamError, stream_chat

SIDES = ("a", "b")
MAX_CACHED_BATTLES = 50_000
# The registry is re-read at most this often (admin changes made through this
# replica apply at once; other replicas' changes within this delay).
REGISTRY_TTL_S = 10.0


class BattleError(Exception):
    """A request the battle's state does not allow; ``status`` is the HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class BattleState:
    id: str
    model_a: str
    model_b: str
    category: str | None
    prompts: list[str] = field(default_factory=list)
    answers: list[tuple[str, str]] = field(default_factory=list)
    streaming: bool = False
    failed: bool = False
    voted: bool = False

    def messages(self, side: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for n, prompt in enumerate(self.prompts):
            out.append({"role": "user", "content": prompt})
            if n < len(self.answers):
                out.append({"role": "assistant", "content": self.answers[n][side]})
        return out


class BattleService:
    def __init__(
        self, store: Store, settings: Settings, metrics: Metrics, boards: LeaderboardCache
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.boards = boards
        self.rng = random.Random()
        self.session: aiohttp.ClientSession | None = None
        self._states: OrderedDict[str, BattleState] = OrderedDict()
        self._registry: dict[str, ModelEntry] = {}
        self._registry_at = -REGISTRY_TTL_S

    def registry_changed(self) -> None:
        self._registry_at = -REGISTRY_TTL_S

    async def registry(self) -> dict[str, ModelEntry]:
        if time.monotonic() - self._registry_at >= REGISTRY_TTL_S:
            self._registry = {m.name: m for m in await self.store.models()}
            self._registry_at = time.monotonic()
        return self._registry

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _remember(self, state: BattleState) -> None:
        self._states[state.id] = state
        self._states.move_to_end(state.id)
        while len(self._states) > MAX_CACHED_BATTLES:
            self._states.popitem(last=False)

    async def state(self, battle_id: str) -> BattleState:
        cached = self._states.get(battle_id)
        if cached is not None:
            return cached
        row = await self.store.battle(battle_id)
        if row is None:
            raise BattleError(404, f"battle {battle_id!r} not found")
        state = BattleState(battle_id, row["model_a"], row["model_b"], row["category"])
        for t in row["turns"]:
            state.prompts.append(t["prompt"])
            if t["answer_a"] is not None or t["error_a"] is not None:
                state.answers.append((t["answer_a"] or "", t["answer_b"] or ""))
                state.failed = state.failed or bool(t["error_a"] or t["error_b"])
        # A turn with no stored answers was cut off (client gone, restart).
        state.failed = state.failed or len(state.answers) < len(state.prompts)
        state.voted = row["winner"] is not None
        self._remember(state)
        return state

    async def create(self, prompt: str, category: str | None) -> BattleState:
        active = [m.name for m in (await self.registry()).values() if m.active]
        current = self.boards.current
        try:
            a, b = sample_pair(active, current.pair_votes, current.model_votes, self.rng)
        except ValueError as err:
            raise BattleError(409, str(err)) from None
        state = BattleState(
            secrets.token_urlsafe(16), a, b, category, prompts=[prompt], streaming=True
        )
        await self.store.create_battle(state.id, a, b, category, prompt)
        self._remember(state)
        self.metrics.battles_started.inc()
        return state

    async def add_turn(self, battle_id: str, prompt: str) -> BattleState:
        state = await self.state(battle_id)
        if state.voted:
            raise BattleError(409, "battle already voted; start a new one")
        if state.streaming:
            raise BattleError(409, "answers are still streaming")
        if state.failed:
            raise BattleError(409, "a model failed in this battle; start a new one")
        if len(state.prompts) >= self.settings.max_turns:
            raise BattleError(409, f"battle reached the limit of {self.settings.max_turns} turns")
        state.streaming = True
        state.prompts.append(prompt)
        try:
            await self.store.add_turn(battle_id, len(state.prompts), prompt)
        except Exception:
            state.prompts.pop()
            state.streaming = False
            raise
        return state

    async def stream_turn(self, state: BattleState) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Events (name, payload) for the turn just started; stores its answers at the end."""
        turn = len(state.prompts)
        yield "battle", {"battle_id": state.id, "turn": turn}
        registry = await self.registry()
        entries = [registry.get(state.model_a), registry.get(state.model_b)]
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
        texts = ["", ""]
        errors: list[str | None] = [None, None]

        async def run(side: int) -> None:
            entry = entries[side]
            started = time.monotonic()
            try:
                if entry is None:
                    raise UpstreamError("unregistered", "model no longer registered")
                assert self.session is not None
                async for delta in stream_chat(
                    self.session,
                    entry,
                    state.messages(side),
                    self.settings.upstream_first_token_timeout_s,
                    self.settings.upstream_timeout_s,
                    self.settings.max_answer_chars,
                    self.settings.max_answer_tokens,
                ):
                    texts[side] += delta
                    await queue.put(("delta", {"side": SIDES[side], "text": delta}))
                self.metrics.upstream_latency.labels(_label(entry)).observe(
                    time.monotonic() - started
                )
                await queue.put(("done", {"side": SIDES[side]}))
            except UpstreamError as err:
                errors[side] = err.kind
                self.metrics.upstream_errors.labels(_label(entry), err.kind).inc()
                await queue.put(
                    ("error", {"side": SIDES[side], "message": f"model failed to answer ({err})"})
                )
            finally:
                await queue.put(None)

        tasks = [asyncio.create_task(run(side)) for side in range(2)]
        finished = 0
        try:
            while finished < 2:
                item = await queue.get()
                if item is None:
                    finished += 1
                    continue
                yield item
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
            state.streaming = False
        if finished == 2:
            await self.store.finish_turn(
                state.id, turn, (texts[0], texts[1]), (errors[0], errors[1])
            )
            state.answers.append((texts[0], texts[1]))
            state.failed = state.failed or any(errors)
            if not any(errors):
                self.metrics.battles_completed.inc()
            yield "end", {"votable": not state.failed and not state.voted}
        else:
            state.failed = True

    async def vote(self, battle_id: str, winner: str, client: str) -> dict[str, Any]:
        state = await self.state(battle_id)
        if state.streaming:
            raise BattleError(409, "answers are still streaming")
        if state.failed or not state.answers:
            raise BattleError(409, "a model failed in this battle, so it cannot be rated")
        if state.voted:
            raise BattleError(409, "this battle already has a vote")
        vote = Vote(
            battle_id=battle_id,
            model_a=state.model_a,
            model_b=state.model_b,
            winner=winner,
            judge="arena_user_" + hashlib.sha256(client.encode()).hexdigest()[:12],
            turn=len(state.answers),
            category=state.category,
            style_a=total_style([a for a, _ in state.answers]),
            style_b=total_style([b for _, b in state.answers]),
        )
        if not await self.store.record_vote(vote):
            state.voted = True
            raise BattleError(409, "this battle already has a vote")
        state.voted = True
        self.metrics.votes.labels(winner).inc()
        self.boards.note_vote()
        return await self.reveal(state, winner)

    async def reveal(self, state: BattleState, winner: str) -> dict[str, Any]:
        registry = await self.registry()
        entries = [registry.get(state.model_a), registry.get(state.model_b)]
        return {
            "battle_id": state.id,
            "winner": winner,
            "model_a": entries[0].public() if entries[0] else {"name": state.model_a},
            "model_b": entries[1].public() if entries[1] else {"name": state.model_b},
        }


def _label(entry: ModelEntry | None) -> str:
    return entry.name if entry is not None else "unknown"
