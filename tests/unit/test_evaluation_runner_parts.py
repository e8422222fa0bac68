"""The evaluation runner's pure parts: run.json, planning, resume, games, report, status patch."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from arenastack_arena.evaluation import report
from arenastack_arena.evaluation.config import (
    Secrets,
    load_prompts,
    load_template,
    parse_config,
    resolve_secrets,
)
from arenastack_arena.evaluation.errors import ConfigError
from arenastack_arena.evaluation.identity import ORDER_AB, ORDER_BA, battle_id
from arenastack_arena.evaluation.judging import (
    MAX_TEXT_CHARS,
    OrderResult,
    battle_body,
    games_of,
    response_format,
)
from arenastack_arena.evaluation.kube_status import in_cluster, patch_body
from arenastack_arena.evaluation.pipeline import Slots, window_size
from arenastack_arena.evaluation.planning import (
    AdaptivePlanner,
    pending,
    plan_all_pairs,
    plan_from_arena,
)
from arenastack_arena.evaluation.prompts import Prompt
from arenastack_arena.evaluation.sampling import AdaptiveSampler, Tally
from arenastack_arena.evaluation.verdicts import Game, Verdict
from arenastack_operator.arenaevaluation import builders
from arenastack_operator.arenaevaluation.builders import Owner, Target
from arenastack_operator.arenaevaluation.spec import ArenaEvaluationSpec
from arenastack_operator.schema.base import SecretKeyReference

# What builders.run_config writes for the example in the operator's tests.
EXAMPLE: dict[str, Any] = {
    "evaluation": {"namespace": "team", "name": "eval", "uid": "uid-1", "run": 3},
    "contestants": [
        {"name": "small", "baseURL": "http://smollm-router.team.svc:8000/v1", "model": "smollm",
         "temperature": 0.2, "systemPrompt": "Be brief.", "maxTokens": 512, "family": "smollm2"},
        {"name": "remote", "baseURL": "https://api.example.com/v1", "model": "m",
         "apiKeyEnv": "ARENASTACK_API_KEY_1", "maxTokens": 512, "pricePerMillionTokens": 0.5},
    ],
    "judge": {
        "name": "smollm", "baseURL": "http://smollm-router.team.svc:8000/v1", "model": "smollm",
        "maxTokens": 1024, "structuredOutput": True, "scale": "three", "strongWinWeight": 3,
        "bothOrders": True, "onDisagreement": "tie", "referenceGuided": True, "temperature": 0.0,
        "retries": 2, "timeoutSeconds": 300, "source": "judge:smollm", "family": "smollm2",
    },
    "prompts": {"inline": [{"text": "Say hello.", "category": "chat"}]},
    "battles": {"mode": "adaptive", "budget": 50, "seed": 0, "baseline": "small"},
    "arena": {"url": "http://arena.ns.svc:80", "tokenEnv": "ARENA_JUDGE_TOKEN"},
    "concurrency": 8,
}  # fmt: skip


def example(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(EXAMPLE)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node: Any = out
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is ...:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return out


# -- run.json ------------------------------------------------------------------------------


def test_example_config_parses_with_its_fields():
    config = parse_config(EXAMPLE)
    assert config.names == ["small", "remote"]
    assert config.contestants[0].system_prompt == "Be brief."
    assert config.contestants[1].api_key_env == "ARENASTACK_API_KEY_1"
    assert config.judge.structured_output and config.judge.rule == "tie"
    assert config.judge.verdict_source == "judge:smollm"
    assert config.battles.mode == "adaptive" and config.battles.budget == 50
    assert config.evaluation.key == "team/eval"
    # The run is part of the ids' scope: a new run (a changed spec) judges afresh.
    assert config.evaluation.scope != parse_config(example(evaluation__run=4)).evaluation.scope


def test_operator_builder_output_is_a_valid_run_config():
    """The real builder's run.json, for every prompt source, parses here."""
    spec = ArenaEvaluationSpec.model_validate({
        "contestants": [
            {"name": "small", "inferenceDeploymentRef": {"name": "smollm"},
             "sampling": {"temperature": 0.2, "systemPrompt": "Be brief."}, "family": "smollm2"},
            {"name": "remote", "endpoint": {"baseURL": "https://api.example.com/v1", "model": "m",
                                             "apiKeySecretRef": {"name": "keys", "key": "remote"}}},
        ],
        "prompts": {"fromArena": {"category": "math", "limit": 20}},
        "judge": {"inferenceDeploymentRef": {"name": "smollm"}, "scale": "five",
                  "onDisagreement": "bothGames",
                  "template": {"configMapRef": {"name": "t", "key": "judge.txt"}}},
        "battles": {"mode": "allPairs", "budget": 7, "baseline": "small"},
        "arena": {"tokenSecretRef": {"name": "arena", "key": "token"}},
    })  # fmt: skip
    contestants = [
        Target("small", "http://smollm-router.team.svc:8000/v1", "smollm", vllm=True),
        Target("remote", "https://api.example.com/v1", "m", SecretKeyReference(name="k", key="r")),
    ]
    judge = Target("smollm", "http://smollm-router.team.svc:8000/v1", "smollm", vllm=True)
    owner = Owner("eval", "team", "uid-1", run=3)
    data, secrets = builders.run_config(spec, owner, contestants, judge, "http://arena/")
    config = parse_config(json.loads(json.dumps(data)))
    assert config.prompts.from_arena is not None and config.prompts.from_arena.limit == 20
    assert config.judge.scale == "five" and config.judge.rule == "both"
    assert config.judge.template_file == "/etc/arenastack/template/judge.txt"
    assert config.battles.budget == 7 and config.arena.token_env == "ARENA_JUDGE_TOKEN"
    env = {name: "secret" for name in secrets}
    resolved = resolve_secrets(config, env)
    assert resolved.keys == {"small": None, "remote": "secret"}
    assert resolved.arena_token == "secret" and "secret" not in repr(resolved)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"contestants__1__baseURL": "ftp://x"}, "contestants[1].baseURL"),
        ({"contestants__0__model": ...}, "contestants[0].model"),
        ({"judge__scale": "seven"}, "judge.scale"),
        ({"judge__retries": -1}, "judge.retries"),
        ({"judge__onDisagreement": "both"}, "judge.onDisagreement"),
        ({"battles__budget": ...}, "battles"),
        ({"battles__mode": "random"}, "battles.mode"),
        ({"battles__baseline": "nobody"}, "battles.baseline"),
        ({"prompts": {"inline": [{"text": "x"}], "file": "/p.jsonl"}}, "prompts"),
        ({"prompts": {}}, "prompts"),
        ({"contestants": [EXAMPLE["contestants"][0]]}, "contestants"),
        ({"contestants__1__name": "small"}, "duplicate contestant names: small"),
        ({"arena": {"tokenEnv": "X"}}, "arena.url"),
        ({"evaluation__run": "three"}, "evaluation.run"),
        ({"concurrency": 0}, "concurrency"),
    ],
)
def test_config_errors_name_the_field(changes, field):
    with pytest.raises(ConfigError) as caught:
        parse_config(example(**changes))
    message = str(caught.value)
    assert message.startswith("run.json: ") and field in message
    assert "\n" not in message  # one line, no traceback


def test_unknown_fields_are_ignored_with_a_warning(caplog):
    config = parse_config(example(judge__futureOption=True, later={"x": 1}))
    assert config.judge.model == "smollm"
    assert "judge.futureOption" in caplog.text and "later" in caplog.text


def test_inline_prompt_errors_name_the_prompt():
    with pytest.raises(ConfigError, match=r"prompts\.inline:2: neither text nor turns"):
        load_prompts(parse_config(example(prompts={"inline": [{"text": "a"}, {"category": "x"}]})))


def test_prompts_inline_and_file(tmp_path):
    inline = [{"text": "a", "category": "math", "reference": "4"}, {"turns": ["b", "c"]}]
    prompts = load_prompts(parse_config(example(prompts={"inline": inline})))
    assert [p.id for p in prompts] == ["1", "2"]
    assert prompts[0].reference == ["4"] and prompts[1].turns == ["b", "c"]
    # Not reference-guided: the judge never sees the references.
    plain = load_prompts(parse_config(example(prompts={"inline": inline},
                                              judge__referenceGuided=False)))  # fmt: skip
    assert plain[0].reference is None
    mt_bench = tmp_path / "question.jsonl"
    mt_bench.write_text(
        json.dumps({"question_id": 81, "category": "writing", "turns": ["x", "y"]}) + "\n"
    )
    prompts = load_prompts(parse_config(example(prompts={"file": str(mt_bench)})))
    assert prompts == [Prompt("81", ["x", "y"], "writing")]
    with pytest.raises(ConfigError, match="prompts.file: cannot read"):
        load_prompts(parse_config(example(prompts={"file": str(tmp_path / "none")})))


def test_template_file_is_checked(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("Q {question} A {answer_a} B {answer_b}")
    assert "{question}" in load_template(parse_config(example(judge__templateFile=str(good)))).user
    bad = tmp_path / "bad.txt"
    bad.write_text("Q {question} A {answer_a} {evil}")
    with pytest.raises(ConfigError, match=r"judge.templateFile: unknown placeholder \{evil\}"):
        load_template(parse_config(example(judge__templateFile=str(bad))))


def test_secrets_come_from_the_named_variables_only():
    config = parse_config(EXAMPLE)
    with pytest.raises(ConfigError, match=r"contestants\[1\]\.apiKeyEnv: .*ARENASTACK_API_KEY_1"):
        resolve_secrets(config, {"ARENA_JUDGE_TOKEN": "t"})
    with pytest.raises(ConfigError, match=r"arena\.tokenEnv"):
        resolve_secrets(config, {"ARENASTACK_API_KEY_1": "k"})
    secrets = resolve_secrets(config, {"ARENASTACK_API_KEY_1": "k1", "ARENA_JUDGE_TOKEN": "t"})
    assert secrets == Secrets({"small": None, "remote": "k1"}, None, "t")
    assert "k1" not in repr(secrets) and "k1" not in str(secrets)


# -- planning --------------------------------------------------------------------------------

PROMPTS = [Prompt(str(k), [f"question {k}"]) for k in range(5)]
NAMES = ["alpha", "beta", "gamma", "delta"]


def test_all_pairs_plans_every_pair_on_every_prompt():
    plan = plan_all_pairs(PROMPTS, NAMES, "uid/run-1", seed=0)
    assert len(plan) == len(PROMPTS) * math.comb(len(NAMES), 2) == 30
    pairs = Counter((p.prompt.id, frozenset((p.model_a, p.model_b))) for p in plan)
    assert set(pairs.values()) == {1} and len(pairs) == 30
    assert len({p.id for p in plan}) == 30
    assert all(p.id == battle_id("uid/run-1", p.prompt.id, p.model_a, p.model_b) for p in plan)
    # Same plan (ids) on a rerun; another run has other ids.
    assert [p.id for p in plan] == [p.id for p in plan_all_pairs(PROMPTS, NAMES, "uid/run-1", 0)]
    assert not {p.id for p in plan} & {p.id for p in plan_all_pairs(PROMPTS, NAMES, "uid/run-2", 0)}


def test_budget_caps_all_pairs_whole_prompts_first():
    capped = plan_all_pairs(PROMPTS, NAMES, "s", seed=0, budget=13)
    assert len(capped) == 13
    assert [p.id for p in capped] == [p.id for p in plan_all_pairs(PROMPTS, NAMES, "s", 0)][:13]
    assert Counter(p.prompt.id for p in capped) == {"0": 6, "1": 6, "2": 1}


def test_resume_skips_stored_ids():
    plan = plan_all_pairs(PROMPTS, NAMES, "s", seed=0)
    stored = {plan[0].id, plan[7].id, "someone-else"}
    todo = pending(plan, stored)
    assert len(todo) == len(plan) - 2 and not {b.id for b in todo} & stored


class RecordingSampler:
    """The real adaptive sampler, with its calls recorded."""

    def __init__(self, seed: int) -> None:
        self.inner = AdaptiveSampler(seed)
        self.calls: list[tuple[np.ndarray, int, list[tuple[str, str]]]] = []

    def choose(self, tally: Tally, k: int = 1) -> list[tuple[str, str]]:
        picks = self.inner.choose(tally, k)
        self.calls.append((tally.games().copy(), k, picks))
        return picks


def test_adaptive_first_round_is_one_battle_per_pair_then_the_sampler_picks():
    sampler = RecordingSampler(0)
    planner = AdaptivePlanner(PROMPTS, NAMES, "s", seed=0, budget=20, sampler=sampler)
    tally = Tally.empty(NAMES)
    first = planner.first_round(tally)
    assert len(first) == 6 and not sampler.calls
    assert {frozenset((b.model_a, b.model_b)) for b in first} == {
        frozenset(p) for p in itertools.combinations(NAMES, 2)
    }
    assert {b.prompt.id for b in first} == {"0"}  # every pair on the first prompt: answers shared
    # Games: alpha beats everyone, the others are close.
    for b in first:
        winner = "alpha" if "alpha" in (b.model_a, b.model_b) else "beta"
        tally.add(b.model_a, b.model_b, "model_a" if b.model_a == winner else "model_b")
    second = planner.next_round(tally, 8)
    assert len(second) == 8 and len(sampler.calls) == 1
    games, k, picks = sampler.calls[0]
    assert k == 8 and np.array_equal(games, tally.games())
    assert [tuple(sorted((b.model_a, b.model_b))) for b in second] == [
        tuple(sorted(p)) for p in picks
    ]
    # The same tally and seed pick the same pairs: the planner adds no choice of its own.
    assert picks == AdaptiveSampler(0).choose(tally, 8)
    third = planner.next_round(tally, 8)
    assert len(third) == 6 and planner.remaining == 0  # the budget is 20
    assert planner.next_round(tally, 8) == [] and planner.rounds == 3
    ids = [b.id for b in first + second + third]
    assert len(set(ids)) == 20


def test_adaptive_pair_takes_the_next_prompt_and_cycles():
    prompts = PROMPTS[:2]
    planner = AdaptivePlanner(prompts, ["x", "y"], "s", seed=3, budget=100)
    battles = [planner.next_battle(("y", "x")) for _ in range(5)]
    assert [b.prompt.id for b in battles] == ["0", "1", "0", "1", "0"]
    assert len({b.id for b in battles}) == 5  # a repeated prompt is another battle
    # The first cycle has all_pairs' sides; the second swaps them, for balance.
    sides = [b.model_a for b in battles]
    assert sides[0] != sides[2] and sides[1] != sides[3] and sides[0] == sides[4]
    assert battles[0].id == plan_all_pairs(prompts, ["x", "y"], "s", 3)[0].id


def test_adaptive_resume_skips_stored_battles_and_counts_them_in_the_budget():
    fresh = AdaptivePlanner(PROMPTS, NAMES, "s", seed=0, budget=10)
    earlier = fresh.first_round(Tally.empty(NAMES))[:4]
    stored = {b.id for b in earlier}
    tally = Tally.empty(NAMES)
    for b in earlier:
        tally.add(b.model_a, b.model_b, "model_a")
    again = AdaptivePlanner(PROMPTS, NAMES, "s", seed=0, budget=10, stored=stored, already=4)
    first = again.first_round(tally)
    assert len(first) == 2  # only the pairs without games
    assert not {b.id for b in first} & stored and again.remaining == 4
    # A pair whose first prompt is stored moves on to the next one.
    pair = (earlier[0].model_a, earlier[0].model_b)
    assert again.next_battle(pair).prompt.id == "1"


def test_from_arena_battles_are_rejudged_as_they_are():
    rows = [
        {"id": "b1", "category": "math", "modelA": "m1", "modelB": "m2", "winner": "model_b",
         "turns": [{"prompt": "2+2?", "answerA": "4", "answerB": "four"}]},
        {"id": "b2", "modelA": "m1", "modelB": "m1", "turns": []},
        {"id": "b3", "modelA": "m2", "modelB": "m3", "winner": "tie",
         "turns": [{"prompt": "p", "answerA": "a", "answerB": "b"},
                   {"prompt": "q", "answerA": "c", "answerB": "d"}]},
    ]  # fmt: skip
    planned, skipped = plan_from_arena(rows, "s")
    assert [b.arena_battle_id for b in planned] == ["b1", "b3"] and len(skipped) == 1
    first, second = planned
    assert first.answers == (("4",), ("four",)) and first.human_winner == "model_b"
    assert first.prompt.category == "math" and second.prompt.turns == ["p", "q"]
    assert first.id == battle_id("s", "arena:b1", "m1", "m2")
    assert len(plan_from_arena(rows, "s", budget=1)[0]) == 1


# -- games and the posted body -----------------------------------------------------------------


def test_games_of_two_orders_and_of_one(make_config=lambda **c: parse_config(example(**c))):
    judge = make_config().judge
    agree = [OrderResult(ORDER_AB, Verdict("A"), "r1"), OrderResult(ORDER_BA, Verdict("B"), "r2")]
    assert games_of(agree, judge) == ((("model_a", 1.0),), True)
    disagree = [OrderResult(ORDER_AB, Verdict("A"), ""), OrderResult(ORDER_BA, Verdict("A"), "")]
    assert games_of(disagree, judge) == ((("tie", 1.0),), False)
    both = make_config(judge__onDisagreement="bothGames", judge__scale="five").judge
    strong = [OrderResult(ORDER_AB, Verdict("A>>B", "five"), ""),
              OrderResult(ORDER_BA, Verdict("A>B", "five"), "")]  # fmt: skip
    assert games_of(strong, both) == ((("model_a", 3.0), ("model_b", 1.0)), False)
    single = make_config(judge__bothOrders=False).judge
    assert games_of([OrderResult(ORDER_AB, Verdict("B"), "")], single) == (
        (("model_b", 1.0),),
        None,
    )
    with pytest.raises(ValueError):
        games_of([OrderResult(ORDER_AB, None, "", "boom")], judge)


def test_battle_body_follows_the_contract():
    config = parse_config(example())
    prompt = Prompt("p1", ["q1", "q2"], category="chat")
    battle = plan_all_pairs([prompt], config.names, config.evaluation.scope, 0)[0]
    results = [OrderResult(ORDER_AB, Verdict("A", reason="a is right"), "raw-ab"),
               OrderResult(ORDER_BA, Verdict("B"), "raw-ba")]  # fmt: skip
    long = "x" * (MAX_TEXT_CHARS + 10)
    body = battle_body(config, battle, ["a1", long], ["b1", "b2"], results,
                       (Game("model_a", 3.0),), True)  # fmt: skip
    assert body["evaluation"] == "team/eval" and body["run"] == 3
    assert body["battleId"] == battle.id and body["arenaBattleId"] is None
    assert body["source"] == "judge:smollm" and body["category"] == "chat"
    assert body["turns"][0] == {"prompt": "q1", "answerA": "a1", "answerB": "b1"}
    assert len(body["turns"][1]["answerA"]) == MAX_TEXT_CHARS  # cut to the arena's limit
    assert body["judgments"][0] == {"order": "ab", "verdict": "A", "reason": "a is right",
                                    "raw": "raw-ab", "error": None}  # fmt: skip
    assert body["games"] == [{"winner": "model_a", "weight": 3}]
    assert isinstance(body["games"][0]["weight"], int) and body["consistent"] is True
    odd = plan_all_pairs([Prompt("p", ["q"], category="a:b")], config.names, "s", 0)[0]
    assert battle_body(config, odd, ["a"], ["b"], results, (), None)["category"] is None


def test_structured_output_asks_for_the_verdict_schema():
    config = parse_config(example())
    fmt = response_format(config.judge)
    assert fmt is not None and fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "verdict"
    assert fmt["json_schema"]["schema"]["properties"]["verdict"]["enum"] == ["A", "B", "tie"]
    assert response_format(parse_config(example(judge__structuredOutput=False)).judge) is None
    # The reason leaves room for the verdict within the judge's max tokens (a token is at
    # least one character): with 256 tokens a cut-off reason cannot swallow the verdict.
    short = response_format(parse_config(example(judge__maxTokens=256)).judge)
    assert short is not None
    assert short["json_schema"]["schema"]["properties"]["reason"]["maxLength"] == 256 - 48


# -- report arithmetic -------------------------------------------------------------------------


def row(a: str, b: str, *winners: str, consistent: bool | None = None, weight: int = 1) -> dict:
    return {"modelA": a, "modelB": b, "games": [{"winner": w, "weight": weight} for w in winners],
            "consistent": consistent}  # fmt: skip


def test_win_rate_vs_baseline_counts_battles_with_ties_half():
    rows = [
        row("x", "base", "model_a"),  # x wins
        row("base", "x", "model_a"),  # base wins
        row("base", "x", "tie"),  # tie: half
        row("base", "x", "model_b", "model_a"),  # two games that disagree: a tie
        row("x", "base", "model_a", "model_a", weight=3),  # one battle, whatever its weight
        row("y", "base", "tie (bothbad)"),
        row("x", "y", "model_a"),  # not against the baseline
    ]
    rates = report.win_rates_vs_baseline(rows, "base")
    assert rates == {"x": pytest.approx((1 + 0 + 0.5 + 0.5 + 1) / 5), "y": 0.5}
    assert report.win_rates_vs_baseline(rows, None) == {}


def test_position_consistency_is_the_share_of_two_order_battles_that_agree():
    rows = [row("x", "y", "model_a", consistent=True), row("x", "y", "tie", consistent=False),
            row("x", "y", "model_b", consistent=True), row("x", "y", "model_b")]  # fmt: skip
    rate = report.position_consistency(rows)
    assert (rate.agree, rate.total) == (2, 3) and rate.rate == pytest.approx(2 / 3)
    assert report.position_consistency([row("x", "y", "tie")]).rate is None


def test_ranking_marks_models_with_few_battles_preliminary():
    rng = np.random.default_rng(1)
    strength = {"strong": 1.5, "mid": 0.0, "weak": -1.5}
    rows = []
    for _ in range(40):
        for a, b in (("strong", "mid"), ("mid", "weak"), ("weak", "strong")):
            p = 1 / (1 + math.exp(strength[b] - strength[a]))
            rows.append(row(a, b, "model_a" if rng.random() < p else "model_b"))
    rows += [row("new", "mid", "model_a") for _ in range(3)]  # 3 battles, all won
    entries = report.ranking(rows, baseline="mid", seed=0)
    names = [e["name"] for e in entries]
    assert names[:3] == ["strong", "mid", "weak"] and names[3] == "new"
    new = entries[3]
    assert new["preliminary"] is True and new["rank"] is None and new["battles"] == 3
    assert new["winRateVsBaseline"] == 1.0
    strong = entries[0]
    assert strong["rank"] == 1 and strong["preliminary"] is False and strong["battles"] == 80
    assert strong["ciLower"] < strong["rating"] < strong["ciUpper"]
    assert entries[1]["winRateVsBaseline"] is None  # the baseline itself
    ratings = [e["rating"] for e in entries[:3]]
    assert ratings == sorted(ratings, reverse=True)
    assert report.leader(entries) == "strong"
    # Mean 1000 over the fitted models (Elo scale, no anchor).
    all_ratings = [e["rating"] for e in entries]
    assert sum(all_ratings) / len(all_ratings) == pytest.approx(1000, abs=0.1)


def test_ranking_without_enough_battles_leads_with_the_best_rated_preliminary_entry():
    entries = report.ranking([row("x", "y", "model_a"), row("x", "y", "model_a"),
                              row("x", "y", "model_b")])  # fmt: skip
    assert [e["preliminary"] for e in entries] == [True, True]
    assert all(e.get("rank") is None for e in entries)
    assert report.leader(entries) == "x"  # its entry says it is preliminary
    assert report.leader([]) is None and report.ranking([]) == []


def test_self_enhancement_flags_the_judge_model_and_its_family():
    config = parse_config(example(contestants__1__family="smollm2"))
    # small serves the judge's own model; remote shares its family.
    assert report.self_enhanced(config) == ["small", "remote"]
    other = parse_config(example(judge__model="other", judge__family=None))
    assert report.self_enhanced(other, ["other", "small"]) == ["other"]


def test_human_agreement_from_the_arena_and_locally():
    payload = {"a": "human", "b": "judge:x", "battles": 5, "withTies": 0.6,
               "withoutTies": {"battles": 4, "agreement": 0.75}}  # fmt: skip
    assert report.human_agreement(payload) == {"battles": 5, "withTies": 0.6, "withoutTies": 0.75}
    rows = [dict(row("a", "b", "model_a"), arenaBattleId="1"),
            dict(row("a", "b", "model_b", "model_a"), arenaBattleId="2"),
            dict(row("a", "b", "model_b"), arenaBattleId="3")]  # fmt: skip
    local = report.local_human_agreement(
        {"1": "model_a", "2": "tie (bothbad)", "3": "model_a"}, rows
    )
    assert local == {"battles": 3, "withTies": pytest.approx(0.6667), "withoutTies": 0.5}


# -- status ----------------------------------------------------------------------------------


def test_status_patch_tests_the_run_first():
    fields = {
        "progress": {"planned": 2},
        "leader": None,
        "ranking": [{"name": "x", "rating": 1000.0, "rank": None}],
        "judge": {"positionConsistency": float("nan"), "model": "m"},
    }
    body = patch_body(3, fields)
    assert body[0] == {"op": "test", "path": "/status/run", "value": 3}
    assert [op["path"] for op in body[1:]] == ["/status/progress", "/status/ranking",
                                              "/status/judge"]  # fmt: skip
    assert all(op["op"] == "add" for op in body[1:])
    # The CRD's fields are not nullable: no None and no NaN go out.
    assert body[2]["value"] == [{"name": "x", "rating": 1000.0}]
    assert body[3]["value"] == {"model": "m"}
    json.dumps(body, allow_nan=False)


def test_status_only_in_a_pod(tmp_path):
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster(env, tmp_path) is None  # no service-account files
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("c")
    target = in_cluster(env, tmp_path)
    assert target is not None and target.base_url == "https://10.0.0.1:443"
    assert in_cluster({}, tmp_path) is None
    assert in_cluster({**env, "ARENASTACK_STATUS": "off"}, tmp_path) is None
    six = in_cluster({**env, "KUBERNETES_SERVICE_HOST": "fd00::1"}, tmp_path)
    assert six is not None and six.base_url == "https://[fd00::1]:443"


# -- the request slots -----------------------------------------------------------------------


async def test_slots_serve_judgments_before_answers_and_never_exceed_the_size():
    slots = Slots(2)
    order: list[str] = []
    gate = asyncio.Event()

    async def job(name: str, priority: int) -> None:
        async with slots.hold(priority):
            order.append(name)
            await gate.wait()

    first = [asyncio.create_task(job(f"busy{k}", 1)) for k in range(2)]
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(job("answer1", 1)), asyncio.create_task(job("answer2", 1))]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(job("judge", 0)))
    cancelled = asyncio.create_task(job("gone", 0))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*first, *waiting)
    assert order == ["busy0", "busy1", "judge", "answer1", "answer2"]
    assert slots.peak == 2 and slots.in_use == 0


def test_window_keeps_more_battles_than_slots():
    assert window_size(8, 2) == 32
    assert window_size(2, 32) == 2 + 32 * 31 // 2


def test_costs_from_output_tokens_and_prices():
    config = parse_config(example())
    priced = next(c.name for c in config.contestants if c.price_per_million_tokens is not None)
    unpriced = next(c.name for c in config.contestants if c.price_per_million_tokens is None)
    entries = [{"name": priced}, {"name": unpriced}, {"name": "quiet"}]
    report.add_costs(entries, config, {priced: 2_000_000, unpriced: 10})
    price = next(c.price_per_million_tokens for c in config.contestants if c.name == priced)
    assert entries[0] == {"name": priced, "outputTokens": 2_000_000, "cost": 2 * price}
    assert entries[1] == {"name": unpriced, "outputTokens": 10}  # no price: no cost
    assert entries[2] == {"name": "quiet"}  # no answers generated by this process
