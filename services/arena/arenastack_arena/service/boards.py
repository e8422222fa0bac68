"""The leaderboard cache: recomputed in the background after new votes and judgments.

Voting only bumps a counter; a background task notices the change and has
worker processes read the counts per (category, pair, outcome) from the
``vote_counts`` table (people) and the ``game_counts`` table (LLM judges, per
source), refit and send back the boards, which it swaps in. Requests always
read the last finished boards and never wait.

Both counts tables are kept in the same transaction as every insert, so the
plain boards cost the same at a million votes as at a thousand: a few
thousand count rows and a fit per board. The style-controlled boards cannot
use counts (their covariates are per battle: answer lengths and markdown), so
they are refit from the latest ``style_max_votes`` votes (or judged battles)
per source on their own, slower schedule (``style_refresh_s``), and the plain
boards never wait for them.

Boards are kept per source (see sources.py): "human" (people, plus the seed
counts), each "judge:<model>", and "all" of them together. Without judges
"all" is the human board itself, so people alone cost what they always did.

The workers read the database themselves: rows fetched in the service process
would each hand the GIL back and forth with the event loop that serves votes.
The boards of every source are dealt out between ``leaderboard_workers``
processes (one per core, at a lower CPU priority than the one serving votes),
each of which reads the counts and fits its share; the shares are merged here.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arenastack_arena.ratings import EloScale, PairCounts
from arenastack_arena.service.board_payloads import (
    board_payload,
    counts_of,
    style_payload,
    usable,
)
from arenastack_arena.service.db import Database, Tx
from arenastack_arena.service.judgments import game_counts, judge_sources, styled_games
from arenastack_arena.service.metrics import Metrics
from arenastack_arena.service.settings import Settings
from arenastack_arena.service.sources import ALL, HUMAN, board_sources
from arenastack_arena.service.store import Store, outcome_counts, styled_votes

log = logging.getLogger(__name__)
OVERALL = "overall"
STYLE_SUFFIX = ":style"
# Leaderboard workers run below the service's priority: votes first, refits with what is left.
WORKER_NICENESS = 10
PR_SET_PDEATHSIG = 1  # linux/prctl.h
Board = dict[str, Any]


@dataclass
class Boards:
    # source -> board name (category, or overall + STYLE_SUFFIX) -> payload
    sources: dict[str, dict[str, Board]] = field(default_factory=dict)
    # The human overall board's votes per pair and model: what battle sampling balances.
    pair_votes: dict[tuple[str, str], int] = field(default_factory=dict)
    model_votes: dict[str, int] = field(default_factory=dict)
    refreshed_at: float = 0.0
    seconds: float = 0.0

    @property
    def boards(self) -> dict[str, Board]:
        """The human boards (what the leaderboard shows by default)."""
        return self.sources.setdefault(HUMAN, {})


class LeaderboardCache:
    def __init__(
        self, store: Store, settings: Settings, metrics: Metrics, seed: PairCounts | None
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.seed = seed
        self.scale = EloScale(
            anchor=settings.leaderboard_anchor, anchor_rating=settings.leaderboard_anchor_rating
        )
        self.current = Boards()
        # Votes noted so far, and how many of them each board has seen; starts
        # one ahead so the first refresh runs at once.
        self.version = 1
        self._counts_seen = 0
        self._style_seen = 0
        self._style_at = time.monotonic()
        self._style_boards: dict[str, Board] = {}
        self._wake = asyncio.Event()
        self._pool: ProcessPoolExecutor | None = None
        self.workers = max(1, settings.leaderboard_workers)

    @property
    def changes(self) -> int:
        return self.version - self._counts_seen

    def _worker(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the service process has threads (database, executor).
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def note_vote(self) -> None:
        """A vote or a judged battle was stored: the boards are out of date."""
        self.version += 1
        self._wake.set()

    def _style_due(self) -> bool:
        if self.version <= self._style_seen:
            return False
        waited = time.monotonic() - self._style_at
        interval = self.settings.style_refresh_s
        # The plain boards go first: a style refit waits while they have votes to
        # catch up on, unless it is overdue (under sustained voting they always have).
        return waited >= interval and (not self.changes or waited >= 2 * interval)

    async def run(self) -> None:
        while True:
            if self.changes:
                try:
                    await self.refresh()
                except Exception:
                    log.exception("leaderboard refresh failed")
            if self._style_due():
                try:
                    await self.refresh_style()
                except Exception:
                    log.exception("style-controlled leaderboard refresh failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self.settings.leaderboard_refresh_s
                )
            except TimeoutError:
                pass
            # Coalesce bursts of votes into one refresh per interval.
            await asyncio.sleep(self.settings.leaderboard_refresh_s)

    async def _in_worker(self, fn: Any, *args: Any) -> Any:
        # The fits are CPU-bound Python and numpy: in a thread they would hold
        # the GIL for long stretches and stall voting, so a worker process runs them.
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker(), fn, *args)
        except BrokenProcessPool:
            self._pool = None  # the worker died (OOM?): a fresh one next time
            raise

    async def _shares(self, fn: Any, *args: Any) -> list[Any]:
        """Runs ``fn(url, *args, share, shares)`` once per worker: each fits its share."""
        url = self.store.db.url
        return await asyncio.gather(
            *(self._in_worker(fn, url, *args, share, self.workers) for share in range(self.workers))
        )

    async def refresh(self) -> Boards:
        """Refits the plain boards (overall and per category, per source) from the counts."""
        version = self.version
        started = time.perf_counter()
        settings = self.settings
        boards = merge_boards(
            await self._shares(
                counts_boards,
                self.scale,
                settings.leaderboard_bootstrap_rounds,
                self.seed,
                settings.min_battles,
            )
        )
        boards.sources.setdefault(ALL, boards.boards)  # no judges: "all" is the human board
        boards.seconds = time.perf_counter() - started
        self._add_style(boards, self._style_boards)
        self.metrics.leaderboard_refresh.observe(boards.seconds)
        self.current = boards
        self._counts_seen = version
        return boards

    async def refresh_style(self) -> dict[str, Board]:
        """Refits the style-controlled boards from the latest individual battles per source."""
        version = self.version
        settings = self.settings
        shares = await self._shares(
            style_boards, settings.style_max_votes, self.scale, settings.min_battles
        )
        boards = {source: board for share in shares for source, board in share.items()}
        self._style_at = time.monotonic()
        self._style_seen = version
        self._style_boards.update(boards)
        self._add_style(self.current, boards)
        return boards

    @staticmethod
    def _add_style(boards: Boards, style: dict[str, Board]) -> None:
        for source, board in style.items():
            boards.sources.setdefault(source, {})[OVERALL + STYLE_SUFFIX] = board


# Per worker process: connections kept from one refresh to the next.
_DATABASES: dict[str, Database] = {}


def _database(url: str) -> Database:
    if url not in _DATABASES:
        _DATABASES[url] = Database(url)
    return _DATABASES[url]


def _init_worker(service_pid: int) -> None:
    os.nice(WORKER_NICENESS)
    # A worker blocks on its task queue, whose write end every worker holds too, so it would
    # outlive a service that was killed (SIGKILL, OOM): have the kernel end it with its parent.
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != service_pid:  # the service died before the line above took effect
        os._exit(0)


def counts_boards(
    url: str,
    scale: EloScale,
    rounds: int,
    seed: PairCounts | None,
    min_battles: int,
    share: int,
    shares: int,
) -> Boards:
    """Runs in a worker process: its share of every source's plain boards from the counts."""
    human, judged = _database(url).read_sync(lambda tx: (outcome_counts(tx), game_counts(tx)))
    return source_boards(human, judged, scale, rounds, seed, min_battles, share, shares)


def style_boards(
    url: str, limit: int, scale: EloScale, min_battles: int, share: int, shares: int
) -> dict[str, Board]:
    """Runs in a worker process: its share of the style-controlled boards, one per source."""
    db = _database(url)
    out = {}
    for source in board_sources(db.read_sync(judge_sources))[share::shares]:
        rows, battles = db.read_sync(lambda tx, source=source: style_rows(tx, source, limit))
        if len(rows) >= 2:
            out[source] = style_payload(rows, scale, min_battles, battles)
    return out


def style_rows(
    tx: Tx, source: str, limit: int
) -> tuple[list[tuple[Any, ...]], Counter[str] | None]:
    """A source's style rows and, when they are weighted games, its battles per model."""
    if source == HUMAN:
        return styled_votes(tx, limit), None
    games, battles = styled_games(tx, None if source == ALL else source, limit)
    if source != ALL:
        return games, battles
    votes = styled_votes(tx, limit)
    battles.update(m for row in votes for m in row[:2])
    return votes + games, battles


def source_boards(
    human: list[tuple[Any, ...]],
    judged: list[tuple[Any, ...]],
    scale: EloScale,
    rounds: int,
    seed: PairCounts | None,
    min_battles: int,
    share: int = 0,
    shares: int = 1,
) -> Boards:
    """Every source's boards from vote_counts rows (people) and game_counts rows (judges).

    The boards of all sources are numbered one after another (see `compute_boards`),
    so that the workers' shares stay even however the boards fall between sources.
    """
    per_judge: dict[str, list[tuple[Any, ...]]] = {}
    for source, *row in judged:
        per_judge.setdefault(source, []).append(tuple(row))
    plan = {HUMAN: (human, seed), **{s: (per_judge[s], None) for s in sorted(per_judge)}}
    if per_judge:
        # A vote is one game and one battle: the people's rows in the judges' shape.
        everyone = [(*row, row[4]) for row in human]
        plan[ALL] = (everyone + [r for rows in per_judge.values() for r in rows], seed)
    out = Boards(refreshed_at=time.time())
    first = 0
    for source, (rows, source_seed) in plan.items():
        part = compute_boards(
            rows,
            scale,
            rounds,
            source_seed,
            share,
            shares,
            source=source,
            first=first,
            min_battles=min_battles,
        )
        out = merge_boards([out, part])
        first += len(board_names({row[0] for row in rows}, bool(rows) or source_seed is not None))
    return out


def _columns(rows: list[tuple[Any, ...]]) -> list[np.ndarray]:
    """category, model_a, model_b, winner, games, battles columns of 5- or 6-value rows."""
    width = len(rows[0]) if rows else 5
    columns = [np.array(c, dtype=object) for c in zip(*rows, strict=True)]
    columns = columns or [np.array([], dtype=object) for _ in range(width)]
    if width == 5:
        columns.append(columns[4])  # a vote's count is its games and its battles
    return columns


def board_names(category: Iterable[str | None], overall: bool) -> list[str]:
    """A source's boards in their dealing order: overall first, then the categories by name."""
    return ([OVERALL] if overall else []) + sorted({c for c in category if c})


def compute_boards(
    rows: list[tuple[Any, ...]],
    scale: EloScale,
    rounds: int,
    seed: PairCounts | None,
    share: int = 0,
    shares: int = 1,
    *,
    source: str = HUMAN,
    first: int = 0,
    min_battles: int = 0,
) -> Boards:
    """One source's overall and per-category boards from (category, model_a, model_b,
    winner, n) rows, or (..., games, battles) rows when games are weighted (a judge's).

    Numbering the boards overall first, then the categories by name, from ``first`` on,
    this fits the ones whose number is ``share`` modulo ``shares``: one worker's share.
    """
    out = Boards(refreshed_at=time.time())
    category, a, b, winner, games, battles = _columns(rows)
    boards = out.sources.setdefault(source, {})
    for k, name in enumerate(board_names(category, len(a) > 0 or seed is not None), first):
        if k % shares != share:
            continue
        mask = slice(None) if name == OVERALL else category == name
        board_seed = seed if name == OVERALL else None
        counts = counts_of(a[mask], b[mask], winner[mask], games[mask], board_seed)
        tallies = (
            None
            if battles is games
            else counts_of(a[mask], b[mask], winner[mask], battles[mask], board_seed)
        )
        boards[name] = board_payload(
            counts, usable(scale, counts.models), rounds, min_battles, tallies
        )
        if name == OVERALL and source == HUMAN:
            votes = counts.votes_per_model()
            out.model_votes = {m: int(v) for m, v in zip(counts.models, votes, strict=True)}
            total = counts.counts.sum(axis=1)
            out.pair_votes = {
                (counts.models[i], counts.models[j]): int(t)
                for i, j, t in zip(
                    counts.i.tolist(), counts.j.tolist(), total.tolist(), strict=True
                )
            }
    return out


def merge_boards(shares: list[Boards]) -> Boards:
    """One refresh's boards from the workers' shares."""
    out = Boards(refreshed_at=min(share.refreshed_at for share in shares))
    for share in shares:
        for source, boards in share.sources.items():
            out.sources.setdefault(source, {}).update(boards)
        out.pair_votes.update(share.pair_votes)
        out.model_votes.update(share.model_votes)
    return out
