"""Runs the real operator (`python -m arenastack_operator`) as a subprocess for integration tests.

Each process gets its own identity, asks for ports 0 (the kernel picks free ones) and reports the
bound ports in its JSON log, which the runner reads. Output goes to a per-process log file that
`logs()` parses, so tests can assert on what the operator said.

Usage (the `operator_runner` fixture in conftest.py builds the runner and stops everything):

    op = operator_runner.start()            # waits until /readyz answers 200
    op.readyz()["role"]                     # "leader" or "standby"
    op.terminate()                          # SIGTERM, returns the exit status
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from arenastack_operator import constants
from arenastack_operator.election import LeaseTiming

# Fast election timing so takeover tests take seconds, not the production 15 s.
TIMING = LeaseTiming(lease_duration=4, renew_deadline=3, retry_period=0.5)
FAST_TIMING = (
    f"--lease-duration={TIMING.lease_duration:g}",
    f"--renew-deadline={TIMING.renew_deadline:g}",
    f"--retry-period={TIMING.retry_period:g}",
)
LEASE_DURATION_S = TIMING.lease_duration
RETRY_PERIOD_S = TIMING.retry_period


class OperatorProcess:
    def __init__(self, proc: subprocess.Popen[bytes], identity: str, log_path: Path) -> None:
        self.proc = proc
        self.identity = identity
        self.log_path = log_path
        self.health_port: int | None = None
        self.metrics_port: int | None = None

    # -- output ---------------------------------------------------------------------------------

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def logs(self) -> list[dict[str, Any]]:
        """Every output line parsed as JSON; a line that is not JSON is returned as
        {"unparsed": line} so tests can assert there are none."""
        records = []
        for line in self.output().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                records.append({"unparsed": line})
        return records

    def wait_for_log(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.logs():
                if predicate(record):
                    return record
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"operator {self.identity}: no matching log line in {timeout}s "
            f"(exit status {self.proc.poll()}); output:\n{self.output()[-4000:]}"
        )

    # -- HTTP -----------------------------------------------------------------------------------

    def _get(self, port: int | None, path: str) -> tuple[int, bytes]:
        assert port is not None, "ports are known once the operator has started serving"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def healthz(self) -> tuple[int, dict[str, Any]]:
        status, body = self._get(self.health_port, constants.HEALTHZ_PATH)
        return status, json.loads(body)

    def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body = self._get(self.health_port, constants.READYZ_PATH)
        return status, json.loads(body)

    def metrics(self) -> str:
        status, body = self._get(self.metrics_port, constants.METRICS_PATH)
        assert status == 200, status
        return body.decode()

    def samples(self, name: str, **labels: str) -> list[float]:
        """Values of every sample of `name` from /metrics whose labels include `labels`."""
        values = []
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, label_text = series.partition("{")
            present = dict(
                part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part
            )
            if metric == name and all(present.get(k) == f'"{v}"' for k, v in labels.items()):
                values.append(float(value))
        return values

    def metric(self, name: str, **labels: str) -> float | None:
        """The sum of the matching samples, None if there is none."""
        values = self.samples(name, **labels)
        return sum(values) if values else None

    # -- lifecycle ------------------------------------------------------------------------------

    def wait_serving(self, timeout: float = 30) -> None:
        record = self.wait_for_log(lambda r: "health_port" in r and "metrics_port" in r, timeout)
        self.health_port = int(record["health_port"])
        self.metrics_port = int(record["metrics_port"])

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        if self.health_port is None:
            self.wait_serving(timeout)
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                status, body = self.readyz()
            except (OSError, ValueError) as e:
                last = e
            else:
                if status == 200:
                    return body
                last = body
            time.sleep(0.1)
        raise AssertionError(
            f"operator {self.identity} not ready in {timeout}s (last: {last!r}, exit status "
            f"{self.proc.poll()}); output:\n{self.output()[-4000:]}"
        )

    def wait_role(self, role: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.readyz()
            if status == 200 and body["role"] == role:
                return
            time.sleep(0.1)
        raise AssertionError(f"operator {self.identity} never became {role}: {body}")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(10)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout)


def kubeconfig_namespace(kubeconfig: Path) -> str:
    """The namespace of the kubeconfig's current context: where the ServiceAccount, and the
    Role that lets it hold the election lease, live."""
    config = yaml.safe_load(kubeconfig.read_text())
    current = config["current-context"]
    (context,) = (c["context"] for c in config["contexts"] if c["name"] == current)
    return context.get("namespace", "default")


class OperatorRunner:
    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        *,
        lease_namespace: str | None = None,
        extra_args: Sequence[str] = FAST_TIMING,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.lease_namespace = lease_namespace or kubeconfig_namespace(kubeconfig)
        self.lease_name = constants.DEFAULT_LEASE_NAME
        self.extra_args = tuple(extra_args)
        self.processes: list[OperatorProcess] = []

    def clear_lease(self, cluster: Any) -> None:
        """Delete the election lease (as admin) so no earlier test's leader lingers in it."""
        cluster.kubectl(
            "delete", "lease", self.lease_name, "-n", self.lease_namespace, "--ignore-not-found"
        )

    def spawn(
        self,
        *,
        identity: str | None = None,
        namespaces: Sequence[str] = (),
        args: Sequence[str] = (),
    ) -> OperatorProcess:
        """Start one operator process without waiting for it."""
        identity = identity or f"op-{uuid.uuid4().hex[:6]}"
        log_path = self.workdir / f"{identity}.log"
        argv = [
            sys.executable, "-m", "arenastack_operator",
            f"--kubeconfig={self.kubeconfig}",
            f"--identity={identity}",
            f"--lease-namespace={self.lease_namespace}",
            f"--lease-name={self.lease_name}",
            "--bind-address=127.0.0.1",
            "--health-port=0",
            "--metrics-port=0",
            *(f"--namespace={ns}" for ns in namespaces),
            *self.extra_args,
            *args,
        ]  # fmt: skip
        # Only what the process needs: no ambient kubeconfig, no pod variables of the test host.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(constants.ENV_PREFIX)
            and k not in ("KUBECONFIG", "POD_NAME", "POD_NAMESPACE")
        }
        with log_path.open("wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        process = OperatorProcess(proc, identity, log_path)
        self.processes.append(process)
        return process

    def start(self, **kwargs: Any) -> OperatorProcess:
        """Start one operator process and wait until it is ready (as leader or standby)."""
        process = self.spawn(**kwargs)
        process.wait_ready()
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.proc.poll() is None:
                try:
                    process.terminate(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


@contextmanager
def fresh_operator(cluster: Any, kubeconfig: Path, folder: Path) -> Iterator[OperatorProcess]:
    """One operator for a test module: any Lease an earlier module's operator left is
    deleted first, so this one leads at once; stopped at the end."""
    runner = OperatorRunner(kubeconfig, folder)
    cluster.kubectl(
        "delete", "lease", runner.lease_name, "-n", runner.lease_namespace, "--ignore-not-found"
    )
    try:
        yield runner.start()
    finally:
        runner.stop_all()
