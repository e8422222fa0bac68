"""One run of an ArenaEvaluation, start to end: resume, plan, fight, rank, report.

1. Ask the arena which battles it already stores (a restarted runner skips them) and check
   that the judge answers at all.
2. Plan: all pairs, adaptive rounds, or the human-voted arena battles (fromArena).
3. Run the pipeline, writing status.progress every 2 s.
4. Rank this run's battles, re-read from the arena's export (so those judged before a
   restart count), and write ranking, leader, judge report and results to status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from arenastack_arena.evaluation import report
from arenastack_arena.evaluation.arena_client import ArenaClient, Rejected
from arenastack_arena.evaluation.config import ANSWER_TIMEOUT_SECONDS, RunConfig, Secrets
from arenastack_arena.evaluation.errors import ConfigError, Unreachable
from arenastack_arena.evaluation.kube_status import KubeTarget, NoStatus, StatusSink, StatusWriter
from arenastack_arena.evaluation.openai_client import ChatClient, ChatError
from arenastack_arena.evaluation.pipeline import POSTS_IN_FLIGHT, Pipeline, Progress, Stored
from arenastack_arena.evaluation.planning import (
    AdaptivePlanner,
    PlannedBattle,
    pending,
    plan_all_pairs,
    plan_from_arena,
)
from arenastack_arena.evaluation.prompts import Prompt
from arenastack_arena.evaluation.sampling import Tally
from arenastack_arena.evaluation.template import JudgeTemplate

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 2.0
# What the ranking needs of an export line; answers and replies are left behind.
EXPORT_FIELDS = (
    "battleId",
    "run",
    "source",
    "arenaBattleId",
    "modelA",
    "modelB",
    "games",
    "consistent",
)


def adaptive_round_size(config: RunConfig) -> int:
    """Battles per adaptive round after the first: enough to keep every slot busy, few
    enough that the sampler sees fresh games often."""
    pairs = len(config.contestants) * (len(config.contestants) - 1) // 2
    return max(2 * config.concurrency, pairs)


async def _progress_loop(status: StatusSink, progress: Progress, every: float) -> None:
    last: dict[str, int] | None = None
    while True:
        now = progress.as_status()
        if now != last and await status.write({"progress": now}):
            last = now
        await asyncio.sleep(every)


def this_run(rows: Sequence[Mapping[str, Any]], config: RunConfig) -> list[Mapping[str, Any]]:
    source = config.judge.verdict_source
    return [r for r in rows if r.get("run") == config.evaluation.run and r.get("source") == source]


async def run(
    config: RunConfig,
    secrets: Secrets,
    prompts: Sequence[Prompt],
    template: JudgeTemplate,
    kube: KubeTarget | None = None,
    backoff_base: float = 1.0,
    progress_every: float = PROGRESS_EVERY_SECONDS,
) -> dict[str, Any]:
    """The run; returns the summary (what the final status holds, plus counts)."""
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=config.concurrency + POSTS_IN_FLIGHT + 8)
    async with aiohttp.ClientSession(connector=connector) as session:
        arena = ArenaClient(
            session, config.arena.url, secrets.arena_token, backoff_base=backoff_base
        )
        judge = ChatClient(
            session,
            config.judge.base_url,
            config.judge.model,
            secrets.judge_key,
            config.judge.timeout_seconds,
            backoff_base,
        )
        contestants = {
            c.name: ChatClient(
                session,
                c.base_url,
                c.model,
                secrets.keys.get(c.name),
                ANSWER_TIMEOUT_SECONDS,
                backoff_base,
            )
            for c in config.contestants
        }
        ev = config.evaluation
        try:
            stored = await arena.stored_ids(ev.key)
        except Rejected as err:
            raise ConfigError(f"arena.url: {config.arena.url} has no judge API: {err}") from None
        log.info("arena holds %d battles of %s", len(stored), ev.key)
        try:
            await judge.reachable(retries=config.judge.retries)
        except ChatError as err:
            raise Unreachable("judge", str(err)) from None

        status: StatusSink = (
            StatusWriter(session, kube, ev.namespace, ev.name, ev.run) if kube else NoStatus()
        )
        progress = Progress()
        tally = Tally.empty(config.names)
        planner: AdaptivePlanner | None = None
        todo: list[PlannedBattle] = []
        human: dict[str, str] = {}
        if config.prompts.from_arena is not None:
            spec = config.prompts.from_arena
            rows = await arena.arena_battles(spec.category, spec.limit)
            planned, skipped = plan_from_arena(rows, ev.scope, config.battles.budget)
            for why in skipped:
                log.warning("not re-judged: %s", why)
            human = {
                b.arena_battle_id: b.human_winner
                for b in planned
                if b.arena_battle_id and b.human_winner
            }
            todo = pending(planned, stored)
            progress.planned = len(planned)
            resumed = len(planned) - len(todo)
        elif config.battles.mode == "allPairs":
            planned = plan_all_pairs(
                prompts, config.names, ev.scope, config.battles.seed, config.battles.budget
            )
            todo = pending(planned, stored)
            progress.planned = len(planned)
            resumed = len(planned) - len(todo)
        else:
            assert config.battles.budget is not None  # the config requires it
            before = (
                this_run(await arena.export(ev.namespace, ev.name, EXPORT_FIELDS), config)
                if stored
                else []
            )
            known = set(config.names)
            before = [r for r in before if {r.get("modelA"), r.get("modelB")} <= known]
            for row in before:
                for game in row.get("games") or []:
                    tally.add(row["modelA"], row["modelB"], game["winner"], game["weight"])
            resumed = len(before)
            planner = AdaptivePlanner(
                prompts,
                config.names,
                ev.scope,
                config.battles.seed,
                config.battles.budget,
                stored,
                already=resumed,
            )
            progress.planned = config.battles.budget
        progress.answered = progress.judged = resumed
        log.info("%d battles planned, %d judged before", progress.planned, resumed)

        def stored_battle(result: Stored) -> None:
            for game in result.games:
                tally.add(result.battle.model_a, result.battle.model_b, game.winner, game.weight)

        pipeline = Pipeline(
            config,
            contestants,
            judge,
            arena,
            template,
            progress,
            keep_answers=planner is not None,
            # Only adaptive rounds read the tally (fromArena battles may be of other models).
            on_stored=stored_battle if planner is not None else None,
        )
        reporter = asyncio.create_task(_progress_loop(status, progress, progress_every))
        try:
            if planner is None:
                await pipeline.run(todo)
            else:
                batch = planner.first_round(tally)
                while batch:
                    await pipeline.run(batch)
                    batch = planner.next_round(tally, adaptive_round_size(config))
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter

        rows = this_run(await arena.export(ev.namespace, ev.name, EXPORT_FIELDS), config)
        summary = await _final_report(config, arena, rows, human, progress)
        report.add_costs(summary["ranking"], config, pipeline.output_tokens)
        await status.write(
            {
                k: summary[k]
                for k in ("progress", "ranking", "leader", "judge", "results")
                if k in summary
            }
        )
        summary.update(
            evaluation=ev.key,
            run=ev.run,
            resumed=resumed,
            seconds=round(time.monotonic() - started, 3),
            requestsPeak=pipeline.slots.peak,
            timeline=pipeline.timeline.as_summary(),
        )
        if planner is not None:
            summary["rounds"] = planner.rounds
        return summary


async def _final_report(
    config: RunConfig,
    arena: ArenaClient,
    rows: list[Mapping[str, Any]],
    human: Mapping[str, str],
    progress: Progress,
) -> dict[str, Any]:
    ev = config.evaluation
    ranking = report.ranking(rows, config.battles.baseline, config.battles.seed)
    models = {r["modelA"] for r in rows} | {r["modelB"] for r in rows}
    flagged = report.self_enhanced(config, models)
    if flagged:
        # Its own rating shown both ways: the human board's next to this judge's.
        try:
            board = await arena.leaderboard("human")
        except (Rejected, Unreachable) as err:
            log.warning("human board not read: %s", err)
            board = {}
        served = {c.name: c.model for c in config.contestants}
        names = set(flagged) | {served[n] for n in flagged if n in served}
        ratings = report.human_ratings(board, names)
        for entry in ranking:
            name = entry["name"]
            if name in flagged:
                rating = ratings.get(name, ratings.get(served.get(name, "")))
                if rating is not None:
                    entry["humanRating"] = rating
    agreement = None
    if config.prompts.from_arena is not None:
        try:
            agreement = report.human_agreement(
                await arena.agreement("human", config.judge.verdict_source)
            )
        except (Rejected, Unreachable) as err:
            log.warning("agreement not read from the arena (%s): computed from this run", err)
        if agreement is None:
            agreement = report.local_human_agreement(human, rows)
    judge = report.judge_report(config, rows, flagged, agreement)
    summary: dict[str, Any] = {
        "progress": progress.as_status(),
        "ranking": ranking,
        "judge": judge,
        "results": report.results(config, arena.export_url(ev.namespace, ev.name)),
    }
    leader = report.leader(ranking)
    if leader is not None:
        summary["leader"] = leader
    return summary
