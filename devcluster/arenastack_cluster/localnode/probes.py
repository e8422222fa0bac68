"""Readiness, liveness and startup probes: httpGet, tcpSocket and exec."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class ProbeTarget:
    """Where a probe reaches its container: the pod IP, its ports, and how to exec in it."""

    ip: str
    ports: dict[str, int]
    exec_prefix: Callable[[], list[str] | None]
    env: dict[str, str]


def _port(value: int | str, target: ProbeTarget) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    if value not in target.ports:
        raise ValueError(f"probe names unknown port {value!r}")
    return target.ports[value]


def run_once(probe: dict, target: ProbeTarget) -> tuple[bool, str]:
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            spec = probe["httpGet"]
            host = spec.get("host") or target.ip
            port = _port(spec["port"], target)
            if spec.get("scheme", "HTTP").upper() == "HTTPS":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, port, timeout=timeout, context=ctx
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
            headers.setdefault("User-Agent", "kube-probe/1.34")
            try:
                conn.request("GET", spec.get("path", "/"), headers=headers)
                status = conn.getresponse().status
            finally:
                conn.close()
            return 200 <= status < 400, f"HTTP probe failed with statuscode: {status}"
        if "tcpSocket" in probe:
            spec = probe["tcpSocket"]
            port = _port(spec["port"], target)
            with socket.create_connection((spec.get("host") or target.ip, port), timeout=timeout):
                return True, ""
        if "exec" in probe:
            prefix = target.exec_prefix()
            if prefix is None:
                return False, "container is not running"
            cmd = probe["exec"]["command"]
            proc = subprocess.run(
                [*prefix, *cmd], capture_output=True, timeout=timeout, env=target.env
            )
            out = (proc.stdout + proc.stderr).decode(errors="replace").strip()[-200:]
            return proc.returncode == 0, f"exec probe exited {proc.returncode}: {out}"
        return False, f"unsupported probe handler {sorted(probe)}"
    except subprocess.TimeoutExpired:
        return False, f"probe timed out after {timeout:g}s"
    except (OSError, ValueError, http.client.HTTPException) as err:
        return False, f"probe failed: {err}"


def nsenter_prefix(init_pid: int) -> list[str]:
    nsenter = shutil.which("nsenter") or "nsenter"
    return [nsenter, "-t", str(init_pid), "-n", "-m", "-u", "-p", "--"]


class Prober(threading.Thread):
    """Runs one probe on its schedule; `result` follows the thresholds like the kubelet."""

    def __init__(
        self,
        kind: str,
        probe: dict,
        target: ProbeTarget,
        on_change: Callable[[str, bool, str], None],
    ) -> None:
        super().__init__(daemon=True, name=f"probe-{kind}")
        self.kind = kind
        self.probe = probe
        self.target = target
        self.on_change = on_change
        self.stop = threading.Event()
        # Readiness and startup start failed; liveness starts healthy.
        self.result = kind == "liveness"

    def run(self) -> None:
        p = self.probe
        period = float(p.get("periodSeconds", 10))
        success_needed = int(p.get("successThreshold", 1))
        failure_needed = int(p.get("failureThreshold", 3))
        if self.stop.wait(float(p.get("initialDelaySeconds", 0))):
            return
        successes = failures = 0
        while not self.stop.is_set():
            started = time.monotonic()
            ok, message = run_once(p, self.target)
            if self.stop.is_set():
                return
            if ok:
                successes, failures = successes + 1, 0
                if not self.result and successes >= success_needed:
                    self.result = True
                    self.on_change(self.kind, True, "")
            else:
                successes, failures = 0, failures + 1
                if failures >= failure_needed and (self.result or self.kind != "readiness"):
                    self.result = False
                    self.on_change(self.kind, False, message)
                    failures = 0
                elif failures >= failure_needed:
                    failures = 0
            self.stop.wait(max(period - (time.monotonic() - started), 0.05))
