"""End to end on the real node: an ArenaEvaluation with real engines and the real judge.

Two contestants served as InferenceDeployments (SmolLM2-135M-Instruct, the only instruct model
these machines can get, and a random-weight tiny model that answers noise), the same SmolLM2
deployment as the judge, the chart's arena service and operator as pods. The evaluation's
Job runs the runner (in the arena image, as the chart's operator makes it), which asks both
contestants, has the judge compare each pair in both orders with structured output, posts the
verdicts to the arena and writes ratings into the status. People then vote on battles of the
same pair through the arena's API, and a second evaluation with `fromArena` re-judges them: the
judge's agreement with those votes appears in its status. The judge's taste is not asserted
(a 135M judge is nearly blind, see tests/bench/bench_arena_judge.py); the mechanics are.
"""

from __future__ import annotations

import json
import secrets
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import local_operator
import pytest
import yaml

from arenastack_cluster import vllmenv
from arenastack_cluster.arenaclient import ArenaClient
from arenastack_cluster.cluster import CHART_DIR, LocalCluster
from arenastack_cluster.modelclaim import model_source
from arenastack_cluster.processes import ClusterError, poll
from arenastack_operator import constants

pytestmark = pytest.mark.e2e

NAMESPACE = "e2e-arena"
RELEASE = "arena"
JUDGE_SECRET = "arena-judge"
ADMIN_SECRET = "arena-admin"
READY_TIMEOUT_S = 600.0
EVALUATION_TIMEOUT_S = 900.0
JUDGE = "smollm2"
NOISE = "tiny"
PROMPTS = [
    {"id": "capital", "text": "What is the capital of France? Answer in one sentence.",
     "category": "knowledge"},
    {"id": "greet", "text": "Write a one-line greeting for a new colleague.",
     "category": "writing"},
]  # fmt: skip
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _deployment(
    cl: LocalCluster, name: str, path: Path, max_len: int, args: list[str]
) -> dict[str, Any]:
    source = model_source(cl, NAMESPACE, path)
    return {
        "apiVersion": constants.API_VERSION, "kind": "InferenceDeployment",
        "metadata": {"name": name},
        "spec": {"model": {**source, "servedModelName": name, "dtype": "float32"},
                 "gpusPerReplica": 0,
                 "engine": {"maxModelLen": max_len, "extraArgs": args},
                 "router": {"policy": "roundRobin"}},
    }  # fmt: skip


def _secret(cl: LocalCluster, name: str) -> str:
    token = secrets.token_hex(16)
    cl.kubectl("create", "secret", "generic", name, "-n", NAMESPACE,
               f"--from-literal=token={token}")  # fmt: skip
    return token


def get(cl: LocalCluster, *args: str) -> Any:
    return local_operator.get(cl, NAMESPACE, *args)


def _status(cl: LocalCluster, name: str) -> dict[str, Any]:
    return (get(cl, "arenaevaluation", name) or {}).get("status") or {}


def _finished(cl: LocalCluster, name: str) -> dict[str, Any] | None:
    status = _status(cl, name)
    if status.get("phase") == "Failed":
        raise AssertionError(f"{name} failed: {status}\n{_runner_logs(cl, name)}")
    return status if status.get("phase") == "Succeeded" else None


def _runner_logs(cl: LocalCluster, name: str) -> str:
    return cl.kubectl("logs", "-n", NAMESPACE, "-l",
                      f"{constants.GROUP}/arenaevaluation={name}", "--tail=60",
                      check=False).stdout  # fmt: skip


def _evaluation(name: str, prompts: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION, "kind": "ArenaEvaluation",
        "metadata": {"name": name},
        "spec": {
            "contestants": [
                {"name": JUDGE, "inferenceDeploymentRef": {"name": JUDGE}, "family": "smollm2",
                 "sampling": {"maxTokens": 48, "temperature": 0}, "pricePerMillionTokens": 0.5},
                {"name": NOISE, "inferenceDeploymentRef": {"name": NOISE},
                 "sampling": {"maxTokens": 48, "temperature": 0}},
            ],
            "prompts": prompts,
            "judge": {"inferenceDeploymentRef": {"name": JUDGE}, "family": "smollm2",
                      "maxTokens": 256},
            "battles": {"baseline": NOISE},
            "arena": {"tokenSecretRef": {"name": JUDGE_SECRET, "key": "token"}},
            "concurrency": 4,
        },
    }  # fmt: skip


def _install(cl: LocalCluster, verb: str, *args: str) -> None:
    """`helm install|upgrade` of the chart in the test's namespace, waiting for its pods."""
    try:
        cl.helm(verb, RELEASE, str(CHART_DIR), "-n", NAMESPACE, *args, "--wait", "--timeout",
                "240s")  # fmt: skip
    except ClusterError:
        pods = cl.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide", check=False).stdout
        logs = cl.kubectl("logs", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=arenastack",
                          "--tail=30", "--prefix", check=False).stdout  # fmt: skip
        raise AssertionError(f"helm {verb}: not ready:\n{pods}\n{logs}") from None


@pytest.fixture(scope="module")
def stack(
    local_cluster: LocalCluster, vllm_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    cl = local_cluster
    judge_model = vllmenv.judge_model(vllm_python)
    noise_model = vllmenv.tiny_model(vllm_python, "tiny-llama", 0)
    with local_operator.vllm_namespace(cl, NAMESPACE):
        judge_token = _secret(cl, JUDGE_SECRET)
        admin_token = _secret(cl, ADMIN_SECRET)
        bodies = [_deployment(cl, JUDGE, judge_model, vllmenv.JUDGE_MAX_MODEL_LEN,
                              vllmenv.JUDGE_ENGINE_ARGS),
                  _deployment(cl, NOISE, noise_model, 512, vllmenv.FAST_ENGINE_ARGS)]  # fmt: skip
        cl.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(bodies))
        # The chart's operator first; the arena joins it once the deployments serve (its
        # models are their endpoints), by an upgrade that also points the operator at it.
        _install(cl, "install")
        try:
            endpoints = {}
            for name in (JUDGE, NOISE):
                status = poll(f"{name} serving", lambda n=name: _serving(cl, n), READY_TIMEOUT_S)
                endpoints[name] = status["endpoint"]
            models = [{"name": n, "endpoint": e, "upstream_model": n} for n, e in endpoints.items()]
            values = tmp_path_factory.mktemp("arena") / "values.yaml"
            values.write_text(yaml.safe_dump({"arena": {
                "enabled": True, "persistence": {"enabled": False}, "models": models,
                "adminToken": {"existingSecret": ADMIN_SECRET, "key": "token"},
                "judgeToken": {"existingSecret": JUDGE_SECRET, "key": "token"},
                "env": {"ARENA_MAX_ANSWER_TOKENS": 48}}}))  # fmt: skip
            _install(cl, "upgrade", "-f", str(values))
            (pod,) = get(cl, "pods", "-l", "app.kubernetes.io/component=arena")["items"]
            base = f"http://{pod['status']['podIP']}:8080"
            yield {"cluster": cl, "arena": base, "judge_token": judge_token,
                   "admin_token": admin_token}  # fmt: skip
        finally:
            cl.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)


def _serving(cl: LocalCluster, name: str) -> dict[str, Any] | None:
    status = (get(cl, "inferencedeployment", name) or {}).get("status") or {}
    ready = {c["type"]: c["status"] for c in status.get("conditions") or []}.get("Ready")
    return status if ready == "True" and status.get("readyReplicas") == 1 else None


def _judge_call(stack: dict[str, Any], path: str) -> bytes:
    request = urllib.request.Request(
        stack["arena"] + path, headers={"authorization": f"Bearer {stack['judge_token']}"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return resp.read()


def test_evaluation_ranks_real_contestants_and_its_judge_meets_human_votes(stack):
    cl: LocalCluster = stack["cluster"]
    cl.kubectl("apply", "-n", NAMESPACE, "-f", "-",
               input=yaml.safe_dump(_evaluation("inline", {"inline": PROMPTS})))  # fmt: skip
    done = poll("the evaluation to succeed", lambda: _finished(cl, "inline"), EVALUATION_TIMEOUT_S)

    progress = done["progress"]
    assert progress["planned"] == len(PROMPTS) and progress["judged"] == len(PROMPTS), progress
    assert progress.get("parseErrors", 0) == 0  # structured output: every verdict parses
    ranking = {r["name"]: r for r in done["ranking"]}
    assert set(ranking) == {JUDGE, NOISE}
    for row in ranking.values():
        assert row["ciLower"] <= row["rating"] <= row["ciUpper"] and row["battles"] == 2
    assert ranking[JUDGE]["winRateVsBaseline"] is not None
    # Tokens as the engines counted them; the cost only where a price was given.
    assert all(0 < row["outputTokens"] <= 2 * 48 for row in ranking.values())
    assert ranking[JUDGE]["cost"] == pytest.approx(ranking[JUDGE]["outputTokens"] * 0.5e-6)
    assert "cost" not in ranking[NOISE]
    judge = done["judge"]
    assert judge["source"] == f"judge:{JUDGE}" and judge["selfEnhancement"] == [JUDGE]
    assert 0.0 <= judge["positionConsistency"] <= 1.0
    assert done["leader"] in ranking
    printed = cl.kubectl("get", "arenaevaluation", "inline", "-n", NAMESPACE).stdout
    assert "Succeeded" in printed and JUDGE in printed

    # Everything the judge saw and said is in the arena: both answers, both orders' verdicts.
    export = done["results"]["export"]
    assert export.endswith(f"/api/evaluations/{NAMESPACE}/inline/battles.jsonl")
    lines = [
        json.loads(line)
        for line in _judge_call(
            stack, f"/api/evaluations/{NAMESPACE}/inline/battles.jsonl"
        ).splitlines()
        if line
    ]
    assert len(lines) == len(PROMPTS)
    assert all(len(b["judgments"]) == 2 and b["turns"][0]["answerA"] for b in lines)

    # People vote on battles of the same two models; the judge re-judges those battles.
    arena = ArenaClient(stack["arena"], stack["admin_token"])
    for prompt in ("Name a colour.", "Say hello."):
        battle = arena.battle(prompt)
        assert battle.votable, battle.events[-3:]
        arena.vote(battle.battle_id, "model_a")
    cl.kubectl(
        "apply",
        "-n",
        NAMESPACE,
        "-f",
        "-",
        input=yaml.safe_dump(_evaluation("humans", {"fromArena": {"limit": 10}})),
    )
    rejudged = poll("the re-judging to succeed", lambda: _finished(cl, "humans"),
                    EVALUATION_TIMEOUT_S)  # fmt: skip
    agreement = rejudged["judge"]["humanAgreement"]
    voted = json.loads(_judge_call(stack, "/api/arena-battles?limit=10"))["battles"]
    if agreement["battles"] != 2:  # the assertion's own message would be cut short
        diagnosis = {"status": rejudged, "voted": voted, "runner": _runner_logs(cl, "humans")}
        Path("/tmp/arenaevaluation-e2e.json").write_text(json.dumps(diagnosis, indent=1))
    assert agreement["battles"] == 2, "see /tmp/arenaevaluation-e2e.json"
    assert agreement["withTies"] is not None and 0.0 <= agreement["withTies"] <= 1.0
    compared = json.loads(_judge_call(stack, f"/api/agreement?a=human&b=judge:{JUDGE}"))
    assert compared["battles"] == 2

    # The judge board is apart from the human one and shown beside it in the web UI.
    judge_board = arena.call("GET", f"/api/leaderboard?source=judge:{JUDGE}")
    human_board = arena.call("GET", "/api/leaderboard?source=human")
    assert judge_board != human_board
    _ui_shows_the_judge_board(stack["arena"], f"judge:{JUDGE}")


def _ui_shows_the_judge_board(base: str, source: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox"])  # fmt: skip
        try:
            page = browser.new_page()
            page.goto(base + "/leaderboard")
            page.select_option("#source", source)
            expect(page.locator("#agreement")).to_be_visible()
            expect(page.locator("#agreement")).to_contain_text("2 battles compared")
            expect(page.locator("body")).to_contain_text(NOISE)
        finally:
            browser.close()
