"""The asyncio pipeline: answers and judgments overlapped, ``concurrency`` requests in flight.

FastChat runs two steps, every answer first and then every judgment, so each step's tail
leaves the engines' batches half empty. Here one pool of request slots serves both: a battle
is judged (both orders at once) as soon as its two answers exist, while other answers are
still being generated. Each (prompt, contestant) answer is generated once, as one task that
every battle needing it awaits. Judgments get free slots before new answers, so finished
battles leave the pipeline early and the answers they held can be dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from arenastack_arena.evaluation.arena_client import ArenaClient, Rejected
from arenastack_arena.evaluation.config import Contestant, RunConfig
from arenastack_arena.evaluation.errors import ConfigError, RunnerError, Unreachable
from arenastack_arena.evaluation.fences import new_nonce
from arenastack_arena.evaluation.identity import ORDER_AB, ORDER_BA
from arenastack_arena.evaluation.judging import (
    OrderResult,
    battle_body,
    games_of,
    judge_request,
    response_format,
)
from arenastack_arena.evaluation.openai_client import ChatClient, ChatError, backoff
from arenastack_arena.evaluation.planning import PlannedBattle
from arenastack_arena.evaluation.prompts import Prompt
from arenastack_arena.evaluation.template import JudgeTemplate
from arenastack_arena.evaluation.verdicts import Game, VerdictParseError, parse_verdict

log = logging.getLogger(__name__)

ANSWER_RETRIES = 2
JUDGE_PRIORITY = 0  # a judgment frees a battle (and its answers): first in line for a slot
ANSWER_PRIORITY = 1
POSTS_IN_FLIGHT = 8  # arena writes are cheap and acknowledged after a group commit


@dataclass
class Progress:
    """The counts written to status.progress (camelCase there)."""

    planned: int = 0
    answered: int = 0  # battles with both answers
    judged: int = 0  # battles judged and stored
    errors: int = 0  # battles that failed (answer, judgment or a refused post)
    parse_errors: int = 0  # judge replies without a verdict that parses

    def as_status(self) -> dict[str, int]:
        return {
            "planned": self.planned,
            "answered": self.answered,
            "judged": self.judged,
            "errors": self.errors,
            "parseErrors": self.parse_errors,
        }


class Slots:
    """A semaphore whose waiters are served by priority (lower first), then in arrival order."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("at least one slot")
        self.size = size
        self._free = size
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self.in_use = 0
        self.peak = 0

    @contextlib.asynccontextmanager
    async def hold(self, priority: int) -> AsyncIterator[None]:
        await self._acquire(priority)
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            self.in_use -= 1
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrivals), future))
        try:
            await future
        except asyncio.CancelledError:
            # Handed a slot just as we were cancelled: pass it on.
            if future.done() and not future.cancelled():
                self._release()
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1


@dataclass(frozen=True)
class Answer:
    turns: tuple[str, ...] | None
    error: str | None = None


@dataclass(frozen=True)
class Stored:
    """A battle the arena now holds, for the caller's tally and report."""

    battle: PlannedBattle
    games: tuple[Game, ...]
    consistent: bool | None
    new: bool  # False: the arena had it already (a resend after a restart)


@dataclass
class Timeline:
    """When answering and judging happened (seconds since the pipeline was made): the
    overlap that the two-step way of FastChat does not have, shown in the summary."""

    started: float = field(default_factory=time.monotonic)
    first_judgment: float | None = None
    last_answer: float | None = None
    answers: int = 0  # (prompt, contestant) answers generated

    def mark_judgment(self) -> None:
        if self.first_judgment is None:
            self.first_judgment = round(time.monotonic() - self.started, 3)

    def mark_answer(self) -> None:
        self.answers += 1
        self.last_answer = round(time.monotonic() - self.started, 3)

    def as_summary(self) -> dict[str, float | int | None]:
        return {
            "answers": self.answers,
            "firstJudgmentSeconds": self.first_judgment,
            "lastAnswerSeconds": self.last_answer,
        }


def window_size(concurrency: int, contestants: int) -> int:
    """Battles in progress at once: enough ready requests to keep every slot busy even when
    all of one prompt's pairs wait on one slow answer, few enough to bound memory."""
    return max(4 * concurrency, concurrency + contestants * (contestants - 1) // 2)


def _first_fatal(group: BaseExceptionGroup) -> BaseException | None:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner = _first_fatal(exc)
            if inner is not None:
                return inner
        elif isinstance(exc, RunnerError):
            return exc
    return None


class Pipeline:
    def __init__(
        self,
        config: RunConfig,
        contestants: Mapping[str, ChatClient],
        judge: ChatClient,
        arena: ArenaClient,
        template: JudgeTemplate,
        progress: Progress,
        *,
        keep_answers: bool = False,
        on_stored: Callable[[Stored], None] | None = None,
    ) -> None:
        self.config = config
        self.contestants = contestants
        self.judge = judge
        self.arena = arena
        self.template = template
        self.progress = progress
        # Adaptive rounds may need an answer again later: keep them all then.
        self.keep_answers = keep_answers
        self.on_stored = on_stored
        self.slots = Slots(config.concurrency)
        self.timeline = Timeline()
        # Output tokens per contestant of the answers this process generated (for the cost).
        self.output_tokens: dict[str, int] = {}
        self._by_name: dict[str, Contestant] = {c.name: c for c in config.contestants}
        self._answers: dict[tuple[str, str], asyncio.Task[Answer]] = {}
        self._needs: Counter[tuple[str, str]] = Counter()
        self._posts = asyncio.Semaphore(POSTS_IN_FLIGHT)
        self._group: asyncio.TaskGroup | None = None
        self._format = response_format(config.judge)

    # -- the run -----------------------------------------------------------------------------

    async def run(self, battles: Sequence[PlannedBattle]) -> None:
        """Fights ``battles``; returns when each is stored or failed. A RunnerError (judge or
        arena unreachable, a refused key) stops everything and is raised as it is."""
        for b in battles:
            if b.answers is None:
                self._needs[(b.prompt.id, b.model_a)] += 1
                self._needs[(b.prompt.id, b.model_b)] += 1
        window = asyncio.Semaphore(window_size(self.config.concurrency, len(self.contestants)))
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for battle in battles:
                    await window.acquire()
                    group.create_task(self._windowed(battle, window))
        except BaseExceptionGroup as group_error:
            fatal = _first_fatal(group_error)
            if fatal is not None:
                raise fatal from None
            raise
        finally:
            self._group = None

    async def _windowed(self, battle: PlannedBattle, window: asyncio.Semaphore) -> None:
        try:
            await self._battle(battle)
        finally:
            window.release()

    # -- answers -----------------------------------------------------------------------------

    def _answer(self, prompt: Prompt, name: str) -> asyncio.Task[Answer]:
        key = (prompt.id, name)
        task = self._answers.get(key)
        if task is None:
            assert self._group is not None
            task = self._group.create_task(self._generate(prompt, name))
            self._answers[key] = task
        return task

    def _done_with(self, prompt: Prompt, name: str) -> None:
        key = (prompt.id, name)
        self._needs[key] -= 1
        if self._needs[key] <= 0:
            del self._needs[key]
            if not self.keep_answers:
                self._answers.pop(key, None)

    async def _generate(self, prompt: Prompt, name: str) -> Answer:
        """The contestant's answers turn by turn, its own earlier answers in the conversation."""
        contestant = self._by_name[name]
        client = self.contestants[name]
        messages: list[dict[str, str]] = []
        if contestant.system_prompt:
            messages.append({"role": "system", "content": contestant.system_prompt})
        answers: list[str] = []
        for turn in prompt.turns:
            messages.append({"role": "user", "content": turn})
            try:
                completion = await client.complete(
                    list(messages),
                    max_tokens=contestant.max_tokens,
                    temperature=contestant.temperature,
                    retries=ANSWER_RETRIES,
                    slot=lambda: self.slots.hold(ANSWER_PRIORITY),
                )
            except ChatError as err:
                log.warning("answer of %s to prompt %s failed: %s", name, prompt.id, err)
                return Answer(None, str(err))
            answers.append(completion.text)
            messages.append({"role": "assistant", "content": completion.text})
            if completion.tokens is not None:
                self.output_tokens[name] = self.output_tokens.get(name, 0) + completion.tokens
        self.timeline.mark_answer()
        return Answer(tuple(answers))

    # -- one battle --------------------------------------------------------------------------

    async def _battle(self, battle: PlannedBattle) -> None:
        try:
            if battle.answers is not None:
                answers_a, answers_b = battle.answers
            else:
                # shield: one battle's cancellation must not cancel an answer others share.
                first, second = await asyncio.gather(
                    asyncio.shield(self._answer(battle.prompt, battle.model_a)),
                    asyncio.shield(self._answer(battle.prompt, battle.model_b)),
                )
                if first.turns is None or second.turns is None:
                    self.progress.errors += 1
                    return
                answers_a, answers_b = first.turns, second.turns
            self.progress.answered += 1
            await self._judge_and_post(battle, answers_a, answers_b)
        finally:
            if battle.answers is None:
                self._done_with(battle.prompt, battle.model_a)
                self._done_with(battle.prompt, battle.model_b)

    async def _judge_and_post(
        self, battle: PlannedBattle, answers_a: Sequence[str], answers_b: Sequence[str]
    ) -> None:
        # One fresh nonce per battle, for both orders: no answer can know it in advance.
        nonce = new_nonce()
        orders = (ORDER_AB, ORDER_BA) if self.config.judge.both_orders else (ORDER_AB,)
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._judge(battle, answers_a, answers_b, order, nonce))
                for order in orders
            ]
        results = [t.result() for t in tasks]
        failed = [r for r in results if r.verdict is None]
        if failed:
            self.progress.errors += 1
            log.warning(
                "battle %s (%s vs %s, prompt %s) not judged: %s",
                battle.id,
                battle.model_a,
                battle.model_b,
                battle.prompt.id,
                "; ".join(f"{r.order}: {r.error}" for r in failed),
            )
            return
        games, consistent = games_of(results, self.config.judge)
        body = battle_body(self.config, battle, answers_a, answers_b, results, games, consistent)
        try:
            async with self._posts:
                new = await self.arena.post_judgment(body)
        except Rejected as err:
            self.progress.errors += 1
            log.warning("battle %s refused by the arena: %s", battle.id, err)
            return
        self.progress.judged += 1
        if self.on_stored is not None:
            self.on_stored(Stored(battle, games, consistent, new))

    async def _judge(
        self,
        battle: PlannedBattle,
        answers_a: Sequence[str],
        answers_b: Sequence[str],
        order: str,
        nonce: str,
    ) -> OrderResult:
        """One order: up to 1 + judge.retries attempts, for failed and unparseable replies alike.

        A reply without a verdict is never made a tie: after the last attempt the order has
        no verdict and the battle is not posted. If no attempt reached the judge at all, the
        judge is down: the run stops (exit 3) rather than fail every battle one by one.
        """
        judge = self.config.judge
        request = judge_request(battle, answers_a, answers_b, order, judge, self.template, nonce)
        error: str = "not attempted"
        raw: str | None = None
        reached = False
        for attempt in range(judge.retries + 1):
            self.timeline.mark_judgment()
            try:
                completion = await self.judge.complete(
                    request.messages,
                    max_tokens=judge.max_tokens,
                    temperature=judge.temperature,
                    response_format=self._format,
                    slot=lambda: self.slots.hold(JUDGE_PRIORITY),
                )
            except ChatError as err:
                _refused_judge(err)
                error = str(err)
                reached = reached or not err.unreachable
                if not err.retryable:
                    break
                if attempt < judge.retries:
                    await asyncio.sleep(backoff(attempt + 1, self.judge.backoff_base))
                continue
            reached = True
            raw = completion.text
            try:
                verdict = parse_verdict(raw, judge.scale, nonce)
            except VerdictParseError as err:
                self.progress.parse_errors += 1
                error = f"unparseable verdict: {err}"
                continue
            return OrderResult(order, verdict, raw)
        if not reached:
            raise Unreachable("judge", error)
        return OrderResult(order, None, raw, error)


def _refused_judge(err: ChatError) -> None:
    """A judge that refuses the key or does not know the model refuses every battle."""
    if err.status in (401, 403):
        raise ConfigError(f"judge.apiKeyEnv: the judge refused the request: {err}")
    if err.status == 404:
        raise ConfigError(f"judge.baseURL/judge.model: {err}")
