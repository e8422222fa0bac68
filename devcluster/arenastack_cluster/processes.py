"""Background processes of the local cluster: start detached, track by pid file, stop."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ClusterError(RuntimeError):
    """A problem the user can act on; the CLI prints it as one line."""


def run_tool(
    tool: str,
    prefix: list[str],
    args: tuple[str, ...],
    *,
    check: bool = True,
    timeout: float = 120,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command-line client (`prefix` then `args`), its output captured as text; with
    `check`, a failure is a ClusterError naming `tool`, the arguments and its stderr."""
    proc = subprocess.run(
        [*prefix, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )
    if check and proc.returncode != 0:
        raise ClusterError(f"{tool} {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def http_status(url: str, context: ssl.SSLContext | None = None) -> int | None:
    """The status a GET of `url` answers, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=3) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, ValueError):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_free(port: int, what: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise ClusterError(
                f"port {port} for {what} is already in use; free it or unset the variable "
                "that fixed it"
            ) from None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); read its state to be sure.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Process:
    """One component: its pid file and log live in the state folder."""

    def __init__(self, state: Path, name: str) -> None:
        self.name = name
        self.pidfile = state / "run" / f"{name}.pid"
        self.log = state / "logs" / f"{name}.log"

    @property
    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.pid
        return pid is not None and pid_alive(pid)

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the CLI; `down` stops it
                env={**os.environ, **(env or {})},
            )
        self.pidfile.write_text(str(proc.pid))

    def stop(self, grace: float = 10.0) -> None:
        pid = self.pid
        if pid is not None and pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.pidfile.unlink(missing_ok=True)

    def tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def poll(what: str, check: Callable[[], Any], timeout: float, period: float = 0.5) -> Any:
    """`check()`'s first truthy result within `timeout` seconds; else an error naming `what`
    and the last result seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(period)
    raise ClusterError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, proc: Process | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and not proc.alive():
            raise ClusterError(f"{what} exited during start-up; see {proc.log}: {proc.tail(1)}")
        time.sleep(0.25)
    hint = f"; see {proc.log}" if proc is not None else ""
    raise ClusterError(f"{what} was not healthy after {timeout:.0f} s{hint}")
