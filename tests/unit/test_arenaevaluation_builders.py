"""ArenaEvaluation's pure layers: run naming, the runner's rights, run.json, the Job, status."""

from __future__ import annotations

import json
from typing import Any

import pytest

from arenastack_operator import security
from arenastack_operator.arenaevaluation import builders, names
from arenastack_operator.arenaevaluation import status as st
from arenastack_operator.arenaevaluation.builders import Owner, Target
from arenastack_operator.arenaevaluation.spec import ArenaEvaluationSpec
from arenastack_operator.conditions import status_changed
from arenastack_operator.schema.base import SecretKeyReference

OWNER = Owner("eval", "team", "uid-1", run=3)
NOW = "2026-12-01T10:00:00Z"


def spec(**overrides: Any) -> ArenaEvaluationSpec:
    body: dict[str, Any] = {
        "contestants": [
            {"name": "small", "inferenceDeploymentRef": {"name": "smollm"},
             "sampling": {"temperature": 0.2, "systemPrompt": "Be brief."}, "family": "smollm2"},
            {"name": "remote", "endpoint": {"baseURL": "https://api.example.com/v1", "model": "m",
                                             "apiKeySecretRef": {"name": "keys", "key": "remote"}},
             "pricePerMillionTokens": 0.5},
        ],
        "prompts": {"inline": [{"text": "Say hello.", "category": "chat"}]},
        "judge": {"inferenceDeploymentRef": {"name": "smollm"}, "family": "smollm2"},
    }  # fmt: skip
    body.update(overrides)
    return ArenaEvaluationSpec.model_validate(body)


CONTESTANTS = [
    Target("small", "http://smollm-router.team.svc:8000/v1", "smollm", vllm=True),
    Target(
        "remote", "https://api.example.com/v1", "m", SecretKeyReference(name="keys", key="remote")
    ),
]
JUDGE = Target("smollm", "http://smollm-router.team.svc:8000/v1", "smollm", vllm=True)


def test_names_fit_label_values_and_differ_per_run():
    long = "e" * 70
    assert len(names.run_name(long, 12345)) <= 63 and names.run_name(long, 1).endswith("-run-1")
    assert names.run_name(long, 1) != names.run_name(long + "x", 1)
    assert names.run_name("eval", 3) == "eval-run-3"
    assert names.runner_name("eval") == "eval-runner"


def test_runner_may_read_its_evaluation_and_write_its_status_only():
    rules = builders.role(OWNER)["rules"]
    assert {(tuple(r["resources"]), tuple(r["verbs"])) for r in rules} == {
        (("arenaevaluations",), ("get",)),
        (("arenaevaluations/status",), ("get", "patch")),
    }
    assert all(r["resourceNames"] == ["eval"] for r in rules)
    binding = builders.role_binding(OWNER)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "eval-runner",
                                    "namespace": "team"}]  # fmt: skip


def test_run_config_resolves_targets_and_names_secrets_without_values():
    config, secrets = builders.run_config(spec(), OWNER, CONTESTANTS, JUDGE, "http://arena/")
    small, remote = config["contestants"]
    assert small == {"name": "small", "baseURL": CONTESTANTS[0].base_url, "model": "smollm",
                     "temperature": 0.2, "systemPrompt": "Be brief.", "maxTokens": 512,
                     "family": "smollm2"}  # fmt: skip
    assert remote["apiKeyEnv"] == "ARENASTACK_API_KEY_1" and remote["pricePerMillionTokens"] == 0.5
    assert secrets == {"ARENASTACK_API_KEY_1": SecretKeyReference(name="keys", key="remote")}
    judge = config["judge"]
    # A vLLM judge is asked with structured output: small judges never follow a free format.
    assert judge["structuredOutput"] is True and judge["source"] == "judge:smollm"
    assert (judge["scale"], judge["bothOrders"], judge["onDisagreement"]) == ("three", True, "tie")
    assert config["evaluation"] == {"namespace": "team", "name": "eval", "uid": "uid-1", "run": 3}
    assert config["prompts"] == {"inline": [{"text": "Say hello.", "category": "chat"}]}
    assert "keys" not in json.dumps(config)  # Secret names stay in the Job's env only


def test_endpoint_judge_has_free_format_unless_asked():
    endpoint = {"endpoint": {"baseURL": "https://j.example/v1", "model": "big"}}
    judge = Target("big", "https://j.example/v1", "big")
    config, _ = builders.run_config(spec(judge=endpoint), OWNER, CONTESTANTS, judge, "http://a")
    assert config["judge"]["structuredOutput"] is False
    endpoint["structuredOutput"] = True
    config, _ = builders.run_config(spec(judge=endpoint), OWNER, CONTESTANTS, judge, "http://a")
    assert config["judge"]["structuredOutput"] is True


@pytest.mark.parametrize(
    ("prompts", "expected", "volume"),
    [
        ({"configMapRef": {"name": "qs", "key": "q.jsonl"}},
         {"file": "/etc/arenastack/prompts/q.jsonl"}, {"configMap": {"name": "qs"}}),
        ({"file": {"claimName": "data", "path": "mt/q.jsonl"}},
         {"file": "/data/prompts/mt/q.jsonl"},
         {"persistentVolumeClaim": {"claimName": "data", "readOnly": True}}),
        ({"fromArena": {"category": "coding"}}, {"fromArena": {"category": "coding", "limit": 100}},
         None),
    ],
    ids=["configmap", "volume-file", "from-arena"],
)  # fmt: skip
def test_prompt_sources_reach_the_runner(prompts, expected, volume):
    evaluation = spec(prompts=prompts)
    config, _ = builders.run_config(evaluation, OWNER, CONTESTANTS, JUDGE, "http://a")
    assert config["prompts"] == expected
    pod = builders.job(evaluation, OWNER, "arena:1", {})["spec"]["template"]["spec"]
    sources = [{k: v for k, v in vol.items() if k != "name"} for vol in pod["volumes"]]
    assert (volume in sources) if volume else len(sources) == 2


def test_job_runs_non_root_read_only_with_secrets_from_references():
    evaluation = spec(suspend=True, arena={"tokenSecretRef": {"name": "arena", "key": "token"}})
    config, secrets = builders.run_config(evaluation, OWNER, CONTESTANTS, JUDGE, "http://a")
    assert config["arena"] == {"url": "http://a", "tokenEnv": "ARENA_JUDGE_TOKEN"}
    job = builders.job(evaluation, OWNER, "arena:1", secrets)
    assert job["metadata"]["name"] == "eval-run-3" and job["spec"]["suspend"] is True
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["metadata"]["labels"][names.LABEL_RUN] == "3"
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "eval-runner" and pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsUser"] == security.PRODUCT_UID
    (container,) = pod["containers"]
    assert container["image"] == "arena:1"
    assert container["command"] == ["python", "-m", "arenastack_arena.evaluation"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env == {"ARENASTACK_API_KEY_1": {"name": "keys", "key": "remote"},
                   "ARENA_JUDGE_TOKEN": {"name": "arena", "key": "token"}}  # fmt: skip
    custom = spec(job={"image": "mine:2", "backoffLimit": 0, "activeDeadlineSeconds": 60})
    job = builders.job(custom, OWNER, "arena:1", {})
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "mine:2"
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (0, 60)


# -- status ------------------------------------------------------------------------------------


def _job(**status: Any) -> dict[str, Any]:
    return {"spec": {"suspend": status.pop("suspend", False)}, "status": status}


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def build(previous: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(previous=previous or {}, generation=3, run=3, judge_name="smollm",
                                job_name="eval-run-3", job=None, problem=None, now=NOW)  # fmt: skip
    args.update(kwargs)
    return st.build_status(**args)


@pytest.mark.parametrize(
    ("job", "phase", "reason", "ready", "progressing"),
    [
        (_job(), "Running", "Running", "False", "True"),
        (_job(active=1, startTime=NOW), "Running", "Running", "False", "True"),
        (_job(suspend=True), "Suspended", "Suspended", "False", "False"),
        (_job(conditions=[{"type": "Complete", "status": "True"}], completionTime=NOW),
         "Succeeded", "Succeeded", "True", "False"),
        (_job(conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                           "message": "Job has reached the specified backoff limit"}]),
         "Failed", "BackoffLimitExceeded", "False", "False"),
    ],
    ids=["created", "active", "suspended", "complete", "failed"],
)  # fmt: skip
def test_phase_follows_the_job(job, phase, reason, ready, progressing):
    status = build(job=job)
    assert (status["phase"], status["reason"]) == (phase, reason)
    assert _condition(status, "Ready")["status"] == ready
    assert _condition(status, "Progressing")["status"] == progressing
    degraded = _condition(status, "Degraded")
    assert degraded["status"] == ("True" if phase == "Failed" else "False")
    if phase in ("Succeeded", "Failed"):
        assert status["completionTime"] == NOW


def test_a_failed_run_says_what_its_runner_said():
    def pod(finished: str, message: str) -> dict[str, Any]:
        state = {"terminated": {"exitCode": 3, "finishedAt": finished, "message": message}}
        return {"status": {"containerStatuses": [{"state": state}]}}

    pods = [pod("2026-12-01T10:00:00Z", "judge unreachable: first try"),
            pod("2026-12-01T10:05:00Z", "judge unreachable: connection refused\n")]  # fmt: skip
    said = st.termination_message(pods)
    assert said == "judge unreachable: connection refused"
    failed = _job(
        conditions=[
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ]
    )
    status = build(job=failed, runner_message=said)
    assert status["message"].endswith("the runner said: judge unreachable: connection refused")
    assert st.termination_message([{"status": {}}]) is None


def test_waiting_names_what_it_waits_for_and_is_degraded():
    problem = st.waiting(["contestant smollm"], judge_not_ready=False)
    status = build(problem=problem, waiting_for=["contestant smollm"])
    assert status["phase"] == "WaitingForContestants" and "jobName" not in status
    assert status["waitingFor"] == ["contestant smollm"]
    degraded = _condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ContestantNotReady")
    assert "contestant smollm" in degraded["message"]
    judge = st.waiting(["judge smollm"], judge_not_ready=True)
    assert build(problem=judge)["reason"] == "JudgeNotReady"


def test_runner_fields_survive_within_a_run_and_reset_on_a_new_one():
    runner = {"progress": {"planned": 4, "judged": 2, "parseErrors": 1}, "leader": "small"}
    previous = {"run": 3, "phase": "Running", **runner}
    kept = build(previous, job=_job(active=1))
    assert kept["progress"] == runner["progress"] and kept["leader"] == "small"
    degraded = _condition(kept, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "VerdictParseErrors")
    fresh = build(previous, generation=4, run=4, job_name="eval-run-4", job=_job())
    assert "progress" not in fresh and "leader" not in fresh and fresh["run"] == 4


def test_suspend_is_not_part_of_a_run_but_every_other_field_is():
    base = builders.run_hash(spec())
    assert builders.run_hash(spec(suspend=True)) == base
    assert builders.run_hash(spec(concurrency=2)) != base
    job = builders.job(spec(), OWNER, "arena:1", {})
    assert job["metadata"]["annotations"][names.ANNOTATION_RUN_HASH] == base


def test_unchanged_status_is_not_rewritten():
    first = build(job=_job(active=1))
    again = build(first, job=_job(active=1), now="2026-12-01T11:00:00Z")
    assert not status_changed(first, again)
    assert status_changed(first, build(first, job=_job(suspend=True)))
