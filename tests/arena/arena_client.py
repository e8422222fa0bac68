"""Client helpers for the service tests: SSE parsing and a whole battle."""

from __future__ import annotations

import json
from typing import Any

import httpx


def sse_events(
    client: httpx.Client, path: str, body: dict[str, Any]
) -> tuple[int, list[tuple[str, Any]]]:
    events: list[tuple[str, Any]] = []
    with client.stream("POST", path, json=body) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [("http-error", response.json())]
        name, data = "message", ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif line == "" and data:
                events.append((name, json.loads(data)))
                name, data = "message", ""
    return 200, events


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


def answers(events: list[tuple[str, Any]]) -> dict[str, str]:
    out = {"a": "", "b": ""}
    for name, data in events:
        if name == "delta":
            out[data["side"]] += data["text"]
    return out
