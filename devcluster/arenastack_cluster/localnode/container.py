"""One container of a pod: its shim process, its state and its records on disk."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from arenastack_cluster.processes import pid_alive


def rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Terminated:
    exit_code: int
    reason: str
    started_at: float
    finished_at: float
    message: str = ""
    container_id: str = ""

    def api(self) -> dict:
        out = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(self.finished_at),
            "containerID": self.container_id,
        }
        if self.message:
            out["message"] = self.message
        return out


@dataclass
class ContainerRecord:
    """What survives an agent restart (saved as JSON in the pod's folder)."""

    name: str
    restart_count: int = 0
    pid: int | None = None
    started_at: float = 0.0
    instance: int = -1
    last: Terminated | None = None
    current_done: Terminated | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    next_start: float = 0.0  # wall clock: back-off ends
    backoff: float = 0.0


@dataclass
class ContainerRun:
    name: str
    init: bool
    spec: dict
    pod_dir: Path
    record: ContainerRecord = field(init=False)
    popen: subprocess.Popen | None = field(default=None, init=False)
    ready: bool = field(default=False, init=False)
    started: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.record = ContainerRecord(self.name)

    # -- paths -------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return self.pod_dir / "containers" / self.name

    def log_path(self, instance: int | None = None) -> Path:
        n = self.record.instance if instance is None else instance
        return self.dir / f"{n}.log"

    def status_file(self, instance: int | None = None) -> Path:
        n = self.record.instance if instance is None else instance
        return self.dir / f"{n}.status"

    def container_id(self, uid: str, instance: int | None = None) -> str:
        n = self.record.instance if instance is None else instance
        return f"localnode://{uid}/{self.name}/{n}"

    # -- lifecycle ---------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.record.pid is not None and self.record.current_done is None

    def start(self, spec: dict) -> None:
        rec = self.record
        rec.instance += 1
        self.dir.mkdir(parents=True, exist_ok=True)
        # Keep the current and the previous instance's files only, as the kubelet does.
        for old in self.dir.glob("*"):
            stem = old.name.split(".")[0]
            if stem.isdigit() and int(stem) < rec.instance - 1:
                old.unlink(missing_ok=True)
        spec_path = self.dir / f"{rec.instance}.json"
        spec = {**spec, "status_file": str(self.status_file())}
        spec_path.write_text(json.dumps(spec))
        with self.log_path().open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "arenastack_cluster.localnode.shim", str(spec_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        rec.pid = self.popen.pid
        rec.started_at = time.time()
        rec.current_done = None
        rec.waiting_reason = rec.waiting_message = ""
        self.ready = False
        self.started = False

    def poll(self, uid: str) -> Terminated | None:
        """The termination of the current instance once it has ended."""
        rec = self.record
        if rec.pid is None or rec.current_done is not None:
            return rec.current_done
        if self.popen is not None:
            if self.popen.poll() is None:
                return None
        elif pid_alive(rec.pid):
            return None
        status = {}
        try:
            status = json.loads(self.status_file().read_text())
        except (OSError, ValueError):
            pass
        code = status.get("exitCode")
        if code is None:
            code = self.popen.returncode if self.popen is not None else 137
            code = 128 - code if code < 0 else code
        start_err = self.status_file().with_name(self.status_file().name + ".starterr")
        if start_err.exists():
            reason, message = "StartError", start_err.read_text()
        else:
            reason, message = ("Completed" if code == 0 else "Error"), ""
        rec.current_done = Terminated(
            code, reason, rec.started_at, status.get("finishedAt", time.time()), message,
            self.container_id(uid),
        )  # fmt: skip
        self.popen = None
        self.ready = False
        return rec.current_done

    def signal(self, sig: int) -> None:
        if self.record.pid is not None and self.record.current_done is None:
            try:
                os.kill(self.record.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace: float, uid: str) -> Terminated | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the PID namespace takes the tree."""
        if not self.running:
            return self.record.current_done
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + max(grace, 0)
        while time.monotonic() < deadline:
            if self.poll(uid) is not None:
                return self.record.current_done
            time.sleep(0.05)
        self.signal(signal.SIGKILL)
        for _ in range(200):
            if self.poll(uid) is not None:
                break
            time.sleep(0.05)
        return self.record.current_done

    def init_pid(self) -> int | None:
        """PID (on the host) of the container's init, for exec probes via nsenter."""
        if not self.running or self.record.pid is None:
            return None
        try:
            children = Path(f"/proc/{self.record.pid}/task/{self.record.pid}/children")
            first = children.read_text().split()
            return int(first[0]) if first else None
        except (OSError, ValueError):
            return None

    def to_json(self) -> dict:
        return asdict(self.record)

    def load(self, data: dict) -> None:
        for key in ("last", "current_done"):
            if data.get(key):
                data[key] = Terminated(**data[key])
        self.record = ContainerRecord(**data)
