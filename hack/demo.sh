#!/usr/bin/env bash
# make demo / make demo-down
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--down" ]]; then exec .venv/bin/arenastack demo down; fi
exec .venv/bin/arenastack demo up
