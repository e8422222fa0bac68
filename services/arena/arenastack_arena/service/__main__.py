"""Runs the vote service: python -m arenastack_arena.service [--host H] [--port P]."""

from __future__ import annotations

import argparse
import gc
import logging
import sys

import uvicorn

from arenastack_arena.service.app import create_app
from arenastack_arena.service.settings import Settings

# The database writer thread takes the GIL back after every statement; while
# the event loop is busy it waits up to one switch interval each time (5 ms by
# default), which would add tens of milliseconds to every group commit.
GIL_SWITCH_INTERVAL_S = 0.0005
# CPython's default thresholds (700, 10, 10) ran a collection of the older
# generations about every half second under 2,000 votes/s, each scanning the
# whole battle cache with every thread stopped for ~100 ms: the p99 of a vote
# was 130-200 ms and the throughput 25% lower. Requests make few reference
# cycles, so collecting rarely costs little memory.
GC_THRESHOLDS = (50_000, 20, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.set_threshold(*GC_THRESHOLDS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(Settings.from_env())
    # What is loaded by now (modules, routes) lives as long as the process: out of every scan.
    gc.freeze()
    uvicorn.run(
        app,
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
