"""Runs the vote service: python -m arenastack_arena.service [--host H] [--port P]."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from arenastack_arena.service.app import create_app
from arenastack_arena.service.settings import Settings

# The database writer thread takes the GIL back after every statement; while
# the event loop is busy it waits up to one switch interval each time (5 ms by
# default), which would add tens of milliseconds to every group commit.
GIL_SWITCH_INTERVAL_S = 0.0005


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        create_app(Settings.from_env()),
        host=args.host,
        port=args.port,
        proxy_headers=False,
        loop="uvloop",
        http="httptools",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
