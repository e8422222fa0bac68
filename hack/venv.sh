#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv from
# requirements/lock.txt. uv comes from PyPI into a cached bootstrap venv.
#   hack/venv.sh          sync .venv with the lock
#   hack/venv.sh --lock   recompile the lock from requirements/*.in, then sync
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.8
PYTHON=${PYTHON:-python3.11}
CACHE_ROOT="${ARENASTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arenastack}"
BOOT="$CACHE_ROOT/uv-$UV_VERSION"
UV="$BOOT/bin/uv"
if [[ ! -x "$UV" ]]; then
  "$PYTHON" -m venv "$BOOT"
  "$BOOT/bin/pip" install -q "uv==$UV_VERSION"
fi
if [[ "${1:-}" == "--lock" || ! -f requirements/lock.txt ]]; then
  # lock-excludes.txt: dependencies declared by a locked package that the project never uses.
  "$UV" pip compile -q --python "$PYTHON" --no-header --excludes requirements/lock-excludes.txt \
    requirements/*.in -o requirements/lock.txt
  # The ray images' own locks, one per Ray version they are built at.
  # shellcheck source=images/ray/versions.env
  source images/ray/versions.env
  # shellcheck source=images/vllm-cpu/versions.env
  source images/vllm-cpu/versions.env
  for version in "$RAY_VERSION" "$VLLM_RAY_VERSION"; do
    echo "ray[default]==$version" | "$UV" pip compile -q --python "$PYTHON" --no-header - \
      -o "requirements/ray-$version.txt"
  done
fi
stamp=.venv/.lock.sha
want=$(cat requirements/lock.txt pyproject.toml devcluster/pyproject.toml charts/dashboards/pyproject.toml | sha256sum | cut -c1-16)
if [[ -x .venv/bin/python && -f $stamp && "$(cat $stamp)" == "$want" ]]; then
  exit 0
fi
[[ -x .venv/bin/python ]] || "$UV" venv -q --python "$PYTHON" .venv
"$UV" pip sync -q --python .venv/bin/python requirements/lock.txt
# The product (operator, arena) and, beside it, the development cluster (devcluster/) and the
# dashboards generator (charts/dashboards/).
"$UV" pip install -q --python .venv/bin/python --no-deps -e . -e devcluster -e charts/dashboards
echo "$want" >"$stamp"
echo "venv: .venv synced with requirements/lock.txt"
