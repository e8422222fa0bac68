"""A small client for the arena vote service's HTTP API (standard library only): health, the
leaderboard, the admin registry, and a battle read from its server-sent events."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from arenastack_cluster.processes import ClusterError

TIMEOUT_S = 30.0
# A battle streams two whole answers; a cold engine on a busy machine is slow to its first token.
BATTLE_TIMEOUT_S = 300.0


Event = tuple[str, Any]


def sse_events(lines: Iterable[str]) -> list[Event]:
    """(event name, decoded JSON data) for each server-sent event in `lines` (no line ends)."""
    events: list[Event] = []
    name, data = "message", ""
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif not line and data:
            events.append((name, json.loads(data)))
            name, data = "message", ""
    return events


def answers(events: Iterable[Event]) -> dict[str, str]:
    """Each side's whole answer, from a battle's `delta` events."""
    out = {"a": "", "b": ""}
    for name, data in events:
        if name == "delta":
            out[data["side"]] += data["text"]
    return out


@dataclass
class Battle:
    battle_id: str
    events: list[Event] = field(default_factory=list)

    def answers(self) -> dict[str, str]:
        return answers(self.events)

    @property
    def votable(self) -> bool:
        return bool(self.events) and self.events[-1] == ("end", {"votable": True})


class ArenaClient:
    def __init__(self, base_url: str, admin_token: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.admin_token = admin_token

    def _request(
        self, method: str, path: str, body: Any = None, admin: bool = False
    ) -> urllib.request.Request:
        headers = {"content-type": "application/json"}
        if admin:
            headers["authorization"] = f"Bearer {self.admin_token}"
        data = json.dumps(body).encode() if body is not None else None
        return urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )

    def call(self, method: str, path: str, body: Any = None, admin: bool = False) -> Any:
        """JSON in, JSON out; an HTTP error becomes a ClusterError with the service's message."""
        try:
            with urllib.request.urlopen(
                self._request(method, path, body, admin), timeout=TIMEOUT_S
            ) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")
            raise ClusterError(f"arena {method} {path}: HTTP {err.code} {detail}") from None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=3) as resp:
                return resp.status == 200
        except OSError:
            return False

    def leaderboard(self, **params: str) -> dict[str, Any]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return self.call("GET", "/api/leaderboard" + (f"?{query}" if query else ""))

    def wait_leaderboard(self, votes: int, timeout: float = 120.0) -> dict[str, Any]:
        """The board once it counts at least `votes` battles (it is refreshed in the
        background after votes, so a fresh vote shows up a moment later)."""
        deadline = time.monotonic() + timeout
        board: dict[str, Any] = {}
        while time.monotonic() < deadline:
            board = self.leaderboard()
            if board.get("votes", 0) >= votes:
                return board
            time.sleep(0.5)
        raise ClusterError(f"arena leaderboard still at {board.get('votes')} votes, not {votes}")

    def battle(self, prompt: str) -> Battle:
        req = self._request("POST", "/api/battles", {"prompt": prompt})
        try:
            with urllib.request.urlopen(req, timeout=BATTLE_TIMEOUT_S) as resp:
                events = sse_events(raw.decode().rstrip("\r\n") for raw in resp)
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")
            raise ClusterError(f"arena battle refused: HTTP {err.code} {detail}") from None
        if not events or events[0][0] != "battle":
            raise ClusterError(f"arena battle stream did not start with a battle event: {events}")
        return Battle(events[0][1]["battle_id"], events)

    def vote(self, battle_id: str, winner: str) -> dict[str, Any]:
        return self.call("POST", f"/api/battles/{battle_id}/vote", {"winner": winner})
