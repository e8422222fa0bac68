"""Client helpers for the service tests (httpx): a streamed battle, parsed by the demo's client."""

from __future__ import annotations

from typing import Any

import httpx

from arenastack_cluster.arenaclient import sse_events as parse_sse


def sse_events(
    client: httpx.Client, path: str, body: dict[str, Any]
) -> tuple[int, list[tuple[str, Any]]]:
    with client.stream("POST", path, json=body) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [("http-error", response.json())]
        return 200, parse_sse(response.iter_lines())


def battle(
    client: httpx.Client, prompt: str, category: str | None = None
) -> tuple[str, list[tuple[str, Any]]]:
    body: dict[str, Any] = {"prompt": prompt}
    if category:
        body["category"] = category
    status, events = sse_events(client, "/api/battles", body)
    assert status == 200, events
    assert events[0][0] == "battle"
    return events[0][1]["battle_id"], events
