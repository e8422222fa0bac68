"""The ArenaEvaluation reconciler against a real control plane with simulated (kwok) nodes.

One operator process (the real `python -m arenastack_operator`, chart ServiceAccount, an arena
URL as the chart sets it) serves the module. kwok runs no containers: InferenceDeployments are
Ready once their replicas are scheduled, and kwok finishes Job pods as Succeeded, so the run's
phases are the Job controller's real ones; what the runner itself does is tested in tests/e2e.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_helpers import get, wait_for
from operator_runner import OperatorProcess, OperatorRunner

from arenastack_operator import constants
from arenastack_operator.arenaevaluation import names

pytestmark = pytest.mark.integration

ARENA_URL = "http://arena.arenastack.svc:80"


@pytest.fixture(scope="module")
def runner(
    cluster, crds, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorRunner]:
    runner = OperatorRunner(operator_kubeconfig, tmp_path_factory.mktemp("aeval-operator"))
    runner.clear_lease(cluster)
    yield runner
    runner.stop_all()


@pytest.fixture(scope="module")
def operator(runner: OperatorRunner) -> OperatorProcess:
    return runner.start(args=[f"--arena-url={ARENA_URL}", "--evaluation-image=arena:test"])


def deployment(name: str) -> str:
    return yaml.safe_dump({
        "apiVersion": constants.API_VERSION, "kind": "InferenceDeployment",
        "metadata": {"name": name},
        "spec": {"model": {"huggingFace": {"repoId": f"org/{name}"}, "servedModelName": name},
                 "resources": {"requests": {"cpu": "100m"}}},
    })  # fmt: skip


def evaluation(name: str, **spec: Any) -> str:
    body = {
        "contestants": [
            {"name": "alpha", "inferenceDeploymentRef": {"name": "alpha"}},
            {"name": "beta", "inferenceDeploymentRef": {"name": "beta"}},
            {"name": "remote", "endpoint": {"baseURL": "https://api.example.com/v1",
                                            "model": "big", "apiKeySecretRef":
                                            {"name": "keys", "key": "remote"}}},
        ],
        "prompts": {"inline": [{"text": "Name a prime.", "category": "math"}]},
        "judge": {"inferenceDeploymentRef": {"name": "alpha"}},
    }  # fmt: skip
    body.update(spec)
    return yaml.safe_dump({"apiVersion": constants.API_VERSION, "kind": "ArenaEvaluation",
                           "metadata": {"name": name}, "spec": body})  # fmt: skip


def apply(cluster, namespace: str, text: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text)


def status(cluster, namespace: str, name: str) -> dict[str, Any]:
    return (get(cluster, "arenaevaluation", namespace, name) or {}).get("status") or {}


def phase_is(cluster, namespace: str, name: str, phase: str) -> dict[str, Any] | None:
    current = status(cluster, namespace, name)
    return current if current.get("phase") == phase else None


def jobs(cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return get(cluster, "jobs", namespace, selector=f"{names.LABEL_EVALUATION}={name}") or []


def names_of(objects: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["name"] for o in objects]


def reasons(cluster, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in get(cluster, "events", namespace) or []
            if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] ==
            "ArenaEvaluation"]  # fmt: skip


def test_waits_for_contestants_then_runs_to_success(cluster, operator, namespace):
    apply(cluster, namespace, deployment("alpha"))
    apply(cluster, namespace, evaluation("e1"))
    waiting = wait_for(
        "waiting", lambda: phase_is(cluster, namespace, "e1", "WaitingForContestants")
    )
    assert waiting["reason"] == "ContestantNotFound" and waiting["waitingFor"] == [
        "contestant beta"
    ]
    degraded = next(c for c in waiting["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and "beta" in degraded["message"]
    assert jobs(cluster, namespace, "e1") == []

    apply(cluster, namespace, deployment("beta"))
    done = wait_for("succeeded", lambda: phase_is(cluster, namespace, "e1", "Succeeded"), 120)
    assert done["run"] == 1 and done["jobName"] == "e1-run-1" and done["judgeName"] == "alpha"
    assert done["startTime"] and done["completionTime"]
    ready = next(c for c in done["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert {"ContestantNotFound", "CreatedJob", "Succeeded"} <= set(
        reasons(cluster, namespace, "e1")
    )
    (job,) = jobs(cluster, namespace, "e1")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "arena:test" and pod["serviceAccountName"] == "e1-runner"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env == {"ARENASTACK_API_KEY_2": {"name": "keys", "key": "remote"}}

    config_map = get(cluster, "configmap", namespace, "e1-run-1")
    config = json.loads(config_map["data"]["run.json"])
    alpha = f"http://alpha-router.{namespace}.svc.cluster.local:8000/v1"
    assert [(c["name"], c["baseURL"], c["model"]) for c in config["contestants"]] == [
        ("alpha", alpha, "alpha"),
        ("beta", alpha.replace("alpha", "beta"), "beta"),
        ("remote", "https://api.example.com/v1", "big"),
    ]
    assert config["arena"]["url"] == ARENA_URL and config["judge"]["structuredOutput"] is True


def test_runner_rights_are_its_own_evaluation_only(cluster, operator, namespace):
    apply(cluster, namespace, deployment("alpha"))
    apply(cluster, namespace, deployment("beta"))
    apply(cluster, namespace, evaluation("e2"))
    apply(cluster, namespace, evaluation("other"))
    wait_for("jobs", lambda: jobs(cluster, namespace, "e2") and jobs(cluster, namespace, "other"))
    runner = f"system:serviceaccount:{namespace}:e2-runner"

    def can(verb: str, resource: str) -> bool:
        result = cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace,
                                 f"--as={runner}", check=False)  # fmt: skip
        return result.stdout.strip() == "yes"

    assert can("get", "arenaevaluations/e2")
    assert not can("get", "arenaevaluations/other")
    assert not can("patch", "arenaevaluations/e2")  # the spec is the user's
    assert not can("get", "secrets") and not can("list", "pods") and not can("create", "jobs")
    result = cluster.kubectl(
        "auth", "can-i", "patch", "arenaevaluations/e2", "--subresource=status",
        "-n", namespace, f"--as={runner}", check=False,
    )  # fmt: skip
    assert result.stdout.strip() == "yes"


def test_suspend_holds_the_run_and_a_spec_change_starts_a_new_one(cluster, operator, namespace):
    apply(cluster, namespace, deployment("alpha"))
    apply(cluster, namespace, deployment("beta"))
    apply(cluster, namespace, evaluation("e3", suspend=True))
    held = wait_for("suspended", lambda: phase_is(cluster, namespace, "e3", "Suspended"))
    assert held["reason"] == "Suspended" and jobs(cluster, namespace, "e3") == []

    apply(cluster, namespace, evaluation("e3", suspend=False))
    wait_for("run 2", lambda: names_of(jobs(cluster, namespace, "e3")) == ["e3-run-2"])
    assert wait_for("run 2 status", lambda: status(cluster, namespace, "e3").get("run")) == 2

    # Suspending again pauses the same run: suspend is not part of what a run evaluates.
    apply(cluster, namespace, evaluation("e3", suspend=True))
    wait_for("job suspended", lambda: [j["spec"].get("suspend") for j in
                                       jobs(cluster, namespace, "e3")] == [True])  # fmt: skip
    assert names_of(jobs(cluster, namespace, "e3")) == ["e3-run-2"]
    assert status(cluster, namespace, "e3")["run"] == 2

    apply(cluster, namespace, evaluation("e3", concurrency=2))
    wait_for("run 4 only", lambda: names_of(jobs(cluster, namespace, "e3")) == ["e3-run-4"])
    wait_for("status of run 4", lambda: status(cluster, namespace, "e3").get("run") == 4)
    assert "StoppedEarlierRun" in reasons(cluster, namespace, "e3")
    assert get(cluster, "configmap", namespace, "e3-run-2") is None


def test_an_arena_named_in_the_spec_wins_over_the_operators(cluster, operator, namespace):
    apply(cluster, namespace, deployment("alpha"))
    apply(cluster, namespace, deployment("beta"))
    spec_arena = {"url": "http://arena.elsewhere.svc:80"}
    apply(cluster, namespace, evaluation("e4", arena=spec_arena))
    wait_for("job", lambda: jobs(cluster, namespace, "e4"))
    config = json.loads(get(cluster, "configmap", namespace, "e4-run-1")["data"]["run.json"])
    assert config["arena"]["url"] == spec_arena["url"]


def test_deleting_the_evaluation_removes_its_run(cluster, operator, namespace):
    apply(cluster, namespace, deployment("alpha"))
    apply(cluster, namespace, deployment("beta"))
    apply(cluster, namespace, evaluation("e5"))
    wait_for("job", lambda: jobs(cluster, namespace, "e5"))
    cluster.kubectl("delete", "arenaevaluation", "e5", "-n", namespace, "--wait=false")
    wait_for("job gone", lambda: jobs(cluster, namespace, "e5") == [], 90)
    wait_for("runner RBAC gone", lambda: get(cluster, "role", namespace, "e5-runner") is None, 90)


def test_sigkilled_operator_leaves_one_job(cluster, runner, operator, namespace):
    apply(cluster, namespace, deployment("alpha"))
    apply(cluster, namespace, deployment("beta"))
    wait_for("deployments ready", lambda: all(
        (get(cluster, "inferencedeployment", namespace, n) or {}).get("status", {}).get(
            "readyReplicas") for n in ("alpha", "beta")))  # fmt: skip
    for attempt in range(3):
        apply(cluster, namespace, evaluation(f"k{attempt}"))
    operator.kill()
    replacement = runner.start(args=[f"--arena-url={ARENA_URL}"])
    try:
        for attempt in range(3):
            wait_for(f"k{attempt} runs", lambda a=attempt: jobs(cluster, namespace, f"k{a}"))
        # The restarted operator found the Jobs (name and spec hash) instead of making more.
        for attempt in range(3):
            assert [j["metadata"]["name"] for j in jobs(cluster, namespace, f"k{attempt}")] == [
                f"k{attempt}-run-1"
            ]
    finally:
        replacement.terminate()
