"""LLM-judge evaluations on the real service (SQLite and PostgreSQL): judged battles stored
once, per-source boards, agreement with people, the runner's reads and the export."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from arena_client import battle
from arena_processes import ADMIN_TOKEN, start_service, stop
from arena_support import BACKENDS, fresh_pg_database

from arenastack_arena.service.db import Database
from arenastack_arena.service.judgments import (
    JudgedBattle,
    export_page,
    game_counts,
    insert_judged,
)
from arenastack_arena.service.schema import MAX_TEXT_CHARS
from arenastack_cluster.arenaclient import answers

JUDGE_TOKEN = "test-judge-token"
MIN_BATTLES = 3
BODY_LIMIT = 1 << 20


@pytest.fixture(scope="module")
def judged(arena):
    """The module's service (each backend) with the judge API on."""
    arena.env.update(
        {
            "ARENA_JUDGE_TOKEN": JUDGE_TOKEN,
            "ARENA_MIN_BATTLES": str(MIN_BATTLES),
            "ARENA_MAX_JUDGMENT_BYTES": str(BODY_LIMIT),
        }
    )
    arena.restart()
    return arena


def judge(service, token: str = JUDGE_TOKEN) -> httpx.Client:
    return httpx.Client(
        base_url=service.url, timeout=30.0, headers={"authorization": f"Bearer {token}"}
    )


def body(
    source: str = "judge:x",
    a: str = "alpha",
    b: str = "beta",
    games: list[tuple[str, int]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A judged battle as the runner posts it, judged in both orders."""
    tag = uuid.uuid4().hex[:12]
    out: dict[str, Any] = {
        "evaluation": "team/eval",
        "run": 1,
        "battleId": f"jb-{tag}",
        "arenaBattleId": None,
        "source": source,
        "category": None,
        "modelA": a,
        "modelB": b,
        "turns": [{"prompt": f"question {tag}", "answerA": f"# {a}\n**yes**", "answerB": "no"}],
        "judgments": [
            {"order": "ab", "verdict": "A>B", "reason": "A is right", "raw": "[[A>B]]"},
            {"order": "ba", "verdict": "B>A", "reason": "swapped, A is wrong", "raw": "[[B>A]]"},
        ],
        "games": [
            {"winner": w, "weight": n} for w, n in ([("model_a", 1)] if games is None else games)
        ],
        "consistent": True,
    }
    for judgment in out["judgments"]:
        judgment["error"] = None
    out.update(fields)
    return out


def post(client: httpx.Client, payload: dict[str, Any]) -> bool:
    r = client.post("/api/judgments", json=payload)
    assert r.status_code == 200, r.text
    return r.json()["stored"]


def board_until(client: httpx.Client, done, timeout: float = 90, **params: Any) -> dict[str, Any]:
    """The leaderboard once ``done(board)`` (the refresh runs in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("/api/leaderboard", params=params)
        if r.status_code == 200 and done(r.json()):
            return r.json()
        assert time.monotonic() < deadline, r.text
        time.sleep(0.2)


def names(board: dict[str, Any]) -> set[str]:
    return {r["model"] for r in board["rows"] + board["preliminary"]}


def voted_battle(client: httpx.Client, prompt: str, winner: str, category: str | None = None):
    """A people-voted arena battle: (id, model_a, model_b, streamed answers)."""
    battle_id, events = battle(client, prompt, category)
    r = client.post(f"/api/battles/{battle_id}/vote", json={"winner": winner})
    assert r.status_code == 200, r.text
    return battle_id, r.json()["model_a"]["name"], r.json()["model_b"]["name"], answers(events)


# --- the service ---------------------------------------------------------------------
def test_the_judge_api_needs_its_token(judged):
    with judged.client() as c:
        r = c.post("/api/judgments", json=body())
        assert r.status_code == 401 and "judge token" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/api/judgments", params={"evaluation": "team/eval"}).status_code == 401
        assert c.get("/api/arena-battles").status_code == 401
        assert c.get("/api/evaluations/team/eval/battles.jsonl").status_code == 401
    with judge(judged, "wrong") as c:
        assert c.post("/api/judgments", json=body()).status_code == 401
    with judge(judged, ADMIN_TOKEN) as c:  # the admin token works as well
        assert post(c, body(evaluation="team/auth"))
    with judge(judged) as c:
        r = c.get("/api/judgments", params={"evaluation": "team/auth"})
        assert r.status_code == 200 and len(r.json()["battleIds"]) == 1


def test_judge_api_is_off_without_a_judge_token(tmp_path):
    service = start_service(f"sqlite:///{tmp_path / 'nojudge.db'}")
    try:
        with judge(service, ADMIN_TOKEN) as c:
            r = c.post("/api/judgments", json=body())
            assert r.status_code == 403 and "ARENA_JUDGE_TOKEN" in r.json()["detail"]
            assert c.get("/api/arena-battles").status_code == 403
            # The admin can still read what judges stored before.
            export = c.get("/api/evaluations/team/eval/battles.jsonl")
            assert export.status_code == 200 and export.text == ""
            assert c.get("/api/sources").json() == {"sources": [{"source": "human", "votes": 0}]}
    finally:
        stop(service.proc)


def _loc(detail: Any) -> str:
    return detail if isinstance(detail, str) else ".".join(map(str, detail[0]["loc"]))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"source": "human"}, "body.source"),
        ({"source": "judge:"}, "body.source"),
        ({"games": [{"winner": "draw", "weight": 1}]}, "body.games.0.winner"),
        ({"games": [{"winner": "tie", "weight": 1}] * 3}, "body.games"),
        ({"games": [{"winner": "model_a", "weight": 11}]}, "body.games.0.weight"),
        ({"games": [{"winner": "model_a", "weight": 0}]}, "body.games.0.weight"),
        ({"turns": []}, "body.turns"),
        ({"turns": [{"prompt": "p", "answerA": "a", "answerB": "b"}] * 17}, "body.turns"),
        (
            {"turns": [{"prompt": "p", "answerA": "x" * (MAX_TEXT_CHARS + 1), "answerB": "b"}]},
            "body.turns.0.answerA",
        ),
        ({"battleId": "not an id!"}, "body.battleId"),
        ({"evaluation": "no-namespace"}, "body.evaluation"),
        ({"judgments": []}, "body.judgments"),
        ({"battleID": "x"}, "body.battleID"),
        ({"modelB": "alpha"}, "modelA and modelB must differ"),
        ({"modelA": "bad\nname"}, "body.modelA"),
        ({"arenaBattleId": "nosuchbattle"}, "arenaBattleId"),
    ],
)
def test_bad_bodies_are_refused_naming_the_field(judged, change, named):
    payload = {**body(evaluation="team/bad"), **change}
    with judge(judged) as c:
        r = c.post("/api/judgments", json=payload)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert named in (_loc(detail) + " " + json.dumps(detail))
        assert c.get("/api/judgments", params={"evaluation": "team/bad"}).json() == {
            "battleIds": []
        }


def test_judgments_orders_and_size_limit(judged):
    twice = body()
    twice["judgments"][1]["order"] = "ab"
    with judge(judged) as c:
        r = c.post("/api/judgments", json=twice)
        assert r.status_code == 422 and "each order at most once" in r.text
        turn = {"prompt": "p", "answerA": "x" * MAX_TEXT_CHARS, "answerB": "y" * 10_000}
        big = body(turns=[turn] * 16)  # every text within its cap, the whole over the limit
        r = c.post("/api/judgments", json=big)
        assert r.status_code == 413 and "too large" in r.json()["detail"]


def test_a_resent_battle_is_stored_once(judged):
    first = body(source="judge:once", evaluation="team/once")
    with judge(judged) as c:
        assert post(c, first) is True
        # A restarted runner resends, perhaps judged differently: nothing changes.
        assert post(c, {**first, "games": [{"winner": "model_b", "weight": 3}]}) is False
        again = body(source="judge:once", evaluation="team/once")

        def send(_: int) -> bool:
            with judge(judged) as client:
                return post(client, again)

        with ThreadPoolExecutor(8) as pool:
            assert Counter(pool.map(send, range(8))) == {True: 1, False: 7}
        ids = c.get("/api/judgments", params={"evaluation": "team/once"}).json()["battleIds"]
        assert sorted(ids) == sorted([first["battleId"], again["battleId"]])
        lines = c.get("/api/evaluations/team/once/battles.jsonl").text.splitlines()
        stored = {json.loads(line)["battleId"]: json.loads(line) for line in lines}
        assert stored[first["battleId"]]["games"] == first["games"]
        board = board_until(c, lambda b: b["votes"] >= 2, source="judge:once")
        assert board["votes"] == 2 and board["games"] == 2
    db = Database(judged.database_url)
    try:
        rows = [r for r in db.read_sync(game_counts) if r[0] == "judge:once"]
        assert sum(r[5] for r in rows) == 2 and sum(r[6] for r in rows) == 2
    finally:
        db.close()


def test_boards_per_source_stay_apart_and_all_has_both(judged):
    with judged.client() as c:
        voted_battle(c, "a human vote beside the judges", "model_a")
    with judge(judged) as c:
        # Three strong wins (weight 3) and one loss: 9 of 10 points to apart-one.
        for games in [[("model_a", 3)]] * 3 + [[("model_b", 1)]]:
            post(c, body("judge:apart", "apart-one", "apart-two", games, category="apart-cat"))
        x = board_until(c, lambda b: b["votes"] == 4, source="judge:apart")
        assert x["games"] == 10 and [r["model"] for r in x["rows"]] == ["apart-one", "apart-two"]
        one = x["heatmap"]["models"].index("apart-one")
        assert x["heatmap"]["observed"][one][1 - one] == pytest.approx(0.9)
        assert x["categories"] == ["apart-cat", "overall"] and x["source"] == "judge:apart"
        # The style-controlled board of the judge is fitted from the same games.
        style = board_until(
            c, lambda b: b["votes"] == 4, source="judge:apart", style_control="true"
        )
        assert style["games"] == 10 and "sum_assistant_tokens" in style["coefficients"]
        people = c.get("/api/leaderboard").json()
        assert people["source"] == "human" and people["votes"] >= 1
        assert (
            not names(people) & {"apart-one", "apart-two"}
            and "apart-cat" not in people["categories"]
        )
        sources = c.get("/api/sources").json()["sources"]
        assert sources[0]["source"] == "human"
        judges = [s["source"] for s in sources[1:]]
        assert judges == sorted(judges) and "judge:apart" in judges
        assert {"source": "judge:apart", "votes": 4} in sources
        everyone = c.get("/api/leaderboard", params={"source": "all"}).json()
        assert everyone["votes"] == sum(s["votes"] for s in sources)
        assert {"apart-one", "alpha", "beta"} <= names(everyone)
        assert "apart-cat" in everyone["categories"]
        assert c.get("/api/leaderboard", params={"source": "judge:nobody"}).status_code == 404
        assert c.get("/api/leaderboard", params={"source": "people"}).status_code == 422


def test_models_with_few_battles_or_only_wins_are_preliminary(judged):
    with judge(judged) as c:
        for winner in ["model_a", "model_b", "tie", "model_a", "model_b"]:
            post(c, body("judge:prelim", "pre-a", "pre-b", [(winner, 1)]))
        for _ in range(MIN_BATTLES):  # enough battles, but pre-c never lost
            post(c, body("judge:prelim", "pre-c", "pre-a", [("model_a", 1)]))
        post(c, body("judge:prelim", "pre-new", "pre-b", [("tie", 1)]))  # one battle
        board = board_until(c, lambda b: b["votes"] == 9, source="judge:prelim")
    assert {r["model"] for r in board["rows"]} == {"pre-a", "pre-b"}
    assert {r["rank"] for r in board["rows"]} <= {1, 2} and board["min_battles"] == MIN_BATTLES
    apart = {r["model"]: r for r in board["preliminary"]}
    assert set(apart) == {"pre-c", "pre-new"} and all(r["rank"] is None for r in apart.values())
    assert apart["pre-c"]["flagged"] and apart["pre-c"]["votes"] == MIN_BATTLES
    assert not apart["pre-new"]["flagged"] and apart["pre-new"]["votes"] == 1


def test_agreement_with_people_on_rejudged_arena_battles(judged):
    # (human vote, judge's games, judge shows the models swapped); by hand: 6 battles,
    # 3 agree; 3 where both picked a winner, 2 agree.
    plan = [
        ("model_a", ["model_a"], False),  # agree
        ("model_b", ["model_a", "model_b"], False),  # orders disagree: a tie
        ("tie", ["tie"], False),  # agree
        ("model_a", ["model_b"], True),  # the same model wins, seen from the other side
        ("tie (bothbad)", ["model_b"], False),
        ("model_b", ["model_a", "model_a"], False),
    ]
    with judged.client() as c:
        arena = [
            voted_battle(c, f"agree {n}", vote, "agree") for n, (vote, _, _) in enumerate(plan)
        ]
    with judge(judged) as c:
        for (arena_id, a, b, _), (_, games, swapped) in zip(arena, plan, strict=True):
            sides = (b, a) if swapped else (a, b)
            post(
                c,
                body(
                    "judge:agree",
                    *sides,
                    [(w, 1) for w in games],
                    arenaBattleId=arena_id,
                    category="agree",
                ),
            )
        # Not compared: a battle without games, one that re-judges nothing.
        post(c, body("judge:agree", arena[0][1], arena[0][2], [], arenaBattleId=arena[0][0]))
        post(c, body("judge:agree", "alpha", "beta", [("model_b", 1)]))
        # A second judge on the first two arena battles.
        for (arena_id, a, b, _), winner in zip(arena[:2], ["model_a", "model_b"], strict=False):
            post(c, body("judge:agree2", a, b, [(winner, 1)], arenaBattleId=arena_id))
        r = c.post(
            "/api/judgments", json=body("judge:agree", "alpha", "gamma", arenaBattleId=arena[0][0])
        )
        assert r.status_code == 422 and "arenaBattleId" in r.json()["detail"]

        def agreement(**params: str) -> dict[str, Any]:
            r = c.get("/api/agreement", params=params)
            assert r.status_code == 200, r.text
            return r.json()

        people = agreement(a="human", b="judge:agree")
        assert people["battles"] == 6 and people["withTies"] == pytest.approx(0.5)
        assert people["withoutTies"]["battles"] == 3
        assert people["withoutTies"]["agreement"] == pytest.approx(2 / 3)
        flipped = agreement(a="judge:agree", b="human")
        assert {**flipped, "a": "human", "b": "judge:agree"} == people
        assert agreement(a="human", b="judge:agree", category="agree") == people
        assert agreement(a="human", b="judge:agree", category="nope")["withTies"] is None
        judges = agreement(a="judge:agree", b="judge:agree2")
        # Battle 1: both model_a's model; battle 2: a tie against a win.
        assert judges["battles"] == 2 and judges["withTies"] == 0.5
        assert judges["withoutTies"] == {"battles": 1, "agreement": 1.0}
        for bad in (
            {"a": "human", "b": "human"},
            {"a": "all", "b": "judge:agree"},
            {"a": "x", "b": "human"},
        ):
            assert c.get("/api/agreement", params=bad).status_code == 422


def test_arena_battles_for_rejudging_newest_first(judged):
    with judged.client() as c:
        voted = [voted_battle(c, f"rejudge {n}", "model_b", "rejudge") for n in range(3)]
        battle(c, "never voted", "rejudge")
    with judge(judged) as c:
        got = c.get("/api/arena-battles", params={"category": "rejudge", "limit": 2}).json()
        newest = voted[2]
        assert [b["id"] for b in got["battles"]] == [voted[2][0], voted[1][0]]
        head = got["battles"][0]
        assert (head["modelA"], head["modelB"], head["winner"]) == (newest[1], newest[2], "model_b")
        assert head["category"] == "rejudge"
        assert head["turns"] == [
            {"prompt": "rejudge 2", "answerA": newest[3]["a"], "answerB": newest[3]["b"]}
        ]
        every = c.get("/api/arena-battles", params={"category": "rejudge", "limit": 10}).json()
        assert [b["id"] for b in every["battles"]] == [v[0] for v in reversed(voted)]
        assert c.get("/api/arena-battles").json()["battles"][0]["id"] == voted[2][0]
        for limit in (0, 10_001):
            assert c.get("/api/arena-battles", params={"limit": limit}).status_code == 422


def test_export_has_both_answers_judgments_and_reasons(judged):
    hostile = "<script>alert(1)</script> **bold**"
    posted = [
        body("judge:export", "alpha", "beta", evaluation="team/export", run=2),
        body(
            "judge:export",
            "beta",
            "alpha",
            [("model_a", 1), ("tie", 1)],
            evaluation="team/export",
            run=2,
            category="export",
            turns=[
                {"prompt": "q1", "answerA": hostile, "answerB": "b1"},
                {"prompt": "q2", "answerA": "a2", "answerB": "b2"},
            ],
            consistent=False,
        ),
    ]
    with judge(judged) as c:
        for payload in posted:
            assert post(c, payload)
        post(c, body("judge:export", evaluation="team/other"))
        r = c.get("/api/evaluations/team/export/battles.jsonl")
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in r.text.splitlines()]
    assert [line.pop("tstamp") > 0 for line in lines] == [True, True]
    assert sorted(lines, key=lambda x: x["battleId"]) == sorted(posted, key=lambda x: x["battleId"])
    second = next(line for line in lines if line["category"] == "export")
    assert second["turns"][0]["answerA"] == hostile and second["turns"][1]["answerB"] == "b2"
    assert [j["reason"] for j in second["judgments"]] == ["A is right", "swapped, A is wrong"]


# --- storage -------------------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'judged.db'}"
    else:
        yield fresh_pg_database(request.getfixturevalue("postgres_url"), "arena_judged")


def stored(k: int, games: list[tuple[str, int]], tstamp: float = 0.0, **fields) -> JudgedBattle:
    return JudgedBattle.create(
        turns=[{"prompt": "p", "answerA": "**a** b c", "answerB": "d"}],
        judgments=[{"order": "ab", "verdict": "A", "reason": None, "raw": "[[A]]", "error": None}],
        games=games,
        **{
            "id": f"s{k}",
            "evaluation": "ns/ev",
            "run": 1,
            "arena_battle_id": None,
            "source": "judge:s",
            "category": "c" if k % 2 else None,
            "model_a": f"m{k % 3}",
            "model_b": f"m{(k + 1) % 3}",
            "consistent": None,
            "tstamp": tstamp or float(k // 2),
            **fields,
        },
    )


def test_judged_battles_are_stored_once_and_counted_with_weights(database_url):
    db = Database(database_url)
    db.start()
    try:
        games = [[("model_a", 3)], [("model_a", 1), ("model_b", 1)], [], [("tie", 1)] * 2]
        battles = [stored(k, games[k % 4]) for k in range(600)]
        results = asyncio.run(db.write(lambda tx: insert_judged(tx, battles + battles[:2])))
        assert results == [True] * 600 + [False, False]

        async def concurrently() -> list[bool]:
            same = [stored(900, [("model_b", 2)]) for _ in range(10)]
            return await asyncio.gather(*(db.write_bulk(insert_judged, b) for b in same))

        assert sorted(asyncio.run(concurrently())) == [False] * 9 + [True]
        expected_games: Counter = Counter()
        expected_battles: Counter = Counter()
        for b in [*battles, stored(900, [("model_b", 2)])]:
            cell = (b.source, b.category, b.model_a, b.model_b)
            for winner, weight in b.games:
                expected_games[(*cell, winner)] += weight
            if b.outcome is not None:
                expected_battles[(*cell, b.outcome)] += 1
        rows = db.read_sync(game_counts)
        assert {r[:5]: r[5] for r in rows if r[5]} == dict(expected_games)
        assert {r[:5]: r[6] for r in rows if r[6]} == dict(expected_battles)
        # A weight-3 win counts 3 games and one battle.
        assert sum(expected_games.values()) == 150 * 3 + 150 * 2 + 150 * 2 + 2
    finally:
        db.close()


def test_export_pages_through_equal_timestamps_in_order(database_url):
    db = Database(database_url)
    db.start()
    try:
        battles = [stored(k, [("model_a", 1)], tstamp=float(k // 3) + 1) for k in range(8)]
        asyncio.run(db.write(lambda tx: insert_judged(tx, battles)))
        seen: list[str] = []
        after = None
        while True:
            page = db.read_sync(lambda tx, after=after: export_page(tx, "ns/ev", after, 3))
            seen += [row[0] for row in page]
            if len(page) < 3:
                break
            after = (page[-1][-1], page[-1][0])
        assert seen == [b.id for b in sorted(battles, key=lambda b: (b.tstamp, b.id))]
        assert db.read_sync(lambda tx: export_page(tx, "other/ev", None, 3)) == []
    finally:
        db.close()
