#!/usr/bin/env bash
# Builds the cached environment of FastChat 0.2.36's MT-Bench scripts (fastchat.llm_judge), the
# anchor of tests/bench/bench_arena_evaluation.py, outside the repository; prints its path.
#   hack/fastchat-env.sh          build once (a stamp makes later calls instant)
#   hack/fastchat-env.sh --force  rebuild from scratch
#
# FastChat 0.2.36 calls the judge and the contestants through the openai 0.x client (openai<1),
# which the vLLM environment cannot hold (vLLM needs openai>=1), and fastchat.llm_judge imports
# torch and transformers through fastchat.model. So: a venv of its own with FastChat, openai
# 0.28.1 and shortuuid (installed without their dependencies), which reads everything else
# (torch, transformers, anthropic, requests, aiohttp, tqdm, numpy, ...) from the vLLM
# environment's site-packages through a .pth file. A .pth entry is appended to sys.path after the
# venv's own site-packages, so the venv's openai 0.28 shadows the vLLM environment's openai.
# Both venvs use the same interpreter (python3.11), so the shared compiled packages load.
set -euo pipefail
cd "$(dirname "$0")/.."
FASTCHAT_VERSION=0.2.36
OPENAI_VERSION=0.28.1
SHORTUUID_VERSION=1.0.13
ACCELERATE_VERSION=1.15.0  # fastchat.model.compression imports it at module level
PYTHON=${PYTHON:-python3.11}
CACHE_ROOT="${ARENASTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arenastack}"
VENV="${ARENASTACK_FASTCHAT_VENV:-$CACHE_ROOT/fastchat-$FASTCHAT_VERSION}"
STAMP="$VENV/.arenastack-ready"
VLLM_VENV=$(hack/vllm-env.sh | tail -1)
PACKAGES=("fschat==$FASTCHAT_VERSION" "openai==$OPENAI_VERSION" "shortuuid==$SHORTUUID_VERSION"
          "accelerate==$ACCELERATE_VERSION")
# The stamp names the packages and the environment they borrow from: a rebuilt vLLM env at
# another path rebuilds this one.
KEY="${PACKAGES[*]} on $VLLM_VENV"
stamped() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "$KEY" ]]; }

if [[ "${1:-}" == "--force" ]]; then rm -rf "$VENV"; fi
if stamped; then echo "$VENV"; exit 0; fi

hack/venv.sh >/dev/null  # bootstraps uv into the cache
UV=$(ls -d "$CACHE_ROOT"/uv-*/bin/uv | tail -1)
export UV_HTTP_TIMEOUT=${UV_HTTP_TIMEOUT:-300}
started=$SECONDS
rm -rf "$VENV"
"$UV" venv -q --python "$PYTHON" "$VENV"
PY="$VENV/bin/python"
"$UV" pip install -q --python "$PY" --no-deps "${PACKAGES[@]}"
site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
vllm_site=$("$VLLM_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$vllm_site" >"$site/arenastack-vllm-env.pth"
# The check: both scripts' imports resolve, openai is the venv's 0.x, torch the vLLM env's.
"$PY" - >&2 <<'PYEOF'
import fastchat, openai, torch
import fastchat.llm_judge.gen_api_answer  # noqa: F401
import fastchat.llm_judge.gen_judgment  # noqa: F401
assert openai.version.VERSION.startswith("0."), openai.version.VERSION
print(f"fastchat-env: fschat {fastchat.__version__}, openai {openai.version.VERSION}, "
      f"torch {torch.__version__} (from {torch.__file__.rsplit('/torch/', 1)[0]})")
PYEOF
echo "$KEY" >"$STAMP"
echo "fastchat-env: built in $((SECONDS - started)) s" >&2
echo "$VENV"
