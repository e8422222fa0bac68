"""Real processes for the service tests: PostgreSQL, the vote service, the model double."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from arenastack_cluster.processes import free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PYTHON = sys.executable
ADMIN_TOKEN = "test-admin-token"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def model_double() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([PYTHON, str(HERE / "model_double.py"), str(port)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


def _pg_user() -> tuple[list[str], int | None]:
    """Postgres refuses to run as root: drop to the postgres account then."""
    if os.geteuid() != 0:
        return [], None
    return ["runuser", "-u", "postgres", "--"], pwd.getpwnam("postgres").pw_uid


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError("PostgreSQL is not installed: run hack/apt.sh (package postgresql)")
    prefix, uid = _pg_user()
    root = Path(tempfile.mkdtemp(prefix="arena-pg-"))
    data = root / "data"
    if uid is not None:
        os.chown(root, uid, -1)
    port = free_port()
    subprocess.run(
        [
            *prefix,
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on"
    subprocess.run(
        [
            *prefix,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                *prefix,
                str(PG_BIN / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "arena",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/arena"
    finally:
        subprocess.run(
            [*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Service:
    url: str
    database_url: str
    proc: subprocess.Popen
    env: dict[str, str]
    port: int

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=30.0, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        )

    def restart(self) -> None:
        stop(self.proc)
        self.proc = _spawn(self.port, self.env)
        wait_http(self.url + "/healthz", self.proc)


def _spawn(port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "arenastack_arena.service", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO,
    )


def start_service(database_url: str, **settings: object) -> Service:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    env.update(
        {
            "ARENA_DATABASE_URL": database_url,
            "ARENA_ADMIN_TOKEN": ADMIN_TOKEN,
            "ARENA_LEADERBOARD_REFRESH_S": "0.2",
            "ARENA_STYLE_REFRESH_S": "0.2",
            "ARENA_LEADERBOARD_BOOTSTRAP_ROUNDS": "20",
            "ARENA_BATTLE_RATE_PER_MINUTE": "100000",
            "ARENA_VOTE_RATE_PER_MINUTE": "100000",
            "ARENA_UPSTREAM_FIRST_TOKEN_TIMEOUT_S": "2",
            "ARENA_UPSTREAM_TIMEOUT_S": "10",
        }
    )
    env.update({"ARENA_" + k.upper(): str(v) for k, v in settings.items()})
    proc = _spawn(port, env)
    service = Service(f"http://127.0.0.1:{port}", database_url, proc, env, port)
    wait_http(service.url + "/healthz", proc)
    return service
