"""Arena battles end to end against the real vLLM engine (CPU build): two engines serving two
different tiny models, registered in the real vote service through its admin API; a battle
streams both answers over SSE, the vote reveals them and reaches the leaderboard, and a side
whose engine has gone makes the turn unvotable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from vllm_processes import Process, counter, start_engine, tiny_model, tiny_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "arena"))
from arena_client import battle, sse_events
from arena_processes import Service, start_service, stop

from arenastack_cluster.arenaclient import answers

pytestmark = pytest.mark.e2e

MODELS = {"tiny-a": 0, "tiny-b": 1}  # served name -> weight seed: two different models
SUCCESS = "vllm:request_success_total"
GENERATED = "vllm:generation_tokens_total"
# The engines' context is 512 tokens: uncapped, a first answer can fill it and the next turn
# is refused.
MAX_ANSWER_TOKENS = 48
ENGINE_READY_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def two_engines(vllm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    workdir = tmp_path_factory.mktemp("arena-engines")
    started: dict[str, Process] = {}
    try:
        for core, (name, seed) in enumerate(MODELS.items()):
            model = tiny_model(vllm_python, seed=seed)
            started[name] = start_engine(vllm_python, tiny_spec(model, name), workdir, core=core)
        for process in started.values():
            process.wait_http("/v1/models", timeout=ENGINE_READY_TIMEOUT_S)
        yield started
    finally:
        for process in started.values():
            process.stop()


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    db = tmp_path_factory.mktemp("arena-vllm") / "arena.db"
    service = start_service(
        f"sqlite:///{db}",
        upstream_first_token_timeout_s=60,
        upstream_timeout_s=120,
        max_answer_tokens=MAX_ANSWER_TOKENS,
    )
    yield service
    stop(service.proc)


def _leaderboard_with(client: httpx.Client, votes: int) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        board = client.get("/api/leaderboard").json()
        if board["votes"] >= votes:
            return board
        time.sleep(0.2)
    raise AssertionError(f"leaderboard never counted {votes} votes: {board}")


def test_battle_on_two_real_engines_vote_and_leaderboard(two_engines, arena):
    with arena.admin() as admin:
        for name, engine in two_engines.items():
            spec = {"endpoint": engine.url + "/v1", "display_name": name.upper(),
                    "organization": "arenastack-tests", "license": "apache-2.0"}  # fmt: skip
            r = admin.put(f"/api/admin/models/{name}", json=spec)
            assert r.status_code == 200, r.text
    before = {name: e.metrics() for name, e in two_engines.items()}

    with arena.client() as c:
        assert {m["name"] for m in c.get("/api/models").json()} == set(MODELS)
        battle_id, events = battle(c, "Write a Python function that adds two numbers.")
        assert events[-1] == ("end", {"votable": True}), events[-3:]
        assert {d["side"] for n, d in events if n == "done"} == {"a", "b"}
        text = answers(events)
        assert text["a"] and text["b"], text
        # Anonymous until the vote.
        assert "model_a" not in c.get(f"/api/battles/{battle_id}").json()

        # A second turn carries the conversation to both engines.
        status, turn = sse_events(c, f"/api/battles/{battle_id}/turns", {"prompt": "And three?"})
        assert status == 200 and turn[-1] == ("end", {"votable": True}), turn[-3:]

        r = c.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert r.status_code == 200, r.text
        reveal = r.json()
        winner, loser = reveal["model_a"]["name"], reveal["model_b"]["name"]
        assert {winner, loser} == set(MODELS)
        # Each engine really served both turns of its side.
        after = {name: e.metrics() for name, e in two_engines.items()}
        for name in MODELS:
            served = counter(after[name], SUCCESS) - counter(before[name], SUCCESS)
            generated = counter(after[name], GENERATED) - counter(before[name], GENERATED)
            assert served == 2 and 0 < generated <= 2 * MAX_ANSWER_TOKENS, (name, generated)

        board = _leaderboard_with(c, 1)
        # One vote each is too few to rank: both are shown apart, rated but without a rank.
        assert board["rows"] == []
        rows = {row["model"]: row for row in board["preliminary"]}
        assert set(rows) == set(MODELS) and all(row["votes"] == 1 for row in rows.values())
        assert rows[winner]["rating"] > rows[loser]["rating"]
        assert rows[winner]["rank"] is None and rows[loser]["rank"] is None

        # One engine gone: its side ends with an error and the turn cannot be voted on.
        two_engines[loser].stop()
        battle_id, events = battle(c, "Still there?")
        errors = [d for n, d in events if n == "error"]
        assert len(errors) == 1 and events[-1] == ("end", {"votable": False}), events[-3:]
        refused = c.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert refused.status_code == 409, refused.text
        assert _leaderboard_with(c, 1)["votes"] == 1
