"""The evaluation runner against the real arena service (SQLite): what it posts is stored,
a restart resumes from the service's own ids, the export and the boards hold the run, and
human-voted battles are re-judged and compared with the people's votes.

Contestants and upstreams are the model double; the judge is the choosing judge of
test_evaluation_runner.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from arena_processes import Service, start_service, stop
from arena_support import models_file
from test_evaluation_runner import (
    ARENA_TOKEN,
    Recorder,
    contestants_app,
    judge_app,
    run_json,
    serve,
    start,
)
from test_service_judgments import voted_battle

SOURCE = "judge:judge-model"


@pytest.fixture(scope="module")
def service(tmp_path_factory, model_endpoint) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("runner-arena")
    arena = start_service(
        f"sqlite:///{tmp / 'arena.db'}",
        models_file=models_file(tmp, model_endpoint, ["alpha", "beta"]),
        judge_token=ARENA_TOKEN,
        min_battles=3,
    )
    yield arena
    stop(arena.proc)


def judge_client(service: Service) -> httpx.Client:
    return httpx.Client(
        base_url=service.url, timeout=30.0, headers={"authorization": f"Bearer {ARENA_TOKEN}"}
    )


def board_until(client: httpx.Client, source: str, models: set[str]) -> dict:
    deadline = time.monotonic() + 60
    while True:
        r = client.get("/api/leaderboard", params={"source": source})
        if r.status_code == 200:
            board = r.json()
            if {row["model"] for row in board["rows"] + board["preliminary"]} >= models:
                return board
        assert time.monotonic() < deadline, r.text
        time.sleep(0.2)


async def test_runner_posts_resumes_and_ranks_on_the_real_service(service):
    answers, judges = Recorder(), Recorder()
    async with (
        serve(contestants_app(answers)) as contestants_url,
        serve(judge_app(judges, "three")) as judge_url,
    ):
        data = run_json(contestants_url, judge_url, service.url, concurrency=6)
        for c in data["contestants"]:
            c["baseURL"] = f"{contestants_url}/fast/v1"
        data["evaluation"]["name"] = "real"
        summary = await start(data)
        # 12 prompts x 3 pairs, the unparseable prompt's 3 battles not posted.
        assert summary["progress"]["judged"] == 33 and summary["progress"]["errors"] == 3
        with judge_client(service) as client:
            stored = client.get("/api/judgments", params={"evaluation": "team/real"}).json()
            assert len(stored["battleIds"]) == 33
            lines = client.get("/api/evaluations/team/real/battles.jsonl").text.splitlines()
            assert len(lines) == 33
        assert summary["leader"] == "gamma"
        assert {e["battles"] for e in summary["ranking"]} == {22}

        asked = len(answers.answers)
        again = await start(data)
        assert again["resumed"] == 33 and again["progress"]["judged"] == 33
        assert len(answers.answers) - asked == 3  # only the failed battles' prompt
        assert again["ranking"] == summary["ranking"]

    with judge_client(service) as client:
        # The service's own board of this judge has the contestants.
        board = board_until(client, SOURCE, {"alpha", "beta", "gamma"})
        assert board["source"] == SOURCE
        assert board["rows"][0]["model"] == "gamma"


async def test_runner_rejudges_human_votes_on_the_real_service(service):
    with service.client() as people:
        # The double's answers are signed "**alpha** heard ...": the judge prefers alpha.
        voted = [voted_battle(people, f"Human question {k}?", "model_a") for k in range(4)]
    judges = Recorder()
    async with (
        serve(contestants_app(Recorder())) as contestants_url,
        serve(judge_app(judges, "three")) as judge_url,
    ):
        data = run_json(contestants_url, judge_url, service.url)
        data["evaluation"]["name"] = "humans"
        data["prompts"] = {"fromArena": {"limit": 100}}
        summary = await start(data)
    assert summary["progress"]["judged"] == len(voted) and not summary["progress"]["errors"]
    with judge_client(service) as client:
        lines = client.get("/api/evaluations/team/humans/battles.jsonl").text.splitlines()
    assert len(lines) == len(voted)
    agreement = summary["judge"]["humanAgreement"]
    # People voted model_a each time; the judge picked alpha, model_a where alpha was shown
    # first. The service's agreement covers every battle of this judge source with votes.
    alpha_first = sum(a == "alpha" for _, a, _, _ in voted)
    assert agreement["battles"] == len(voted)
    assert agreement["withTies"] == pytest.approx(alpha_first / len(voted), abs=1e-4)
