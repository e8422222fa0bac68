"""``python -m arenastack_arena.evaluation --config /etc/arenastack/run/run.json``

The ArenaEvaluation Job's runner. Exit codes: 0 the run finished (battle errors are in the
status), 2 a bad configuration (one line naming the field), 3 the judge or the arena could
not be reached after retries (the Job's backoff retries, and the new pod resumes). The final
summary is one JSON line on stdout; logs go to stderr; secrets are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from arenastack_arena.evaluation import report
from arenastack_arena.evaluation.config import (
    DEFAULT_CONFIG,
    load_config,
    load_prompts,
    load_template,
    resolve_secrets,
)
from arenastack_arena.evaluation.errors import EXIT_OK, RunnerError
from arenastack_arena.evaluation.kube_status import in_cluster
from arenastack_arena.evaluation.runner import run

TERMINATION_LOG = Path("/dev/termination-log")
TERMINATION_LOG_BYTES = 4096  # what Kubernetes keeps of it


def termination_message(text: str, path: Path = TERMINATION_LOG) -> None:
    """One line for the pod's status; only where Kubernetes made the file (never create it)."""
    if not path.exists() or not os.access(path, os.W_OK):
        return
    try:
        path.write_bytes(text.encode()[:TERMINATION_LOG_BYTES])
    except OSError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arenastack_arena.evaluation")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="the run.json of the run")
    parser.add_argument("--log-level", default=os.environ.get("ARENASTACK_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiohttp's access and client logs would repeat URLs; ours say what matters.
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    try:
        config = load_config(args.config)
        secrets = resolve_secrets(config)
        prompts = load_prompts(config)
        template = load_template(config)
        summary = asyncio.run(run(config, secrets, prompts, template, kube=in_cluster()))
    except RunnerError as err:
        message = f"error: {err}"
        print(message, file=sys.stderr, flush=True)
        termination_message(message)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    print(json.dumps(summary, sort_keys=True), flush=True)
    consistency = (summary.get("judge") or {}).get("positionConsistency")
    termination_message(
        report.short_summary(summary["progress"], summary.get("leader"), consistency)
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
