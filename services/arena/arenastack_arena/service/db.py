"""Storage: SQLite (WAL, the embedded default) or PostgreSQL, chosen by URL.

All writes go through one writer thread that *group-commits*: it takes every
write queued since the last commit, runs them in one transaction and commits
once, then answers each caller. A caller is answered only after the commit
returned, so an acknowledged vote is durable (SQLite: WAL with
synchronous=FULL fsyncs on commit; PostgreSQL: synchronous_commit), while one
fsync is shared by all the votes that arrived during the previous one.

Writes of one kind that arrive together (votes) are *bulk* writes: their
handler gets the whole batch and writes it with a few multi-row statements.
This matters more than it seems: the sqlite3 and psycopg drivers release the
GIL around every statement step, and while the event loop is busy each
re-acquisition can wait a whole switch interval (5 ms). A writer that ran one
statement per vote would be starved to a few hundred votes per second; a
writer that runs a few statements per batch is not.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from arenastack_arena.service.migrations import MIGRATIONS

log = logging.getLogger(__name__)
MAX_BATCH = 1024
READ_THREADS = 4
CHECKPOINT_INTERVAL_S = 1.0
# PostgreSQL advisory lock key so that replicas starting together migrate once.
MIGRATION_LOCK_KEY = 0x41524E41


class Cursor(Protocol):
    rowcount: int

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...
    def fetchone(self) -> tuple[Any, ...] | None: ...


class DatabaseError(RuntimeError):
    """The database failed; the request cannot be completed."""


@dataclass(frozen=True)
class Dialect:
    name: str

    def sql(self, text: str) -> str:
        """Statements are written with ``?`` placeholders; psycopg wants ``%s``."""
        return text.replace("?", "%s") if self.name == "postgresql" else text


class Tx:
    """A cursor wrapper that rewrites placeholders for the dialect."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self.dialect = dialect

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        self._cursor.execute(self.dialect.sql(sql), params)
        return self._cursor.rowcount

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        self.execute(sql, params)
        return self.fetchall()


Op = Callable[[Tx], Any]
# A bulk handler writes many payloads in one go and returns one result per payload.
BulkOp = Callable[[Tx, list[Any]], list[Any]]


@dataclass
class _Write:
    """One queued write: either ``op`` alone or a payload for the bulk handler ``bulk``."""

    op: Op | None
    bulk: BulkOp | None
    payload: Any
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _sqlite_path(url: str) -> str:
    path = (
        url.removeprefix("sqlite:///")
        if url.startswith("sqlite:///")
        else url.removeprefix("sqlite://")
    )
    return path or ":memory:"


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:"):
            self.dialect = Dialect("sqlite")
            self._path = _sqlite_path(url)
            if self._path != ":memory:":
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect = Dialect("postgresql")
        else:
            raise ValueError(
                f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://..."
            )
        self._queue: queue.Queue[_Write | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._local = threading.local()
        self._point: Any = None
        self._checkpointer: threading.Thread | None = None
        self._stopping = threading.Event()
        # Every reader thread's connection, so that close() can close them all.
        self._read_conns: list[Any] = []
        self._read_lock = threading.Lock()
        self._reads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="arena-db-read")
        self.on_error: Callable[[str], None] = lambda op: None
        # Called after each group commit with (writes in the batch, seconds it took).
        self.on_commit: Callable[[int, float], None] = lambda size, seconds: None

    # connections -------------------------------------------------------
    def _connect(self, writer: bool) -> Any:
        if self.dialect.name == "sqlite":
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            return conn
        import psycopg

        return psycopg.connect(self.url, autocommit=not writer)

    def _begin(self, conn: Any) -> None:
        if self.dialect.name == "sqlite":
            conn.execute("BEGIN IMMEDIATE")

    # lifecycle ---------------------------------------------------------
    def start(self) -> None:
        conn = self._connect(writer=True)
        self._migrate(conn)
        if self.dialect.name == "sqlite" and self._path != ":memory:":
            # SQLite would checkpoint inside the commit that fills the WAL, stalling
            # that batch's votes for a copy and an fsync of the database file; a
            # thread of its own checkpoints instead, without blocking the writer.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="arena-db-checkpoint", daemon=True
            )
            self._checkpointer.start()
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="arena-db-writer", daemon=True
        )
        self._writer.start()

    def _checkpoint_loop(self) -> None:
        conn = self._connect(writer=False)
        try:
            while not self._stopping.wait(CHECKPOINT_INTERVAL_S):
                try:
                    # PASSIVE: copies what no reader still needs, never waits for anyone.
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    log.warning("WAL checkpoint failed; retrying", exc_info=True)
        finally:
            conn.close()

    def close(self) -> None:
        self._stopping.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=30)
            self._checkpointer = None
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=30)
            self._writer = None
        self._reads.shutdown(wait=True)
        with self._read_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
        self._local = threading.local()
        if self._point is not None:
            self._point.close()
            self._point = None

    def _migrate(self, conn: Any) -> None:
        self._begin(conn)
        cur = Tx(conn.cursor(), self.dialect)
        if self.dialect.name == "postgresql":
            cur.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_KEY,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        applied = {row[0] for row in cur.query("SELECT version FROM schema_migrations")}
        for version, description, statements in MIGRATIONS:
            if version in applied:
                continue
            for statement in statements:
                cur.execute(statement)
            cur.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                (version, description, time.time()),
            )
            log.info("applied migration %d: %s", version, description)
        conn.commit()

    def schema_version(self) -> int:
        return max(v for v, _, _ in MIGRATIONS)

    # writes ------------------------------------------------------------
    def _write_loop(self, conn: Any) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit_batch(conn, batch)
            if stop:
                break
        conn.close()

    def _commit_batch(self, conn: Any, batch: list[_Write]) -> None:
        started = time.perf_counter()
        try:
            self._begin(conn)
            results = self._run_batch(Tx(conn.cursor(), self.dialect), batch)
            conn.commit()
            self.on_commit(len(batch), time.perf_counter() - started)
        except Exception:
            conn.rollback()
            if len(batch) > 1:
                # One bad write must not fail the others: retry each on its own.
                for item in batch:
                    self._commit_batch(conn, [item])
                return
            self.on_error("write")
            log.exception("database write failed")
            _answer([(batch[0], None, DatabaseError("database write failed"))])
            return
        _answer([(item, result, None) for item, result in zip(batch, results, strict=True)])

    @staticmethod
    def _run_batch(tx: Tx, batch: list[_Write]) -> list[Any]:
        """Plain ops in arrival order, then each bulk handler once over its payloads."""
        results: list[Any] = [None] * len(batch)
        groups: dict[BulkOp, list[int]] = {}
        for n, item in enumerate(batch):
            if item.bulk is not None:
                groups.setdefault(item.bulk, []).append(n)
            else:
                assert item.op is not None
                results[n] = item.op(tx)
        for bulk, members in groups.items():
            answers = bulk(tx, [batch[n].payload for n in members])
            for n, answer in zip(members, answers, strict=True):
                results[n] = answer
        return results

    def _enqueue(self, op: Op | None, bulk: BulkOp | None, payload: Any) -> asyncio.Future[Any]:
        if self._writer is None:
            raise DatabaseError("database is not started")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Write(op, bulk, payload, loop, future))
        return future

    async def write(self, op: Op) -> Any:
        """Runs ``op`` in a transaction; returns once it is committed."""
        return await self._enqueue(op, None, None)

    async def write_bulk(self, bulk: BulkOp, payload: Any) -> Any:
        """Adds ``payload`` to the next batch for ``bulk``; returns its result once committed."""
        return await self._enqueue(None, bulk, payload)

    # reads -------------------------------------------------------------
    def _point_conn(self) -> Any:
        if self._point is None:
            self._point = self._connect(writer=False)
            # A WAL reader is only ever briefly blocked (recovery); never stall the loop long.
            self._point.execute("PRAGMA busy_timeout=200")
        return self._point

    async def point_read(self, op: Op) -> Any:
        """A small indexed read (a battle by id).

        SQLite: run right here on the event loop. A primary-key lookup in a
        local file takes microseconds, far less than handing it to a thread
        and waiting for that thread to get the GIL back. PostgreSQL: a network
        round trip, so a reader thread as for every other read.
        """
        if self.dialect.name != "sqlite":
            return await self.read(op)
        try:
            return op(Tx(self._point_conn().cursor(), self.dialect))
        except Exception as err:
            self.on_error("read")
            log.exception("database read failed")
            if self._point is not None:
                self._point.close()
                self._point = None
            raise DatabaseError("database read failed") from err

    def _read_conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(writer=False)
            self._local.conn = conn
            with self._read_lock:
                self._read_conns.append(conn)
        return conn

    def _run_read(self, op: Op) -> Any:
        conn = self._read_conn()
        try:
            return op(Tx(conn.cursor(), self.dialect))
        except Exception as err:
            self.on_error("read")
            log.exception("database read failed")
            self._local.conn = None
            with self._read_lock:
                self._read_conns.remove(conn)
            conn.close()
            raise DatabaseError("database read failed") from err

    async def read(self, op: Op) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._reads, self._run_read, op)

    def read_sync(self, op: Op) -> Any:
        return self._run_read(op)


def _answer(outcomes: list[tuple[_Write, Any, BaseException | None]]) -> None:
    """Resolves callers' futures with one wake-up of each event loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Write, Any, BaseException | None]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:
            log.warning("an event loop closed before its database writes were answered")


def _settle(items: list[tuple[_Write, Any, BaseException | None]]) -> None:
    for item, result, error in items:
        if item.future.done():  # the caller went away (cancelled)
            continue
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(result)
