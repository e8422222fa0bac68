#!/usr/bin/env bash
# make setup, after apt and venv: the Go toolchain and the CPU vLLM environment, with the
# images built at the same time (on a cold machine each takes about 20 minutes, and the
# image build waits mostly on downloads and unpacking while the toolchain compiles).
# Everything is cached; a warm run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/images.sh &
images=$!
rc=0
hack/toolchain.sh >/dev/null && hack/vllm-env.sh >/dev/null || rc=$?
wait "$images" || rc=$?
exit "$rc"
