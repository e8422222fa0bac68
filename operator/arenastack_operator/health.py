"""/healthz and /readyz (health port) and /metrics (metrics port), served from the main loop."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from arenastack_operator import constants
from arenastack_operator.metrics import OperatorMetrics


class Role(enum.StrEnum):
    STARTING = "starting"
    STANDBY = "standby"  # waiting for the lease: healthy and ready, but not reconciling
    LEADER = "leader"
    STOPPING = "stopping"


@dataclass
class Probe:
    """What the probes report; the main loop updates it, the handlers only read it."""

    identity: str
    # A standby is ready only while it can reach the apiserver; stale contact means it could not
    # take over, so the Service (and a rolling update) should not count it.
    contact_max_age: float
    role: Role = Role.STARTING
    kopf_ready: Callable[[], bool] = lambda: False
    kopf_alive: Callable[[], bool] = lambda: False
    last_contact: Callable[[], float | None] = lambda: None
    holder: Callable[[], str | None] = lambda: None
    clock: Callable[[], float] = field(default=time.monotonic)

    def details(self) -> dict[str, Any]:
        return {"identity": self.identity, "role": str(self.role), "leader": self.holder()}

    def live(self) -> tuple[bool, str]:
        if self.role is Role.LEADER and not self.kopf_alive():
            return False, "the reconciling engine has stopped"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        match self.role:
            case Role.LEADER:
                if self.kopf_ready():
                    return True, "ok"
                return False, "leader is starting its handlers"
            case Role.STANDBY:
                contact = self.last_contact()
                if contact is not None and self.clock() - contact <= self.contact_max_age:
                    return True, "ok"
                return False, "standby cannot reach the apiserver"
            case _:
                return False, str(self.role)


def _answer(check: Callable[[], tuple[bool, str]], probe: Probe) -> web.Response:
    ok, reason = check()
    return web.json_response(
        {"status": "ok" if ok else "unavailable", "reason": reason, **probe.details()},
        status=200 if ok else 503,
    )


def health_app(probe: Probe) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return _answer(probe.live, probe)

    async def readyz(_: web.Request) -> web.Response:
        return _answer(probe.ready, probe)

    app = web.Application()
    app.router.add_get(constants.HEALTHZ_PATH, healthz)
    app.router.add_get(constants.READYZ_PATH, readyz)
    return app


def metrics_app(metrics: OperatorMetrics) -> web.Application:
    async def serve(_: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get(constants.METRICS_PATH, serve)
    return app


class Servers:
    """Both HTTP listeners; `ports` holds the bound ports (useful when 0 asked for any)."""

    def __init__(self) -> None:
        self._runners: list[web.AppRunner] = []
        self.ports: dict[str, int] = {}

    async def start(self, name: str, app: web.Application, host: str, port: int) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port)
        await site.start()
        self.ports[name] = runner.addresses[0][1]

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
