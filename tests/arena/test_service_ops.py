"""Registry admin, failure handling, protection, export/import and metrics."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
from arena_client import battle, sse_events
from arena_processes import ADMIN_TOKEN, start_service, stop
from arena_support import models_file

from arenastack_cluster.arena_data import chatbot_arena_counts
from arenastack_cluster.arenaclient import answers
from arenastack_cluster.cluster import toolchain_bin


def register(service, name: str, endpoint: str, **extra) -> None:
    with service.admin() as admin:
        r = admin.put(f"/api/admin/models/{name}", json={"endpoint": endpoint, **extra})
        assert r.status_code == 200, r.text


def deactivate_all_but(service, keep: set[str]) -> None:
    with service.admin() as admin:
        for m in admin.get("/api/admin/models").json():
            if m["name"] not in keep and m["active"]:
                assert admin.delete(f"/api/admin/models/{m['name']}").status_code == 200


@pytest.fixture()
def only(arena, model_endpoint):
    """Makes exactly the named models active for one test, restoring alpha and beta after."""

    def activate(*names: str) -> None:
        for name in names:
            register(arena, name, model_endpoint)
        deactivate_all_but(arena, set(names))

    yield activate
    for name in ("alpha", "beta"):
        register(arena, name, model_endpoint, display_name=name.title())
    deactivate_all_but(arena, {"alpha", "beta"})


def test_admin_api_needs_the_token(arena, model_endpoint):
    with arena.client() as c:
        assert c.get("/api/admin/models").status_code == 401
        r = c.put(
            "/api/admin/models/x",
            json={"endpoint": model_endpoint},
            headers={"authorization": "Bearer wrong"},
        )
        assert r.status_code == 401 and "admin token" in r.json()["detail"]
    with arena.admin() as admin:
        r = admin.put("/api/admin/models/gamma", json={"endpoint": "ftp://nope"})
        assert r.status_code == 422 and "endpoint" in r.text
        r = admin.put(
            "/api/admin/models/gamma",
            json={
                "endpoint": model_endpoint,
                "display_name": "Gamma 7B",
                "organization": "g",
                "license": "mit",
                "price_per_mtok": 1.25,
                "active": False,
            },
        )
        assert r.status_code == 200
        listed = {m["name"]: m for m in admin.get("/api/admin/models").json()}
        assert listed["gamma"]["price_per_mtok"] == 1.25 and listed["gamma"]["active"] is False
        assert listed["alpha"]["organization"] == "test-org"  # from the config file
        assert admin.delete("/api/admin/models/missing").status_code == 404
    with arena.client() as c:
        public = {m["name"] for m in c.get("/api/models").json()}
        assert "gamma" not in public and {"alpha", "beta"} <= public
        assert all("endpoint" not in m for m in c.get("/api/models").json())


def test_one_side_failing_is_reported_and_not_votable(arena, only):
    only("alpha", "fail-model")
    with arena.client() as c:
        battle_id, events = battle(c, "hello")
        errors = [d for n, d in events if n == "error"]
        done = [d for n, d in events if n == "done"]
        assert len(errors) == 1 and len(done) == 1 and "HTTP 500" in errors[0]["message"]
        assert answers(events)[done[0]["side"]].strip()
        assert events[-1] == ("end", {"votable": False})
        r = c.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
        assert r.status_code == 409 and "failed" in r.json()["detail"]
        metrics = c.get("/metrics").text
        assert 'arena_upstream_errors_total{kind="status",model="fail-model"} 1.0' in metrics


def test_a_hanging_side_times_out(arena, only):
    only("beta", "hang-model")
    with arena.client() as c:
        started = time.monotonic()
        _, events = battle(c, "hello")
        assert time.monotonic() - started < 9
        errors = [d for n, d in events if n == "error"]
        assert len(errors) == 1 and "timed out" in errors[0]["message"]


def test_export_and_import_round_trip(arena, tmp_path, model_endpoint):
    with arena.client() as c:
        for n in range(3):
            battle_id, _ = battle(c, f"export {n}", category="writing")
            assert (
                c.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_b"}).status_code
                == 200
            )
    with arena.admin() as admin:
        lines = admin.get("/api/admin/export").text.strip().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) >= 3
    row = next(r for r in rows if r["category"] == "writing")
    assert {
        "question_id",
        "model_a",
        "model_b",
        "winner",
        "judge",
        "turn",
        "anony",
        "tstamp",
    } <= set(row)
    assert row["conv_metadata"]["sum_assistant_a_tokens"] > 0 and row["anony"] is True
    # Into a fresh service on SQLite: same votes, same leaderboard counts; re-import adds nothing.
    other = start_service(
        f"sqlite:///{tmp_path / 'imported.db'}",
        models_file=models_file(tmp_path, model_endpoint, ["alpha", "beta"]),
    )
    try:
        with other.admin() as admin:
            body = "\n".join(lines) + "\n"
            r = admin.post("/api/admin/import", content=body.encode())
            assert r.json() == {"received": len(rows), "added": len(rows), "duplicates": 0}
            r = admin.post("/api/admin/import", content=body.encode())
            assert r.json()["added"] == 0 and r.json()["duplicates"] == len(rows)
            assert admin.get("/api/admin/export").text.strip().splitlines() == lines
            bad = admin.post(
                "/api/admin/import", content=lines[0].encode() + b'\n{"model_a": "x"}\n'
            )
            assert bad.status_code == 400 and bad.json()["detail"].startswith("line 2: model_b")
            bad = admin.post(
                "/api/admin/import", content=b'{"model_a": "x", "model_b": "y", "winner": "draw"}'
            )
            assert bad.status_code == 400 and "winner must be one of" in bad.json()["detail"]
        with other.client() as c:
            # Generous: the first refresh starts the worker process, slow on a busy machine.
            deadline = time.monotonic() + 60
            while (
                c.get("/api/leaderboard").json()["votes"] < len(rows)
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            assert c.get("/api/leaderboard").json()["votes"] == len(rows)
            assert c.post("/api/admin/import", content=b"").status_code == 401
    finally:
        stop(other.proc)


def test_size_limits_and_headers(arena):
    with arena.client() as c:
        r = c.post("/api/battles", json={"prompt": "x" * 9000})
        assert r.status_code == 413 and "8000 characters" in r.json()["detail"]
        r = c.post(
            "/api/battles",
            content=b"{" + b" " * 70_000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413 and "too large" in r.json()["detail"]
        r = c.get("/healthz", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        pre = c.options(
            "/api/battles",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in pre.headers
        page = c.get("/")
        assert (
            page.status_code == 200
            and "script-src 'self'" in page.headers["content-security-policy"]
        )
        assert page.headers["x-content-type-options"] == "nosniff"


def test_rate_limit_per_client(tmp_path, model_endpoint):
    service = start_service(
        f"sqlite:///{tmp_path / 'rl.db'}",
        vote_rate_per_minute=3,
        models_file=models_file(tmp_path, model_endpoint, ["alpha", "beta"]),
    )
    try:
        with service.client() as c:
            codes = [
                c.post("/api/battles/nosuchbattle/vote", json={"winner": "tie"}).status_code
                for _ in range(5)
            ]
            assert codes[:3] == [404, 404, 404] and codes[3:] == [429, 429]
            r = c.post("/api/battles/nosuchbattle/vote", json={"winner": "tie"})
            assert "slow down" in r.json()["detail"]
            assert 'arena_rate_limited_total{bucket="vote"}' in c.get("/metrics").text
    finally:
        stop(service.proc)


def test_metrics_count_battles_votes_and_latency(arena):
    with arena.client() as c:
        before = c.get("/metrics").text
        battle_id, _ = battle(c, "metrics")
        assert (
            c.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie (bothbad)"}).status_code
            == 200
        )
        after = c.get("/metrics").text

    def value(text: str, series: str) -> float:
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    assert (
        value(after, "arena_battles_started_total")
        == value(before, "arena_battles_started_total") + 1
    )
    outcome = 'arena_votes_total{outcome="tie (bothbad)"}'
    assert value(after, outcome) == value(before, outcome) + 1
    assert (
        "arena_request_duration_seconds_bucket" in after
        and "arena_upstream_duration_seconds" in after
    )
    assert "arena_leaderboard_refresh_seconds_count" in after and "arena_db_errors" in after
    assert 'route="/api/battles/{battle_id}/vote"' in after


def test_admin_disabled_without_token(tmp_path):
    service = start_service(f"sqlite:///{tmp_path / 'noadmin.db'}", admin_token="")
    try:
        with httpx.Client(
            base_url=service.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as c:
            r = c.get("/api/admin/models")
            assert r.status_code == 403 and "ARENA_ADMIN_TOKEN" in r.json()["detail"]
            status, events = sse_events(c, "/api/battles", {"prompt": "hi"})
            assert status == 409 and "two active models" in events[0][1]["detail"]
    finally:
        stop(service.proc)


def test_seeded_board_from_real_counts(tmp_path):
    service = start_service(
        f"sqlite:///{tmp_path / 'seeded.db'}",
        seed_counts_file=chatbot_arena_counts(),
        leaderboard_anchor="mixtral-8x7b-instruct-v0.1",
        leaderboard_anchor_rating=1114,
    )
    try:
        with service.client() as c:
            deadline = time.monotonic() + 60
            board = c.get("/api/leaderboard").json()
            while not board["rows"] and time.monotonic() < deadline:
                time.sleep(0.3)
                board = c.get("/api/leaderboard").json()
        assert board["votes"] == 1_670_250 and len(board["rows"]) == 129
        top = board["rows"][0]
        assert top["model"] == "chatgpt-4o-latest" and top["rank"] == 1
        mixtral = next(r for r in board["rows"] if r["model"] == "mixtral-8x7b-instruct-v0.1")
        assert mixtral["rating"] == pytest.approx(1114.0)
    finally:
        stop(service.proc)


def test_metrics_pass_promtools_lint(arena):
    """What Prometheus scrapes from the arena follows its naming and type conventions."""
    promtool = toolchain_bin(build=True, part="monitoring") / "promtool"
    with arena.client() as c:
        battle(c, "hello")
        text = c.get("/metrics").text
    assert "arena_battles_started_total" in text
    proc = subprocess.run(
        [str(promtool), "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
