"""SIGKILL during sustained voting: every acknowledged vote survives the restart, and the
killed service's leaderboard workers do not outlive it."""

from __future__ import annotations

import signal
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from arena_client import battle
from arena_processes import start_service, stop
from arena_support import BACKENDS, fresh_pg_database, models_file

from arenastack_cluster.processes import poll

BATTLES = 150
VOTERS = 10


def stored_votes(database_url: str) -> set[str]:
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return {r[0] for r in conn.execute("SELECT battle_id FROM votes")}
    import psycopg

    with psycopg.connect(database_url) as conn:
        return {r[0] for r in conn.execute("SELECT battle_id FROM votes")}


def parent_if_running(pid: int) -> int | None:
    """The parent of process `pid`, or None when it is gone or a zombie."""
    try:
        state, ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
    except (OSError, ValueError):
        return None
    return None if state == "Z" else int(ppid)


def spawned_workers(pid: int) -> set[int]:
    """Running multiprocessing workers whose parent is `pid`."""
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        if parent_if_running(int(proc.name)) != pid:
            continue
        try:
            if b"spawn_main" in (proc / "cmdline").read_bytes():
                found.add(int(proc.name))
        except OSError:
            continue
    return found


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if parent_if_running(pid) is not None}


@pytest.mark.parametrize("backend", BACKENDS)
def test_acknowledged_votes_survive_sigkill(backend, request, tmp_path, model_endpoint):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'durable.db'}"
    else:
        url = fresh_pg_database(request.getfixturevalue("postgres_url"), "arena_durability")
    service = start_service(
        url, models_file=models_file(tmp_path, model_endpoint, ["alpha", "beta"])
    )
    try:
        with ThreadPoolExecutor(6) as pool, httpx.Client(base_url=service.url, timeout=60) as c:
            ids = list(pool.map(lambda n: battle(c, f"durable {n}")[0], range(BATTLES)))
        # The leaderboard workers (started by the first refresh), to check they die with it.
        workers = poll(
            "two leaderboard workers",
            lambda: len(found := spawned_workers(service.proc.pid)) >= 2 and found,
            30,
        )
        acked: list[str] = []
        lock = threading.Lock()
        killed = threading.Event()

        def voter(chunk: list[str]) -> None:
            with httpx.Client(base_url=service.url, timeout=10) as client:
                for battle_id in chunk:
                    try:
                        r = client.post(
                            f"/api/battles/{battle_id}/vote", json={"winner": "model_a"}
                        )
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        with lock:
                            acked.append(battle_id)
                            if len(acked) >= BATTLES // 3 and not killed.is_set():
                                killed.set()
                                service.proc.send_signal(signal.SIGKILL)

        chunks = [ids[k::VOTERS] for k in range(VOTERS)]
        threads = [threading.Thread(target=voter, args=(chunk,)) for chunk in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        service.proc.wait(timeout=30)
        assert service.proc.returncode == -signal.SIGKILL
        assert BATTLES // 3 <= len(acked) < BATTLES, "the kill must land mid-load"
        poll("the killed service's workers to end", lambda: not alive(workers), 10)

        service.restart()
        stored = stored_votes(url)
        missing = set(acked) - stored
        assert not missing, f"{len(missing)} acknowledged votes lost"
        print(
            f"{backend}: {len(acked)} acknowledged, {len(stored)} stored after SIGKILL and restart"
        )
        with service.client() as c:
            again = c.post(f"/api/battles/{acked[0]}/vote", json={"winner": "model_b"})
            assert again.status_code == 409
    finally:
        stop(service.proc)
