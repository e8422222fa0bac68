"""The leaderboard cache: recomputed in the background after new votes.

Voting only bumps a counter; a background task notices the change and has a
worker process read the vote counts per (category, pair, outcome) from the
``vote_counts`` table, refit and send back the boards, which it swaps in.
Requests always read the last finished boards and never wait.

``vote_counts`` is kept in the same transaction as every vote insert, so the
plain boards cost the same at a million votes as at a thousand: a few
thousand count rows and a fit. The style-controlled board cannot use counts
(its covariates are per battle: answer lengths and markdown), so it is refit
from the latest ``style_max_votes`` votes on its own, slower schedule
(``style_refresh_s``), and the plain boards never wait for it.

The worker reads the database itself: rows fetched in the service process
would each hand the GIL back and forth with the event loop that serves votes.
The boards are dealt out between ``leaderboard_workers`` processes (one per
core, at a lower CPU priority than the one serving votes), each of which
reads the counts and fits its share; the shares are merged here.
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
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arenastack_arena.ratings import (
    OUTCOMES,
    EloScale,
    PairCounts,
    build_leaderboard,
    fit_style_controlled,
    observed_win_rates,
    predicted_win_rates,
)
from arenastack_arena.ratings.counts import from_pair_table
from arenastack_arena.service.db import Database
from arenastack_arena.service.metrics import Metrics
from arenastack_arena.service.settings import Settings
from arenastack_arena.service.store import Store, outcome_counts, styled_votes

log = logging.getLogger(__name__)
OVERALL = "overall"
STYLE_SUFFIX = ":style"
HEATMAP_MODELS = 20
# Leaderboard workers run below the service's priority: votes first, refits with what is left.
WORKER_NICENESS = 10
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_OUTCOME = {name: k for k, name in enumerate(OUTCOMES)}


@dataclass
class Boards:
    boards: dict[str, dict[str, Any]] = field(default_factory=dict)
    pair_votes: dict[tuple[str, str], int] = field(default_factory=dict)
    model_votes: dict[str, int] = field(default_factory=dict)
    refreshed_at: float = 0.0
    seconds: float = 0.0


def counts_from_rows(
    rows: list[tuple[str, str, str, int]], seed: PairCounts | None = None
) -> PairCounts:
    """(model_a, model_b, winner, count) rows, plus optional seed counts, as PairCounts."""
    columns = tuple(zip(*rows, strict=True)) or ((), (), (), ())
    return _counts(*(np.array(c, dtype=object) for c in columns), seed=seed)


def _counts(
    a: np.ndarray, b: np.ndarray, winner: np.ndarray, n: np.ndarray, seed: PairCounts | None
) -> PairCounts:
    """Counts over the models that appear (in these rows or the seed), names sorted."""
    names = sorted(set(a) | set(b) | set(seed.models if seed else ()))
    index = {m: k for k, m in enumerate(names)}
    pairs = np.stack([_codes(a, index), _codes(b, index)], axis=1)
    table = np.zeros((len(a), len(OUTCOMES)))
    table[np.arange(len(a)), _codes(winner, _OUTCOME)] = n.astype(np.float64)
    if seed is not None:
        remap = np.array([index[m] for m in seed.models])
        pairs = np.concatenate([pairs, np.stack([remap[seed.i], remap[seed.j]], axis=1)])
        table = np.concatenate([table, seed.counts])
    return from_pair_table(names, pairs, table)


def _codes(values: np.ndarray, index: dict[str, int]) -> np.ndarray:
    return np.fromiter(map(index.__getitem__, values), np.int64, len(values))


def board_payload(counts: PairCounts, scale: EloScale, rounds: int) -> dict[str, Any]:
    board = build_leaderboard(counts, scale, rounds=rounds, seed=0)
    top = [counts.models.index(r.model) for r in board.rows[:HEATMAP_MODELS]]
    observed = observed_win_rates(counts)[np.ix_(top, top)]
    predicted = predicted_win_rates(board.fit.theta)[np.ix_(top, top)]
    return {
        **board.as_dict(),
        "votes": counts.n_battles,
        "heatmap": {
            "models": [counts.models[k] for k in top],
            "observed": [
                [None if np.isnan(x) else round(float(x), 4) for x in row] for row in observed
            ],
            "predicted": [[round(float(x), 4) for x in row] for row in predicted],
        },
    }


def style_payload(rows: list[tuple[Any, ...]], scale: EloScale) -> dict[str, Any]:
    names = tuple(sorted({r[0] for r in rows} | {r[1] for r in rows}))
    index = {m: k for k, m in enumerate(names)}
    a = np.array([index[r[0]] for r in rows])
    b = np.array([index[r[1]] for r in rows])
    outcome = np.array([_OUTCOME[r[2]] for r in rows])
    styles = np.array([r[3:11] for r in rows], dtype=float)
    fit = fit_style_controlled(
        names, a, b, outcome, styles[:, :4], styles[:, 4:], scale=_usable(scale, names)
    )
    order = np.argsort(-fit.ratings)
    return {
        "method": "style-controlled MLE (no intervals)",
        "votes": len(rows),
        "coefficients": fit.coefficients,
        "rows": [
            {
                "model": names[k],
                "rating": float(fit.ratings[k]),
                "lower": None,
                "upper": None,
                "rank": int(n + 1),
                "votes": int((a == k).sum() + (b == k).sum()),
                "flagged": False,
            }
            for n, k in enumerate(order)
        ],
    }


def _usable(scale: EloScale, names: tuple[str, ...] | list[str]) -> EloScale:
    """The anchor only applies to boards where the anchor model has votes."""
    if scale.anchor is not None and scale.anchor not in names:
        return EloScale(scale.scale, scale.base, scale.init)
    return scale


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
        self._style_board: dict[str, Any] | None = None
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

    async def refresh(self) -> Boards:
        """Refits the plain boards (overall and per category) from the vote counts."""
        version = self.version
        started = time.perf_counter()
        boards = merge_boards(
            await asyncio.gather(
                *(
                    self._in_worker(
                        counts_boards,
                        self.store.db.url,
                        self.scale,
                        self.settings.leaderboard_bootstrap_rounds,
                        self.seed,
                        share,
                        self.workers,
                    )
                    for share in range(self.workers)
                )
            )
        )
        boards.seconds = time.perf_counter() - started
        if self._style_board is not None:
            boards.boards[OVERALL + STYLE_SUFFIX] = self._style_board
        self.metrics.leaderboard_refresh.observe(boards.seconds)
        self.current = boards
        self._counts_seen = version
        return boards

    async def refresh_style(self) -> dict[str, Any] | None:
        """Refits the style-controlled board from the latest individual votes."""
        version = self.version
        board = await self._in_worker(
            style_board, self.store.db.url, self.settings.style_max_votes, self.scale
        )
        self._style_at = time.monotonic()
        self._style_seen = version
        if board is not None:
            self._style_board = board
            self.current.boards[OVERALL + STYLE_SUFFIX] = board
        return board


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


def counts_boards(url: str, *board_args: Any) -> Boards:
    """Runs in a worker process: its share of the plain boards from ``vote_counts``
    (``board_args`` are `compute_boards`' after the rows)."""
    rows = _database(url).read_sync(outcome_counts)
    return compute_boards(rows, *board_args)


def style_board(url: str, limit: int, scale: EloScale) -> dict[str, Any] | None:
    """Runs in the worker process: the style-controlled board from the latest votes."""
    rows = _database(url).read_sync(lambda tx: styled_votes(tx, limit))
    return style_payload(rows, scale) if len(rows) >= 2 else None


def compute_boards(
    rows: list[tuple[Any, ...]],
    scale: EloScale,
    rounds: int,
    seed: PairCounts | None,
    share: int = 0,
    shares: int = 1,
) -> Boards:
    """The overall and per-category boards from (category, model_a, model_b, winner, n) rows.

    Numbering the boards overall first, then the categories by name, this fits the
    ones whose number is ``share`` modulo ``shares``: one worker's share of a refresh.
    """
    out = Boards(refreshed_at=time.time())
    columns = tuple(zip(*rows, strict=True)) or ((), (), (), (), ())
    category, a, b, winner, n = (np.array(c, dtype=object) for c in columns)
    overall = [OVERALL] if len(a) or seed is not None else []
    mine = set((overall + sorted({c for c in category if c}))[share::shares])
    if OVERALL in overall and OVERALL in mine:
        counts = _counts(a, b, winner, n, seed)
        out.boards[OVERALL] = board_payload(counts, _usable(scale, counts.models), rounds)
        votes = counts.votes_per_model()
        out.model_votes = {m: int(v) for m, v in zip(counts.models, votes, strict=True)}
        total = counts.counts.sum(axis=1)
        out.pair_votes = {
            (counts.models[i], counts.models[j]): int(t)
            for i, j, t in zip(counts.i.tolist(), counts.j.tolist(), total.tolist(), strict=True)
        }
    for name in sorted({c for c in category if c} & mine):
        mask = category == name
        counts = _counts(a[mask], b[mask], winner[mask], n[mask], None)
        out.boards[name] = board_payload(counts, _usable(scale, counts.models), rounds)
    return out


def merge_boards(shares: list[Boards]) -> Boards:
    """One refresh's boards from the workers' shares."""
    out = Boards(refreshed_at=min(share.refreshed_at for share in shares))
    for share in shares:
        out.boards.update(share.boards)
        out.pair_votes.update(share.pair_votes)
        out.model_votes.update(share.model_votes)
    return out
