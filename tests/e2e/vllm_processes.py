"""The real vLLM engine (CPU build) and vllm-router as local processes for the e2e tests.

The engine command is the one the operator puts in a replica's pod (engine.py builds it from an
InferenceDeploymentSpec); only the address differs, because several engines share this host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from arenastack_cluster import vllmenv
from arenastack_cluster.processes import free_port as free_port
from arenastack_cluster.vllmenv import tiny_lora as tiny_lora
from arenastack_cluster.vllmenv import tiny_model as tiny_model
from arenastack_operator.inferencedeployment import engine, names
from arenastack_operator.inferencedeployment.spec import InferenceDeploymentSpec

REPO = Path(__file__).resolve().parents[2]
ENGINE_START_TIMEOUT_S = 300.0  # cold start on a busy 2-core machine
ROUTER_START_TIMEOUT_S = 60.0
# vLLM's fast start on CPU: no compilation, a small KV cache.
FAST_FLAGS = vllmenv.FAST_ENGINE_ARGS
SERVED = "tiny"  # the served model name of the e2e engines
# Builds (once, cached outside the repository) and returns the vLLM environment's python.
vllm_env_python = vllmenv.vllm_python


def with_address(args: list[str], host: str, port: int) -> list[str]:
    result = list(args)
    result[result.index("--host") + 1] = host
    result[result.index("--port") + 1] = str(port)
    return result


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    argv: list[str] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_http(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.argv[:4]} exited with {self.proc.returncode}:\n{self.output()[-4000:]}"
                )
            try:
                if httpx.get(self.url + path, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.url}{path} not ready in {timeout}s:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def metrics(self) -> str:
        return httpx.get(self.url + names.METRICS_PATH, timeout=5.0).text


def spawn(
    argv: list[str], env: dict[str, str], url: str, log: Path, cwd: str | None = None
) -> Process:
    with log.open("wb") as out:
        # A session of its own, so stop() ends the engine's whole process group.
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)  # fmt: skip
    return Process(proc, url, log, argv)


def start_engine(
    python: Path, spec: InferenceDeploymentSpec, workdir: Path, *, core: int | None = None
) -> Process:
    """The operator's engine command for `spec`, as a local process on a free port."""
    port = free_port()
    args = with_address(engine.engine_args(spec, engine.default_executor(spec)), "127.0.0.1", port)
    argv = [str(python), *engine.engine_command()[1:], *args]
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "VLLM_CACHE_ROOT": str(REPO / ".state" / "vllm-cache")}  # fmt: skip
    env.pop("VLLM_CPU_KVCACHE_SPACE", None)  # it overrides --kv-cache-memory-bytes
    if core is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = str(core)
    return spawn(argv, env, f"http://127.0.0.1:{port}", workdir / f"engine-{port}.log")


def start_router(python: Path, args: list[str], workdir: Path) -> Process:
    """vllm-router with the operator's arguments (router_args), on a local address."""
    port = free_port()
    args = with_address(args, "127.0.0.1", port)
    args[args.index("--prometheus-port") + 1] = str(free_port())
    args[args.index("--prometheus-host") + 1] = "127.0.0.1"
    argv = [str(python.parent / names.ROUTER_COMMAND), *args]
    return spawn(argv, dict(os.environ), f"http://127.0.0.1:{port}", workdir / f"router-{port}.log")


def counter(metrics_text: str, name: str) -> float:
    """Sum of a metric's samples in Prometheus text."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def tiny_spec(model: Path, name: str, **engine_fields: Any) -> InferenceDeploymentSpec:
    engine_fields = {"maxModelLen": 512, "extraArgs": FAST_FLAGS, **engine_fields}
    return InferenceDeploymentSpec.model_validate(
        {
            "model": {"path": str(model), "servedModelName": name, "dtype": "float32"},
            "gpusPerReplica": 0,
            "engine": engine_fields,
        }
    )
