"""Battles, votes, reveal and the leaderboard on the real service (SQLite and PostgreSQL)."""

from __future__ import annotations

import time

import pytest
from arena_client import battle, sse_events

from arenastack_arena.ratings import OUTCOMES
from arenastack_arena.service.migrations import MIGRATIONS
from arenastack_cluster.arenaclient import answers


def test_battle_streams_both_sides_then_vote_reveals(arena):
    with arena.client() as c:
        battle_id, events = battle(c, "What is 2+2?")
        names = [e[0] for e in events]
        assert names[-1] == "end" and events[-1][1] == {"votable": True}
        assert {d["side"] for n, d in events if n == "done"} == {"a", "b"}
        text = answers(events)
        assert all("heard 1 messages: What is 2+2?" in t for t in text.values())
        # Anonymous before the vote: no model names anywhere in the API.
        state = c.get(f"/api/battles/{battle_id}").json()
        assert "model_a" not in state and state["voted"] is False
        assert state["turns"][0]["answer_a"] == text["a"]
        r = c.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert r.status_code == 200, r.text
        reveal = r.json()
        assert {reveal["model_a"]["name"], reveal["model_b"]["name"]} == {"alpha", "beta"}
        assert (
            reveal["model_a"]["display_name"] in ("Alpha", "Beta")
            and "endpoint" not in reveal["model_a"]
        )
        # The stream really came from the model that is revealed on side A.
        assert f"**{reveal['model_a']['name']}**" in text["a"]
        again = c.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_b"})
        assert again.status_code == 409 and "already" in again.json()["detail"]
        after = c.get(f"/api/battles/{battle_id}").json()
        assert after["voted"] and after["model_a"] == reveal["model_a"]["name"]


def test_second_turn_carries_the_conversation(arena):
    with arena.client() as c:
        battle_id, _ = battle(c, "first question")
        status, events = sse_events(
            c, f"/api/battles/{battle_id}/turns", {"prompt": "second question"}
        )
        assert status == 200 and events[-1] == ("end", {"votable": True})
        assert all("heard 3 messages: second question" in t for t in answers(events).values())
        r = c.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"})
        assert r.status_code == 200
        status, events = sse_events(c, f"/api/battles/{battle_id}/turns", {"prompt": "third"})
        assert status == 409 and "already voted" in events[0][1]["detail"]


def test_votes_reach_the_leaderboard_with_categories(arena):
    with arena.client() as c:
        for n in range(6):
            battle_id, _ = battle(c, f"code question {n}", category="coding")
            outcome = OUTCOMES[n % len(OUTCOMES)]
            assert (
                c.post(f"/api/battles/{battle_id}/vote", json={"winner": outcome}).status_code
                == 200
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            board = c.get("/api/leaderboard", params={"category": "coding"})
            if board.status_code == 200 and board.json()["votes"] >= 6:
                break
            time.sleep(0.2)
        data = board.json()
        # Six votes are fewer than ARENA_MIN_BATTLES: both models are listed, as preliminary.
        assert data["votes"] == 6 and data["rows"] == []
        assert {r["model"] for r in data["preliminary"]} == {"alpha", "beta"}
        assert all(r["lower"] <= r["rating"] <= r["upper"] for r in data["preliminary"])
        assert all(r["rank"] is None for r in data["preliminary"])
        assert "coding" in data["categories"]
        overall = c.get("/api/leaderboard").json()
        # The heatmap shows the ranked models only (none yet, with a few votes each).
        assert overall["votes"] >= 6 and overall["preliminary"]
        assert overall["heatmap"]["models"] == [r["model"] for r in overall["rows"]]
        # The style-controlled board is refit on its own schedule, after the plain boards.
        while time.monotonic() < deadline:
            style = c.get("/api/leaderboard", params={"style_control": "true"}).json()
            if style["votes"] >= 6:
                break
            time.sleep(0.2)
        assert style["preliminary"] and "sum_assistant_tokens" in style["coefficients"]
        assert c.get("/api/leaderboard", params={"category": "nope"}).status_code == 404


def test_unknown_and_malformed_battles(arena):
    with arena.client() as c:
        r = c.post("/api/battles/doesnotexist/vote", json={"winner": "tie"})
        assert r.status_code == 404 and "not found" in r.json()["detail"]
        assert c.post("/api/battles/bad%20id!/vote", json={"winner": "tie"}).status_code == 422
        r = c.post("/api/battles/x/vote", json={"winner": "draw"})
        assert r.status_code == 422 and "winner" in r.text
        assert c.post("/api/battles", json={"prompt": ""}).status_code == 422
        assert c.post("/api/battles", json={"prompt": "hi", "extra": 1}).status_code == 422
        r = c.post(
            "/api/battles", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422


def test_migrations_are_versioned_and_not_reapplied(arena):
    with arena.client() as c:
        voted_id, _ = battle(c, "before the restart")
        assert c.post(f"/api/battles/{voted_id}/vote", json={"winner": "tie"}).status_code == 200
    arena.restart()
    import sqlite3

    if arena.database_url.startswith("sqlite"):
        with sqlite3.connect(arena.database_url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    else:
        import psycopg

        with psycopg.connect(arena.database_url) as conn:
            rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [v for v, _, _ in MIGRATIONS] == [1, 2, 3, 4, 5]
    with arena.client() as c:
        deadline = time.monotonic() + 90  # the first refresh after a restart is asynchronous
        while c.get("/api/leaderboard").json()["votes"] < 1 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert c.get("/api/leaderboard").json()["votes"] >= 1
        # Battle state comes back from the database: still voted, names revealed.
        state = c.get(f"/api/battles/{voted_id}").json()
        assert state["voted"] and {state["model_a"], state["model_b"]} == {"alpha", "beta"}


@pytest.mark.parametrize("winner", OUTCOMES)
def test_every_outcome_is_accepted(arena, winner):
    with arena.client() as c:
        battle_id, _ = battle(c, f"outcome {winner}")
        r = c.post(f"/api/battles/{battle_id}/vote", json={"winner": winner})
        assert r.status_code == 200 and r.json()["winner"] == winner
