"""The serving half of `make demo` on the local profile: two small models behind vLLM's router,
and the arena that ranks them beside the real Chatbot Arena leaderboard of August 2024.

show_inference: two InferenceDeployments become engine and router pods (the engines read the
models from the host's model cache: modelclaim): SmolLM2-135M-Instruct, a real instruct model
unpacked from its PyPI package, and a random-weight tiny model made locally, which answers
noise; the official openai client gets a chat answer through each router.

show_arena: the chart, upgraded with arena.enabled, runs the vote service as a pod: its
leaderboard seeded from the real 2024-08-14 battle counts with mixtral-8x7b-instruct-v0.1 at
1114, its admin token from a Secret, the two demo models registered from their
InferenceDeployments' endpoints; one battle runs through the API and is voted on.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import yaml
from openai import OpenAI

from arenastack_cluster.arena_data import chatbot_arena_counts
from arenastack_cluster.arenaclient import ArenaClient
from arenastack_cluster.cluster import CHART_DIR, LocalCluster
from arenastack_cluster.modelclaim import model_source
from arenastack_cluster.processes import ClusterError, poll
from arenastack_cluster.vllmenv import (
    FAST_ENGINE_ARGS,
    JUDGE_ENGINE_ARGS,
    JUDGE_MAX_MODEL_LEN,
    judge_model,
    tiny_model,
    vllm_python,
)
from arenastack_operator import constants
from arenastack_operator.inferencedeployment import names

ANCHOR = "mixtral-8x7b-instruct-v0.1"
ANCHOR_RATING = 1114
# InferenceDeployment (and served model) names: the real instruct model, and a random one.
INSTRUCT_MODEL = "smollm2"
NOISE_MODEL = "tiny"
DEMO_MODELS = (INSTRUCT_MODEL, NOISE_MODEL)
DISPLAY_NAMES = {INSTRUCT_MODEL: "SmolLM2-135M-Instruct", NOISE_MODEL: "Tiny Llama (random)"}
NOISE_SEED = 1
NOISE_MAX_MODEL_LEN = 512
ADMIN_SECRET = "arena-admin"
ADMIN_SECRET_KEY = "token"
# The judge API's token: in the arena's namespace for the service, and a copy in the models'
# namespace, where evaluations run.
JUDGE_SECRET = "arena-judge"
ARENA_PORT = 8080  # the chart's default arena.port
READY_TIMEOUT_S = 600.0  # two engines' cold start on a busy 2-core machine
ROUTER_TIMEOUT_S = 120.0
ARENA_TIMEOUT_S = 300.0
TOP_ROWS = 10
PROMPT = "Say hello to the arena."
MAX_ANSWER_TOKENS = 64


def _section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _get(cluster: LocalCluster, *args: str) -> Any:
    out = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _ready_pod_ip(cluster: LocalCluster, namespace: str, selector: str) -> str | None:
    for pod in (_get(cluster, "pods", "-n", namespace, "-l", selector) or {}).get("items") or []:
        conditions = pod["status"].get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return pod["status"]["podIP"]
    return None


def _inference_deployment(
    name: str, source: dict[str, Any], max_model_len: int, engine_args: list[str]
) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "InferenceDeployment",
        "metadata": {"name": name},
        "spec": {
            # float32: in bfloat16 the CPU engine's answers are noise even for the real model.
            "model": {**source, "servedModelName": name, "dtype": "float32"},
            "gpusPerReplica": 0,
            "engine": {"maxModelLen": max_model_len, "extraArgs": engine_args},
            "router": {"policy": "roundRobin"},
        },
    }


def _serving(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    status = (_get(cluster, "inferencedeployment", name, "-n", namespace) or {}).get("status")
    conditions = {c["type"]: c["status"] for c in (status or {}).get("conditions") or []}
    if status and status.get("readyReplicas") == 1 and conditions.get("Ready") == "True":
        return status
    return None


def _chat(base_url: str, model: str) -> str | None:
    client = OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=60)
    try:
        chat = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=16,
            temperature=0,
        )
    except Exception:  # the router may not have discovered its replica yet
        return None
    return chat.choices[0].message.content


def show_inference(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    """Serve the demo models in `namespace`; returns served model name -> router base URL
    (a pod address this machine reaches)."""
    _section("two small models behind vLLM's router (InferenceDeployment)")
    python = vllm_python()
    cluster.kubectl("create", "namespace", namespace, check=False)
    instruct = model_source(cluster, namespace, judge_model(python))
    noise = model_source(cluster, namespace, tiny_model(python, "tiny-llama", NOISE_SEED))
    bodies = [
        _inference_deployment(INSTRUCT_MODEL, instruct, JUDGE_MAX_MODEL_LEN, JUDGE_ENGINE_ARGS),
        _inference_deployment(NOISE_MODEL, noise, NOISE_MAX_MODEL_LEN, FAST_ENGINE_ARGS),
    ]
    applied = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(bodies))
    print(applied.stdout.strip())
    print("waiting for the engines to load their models (a minute or two)...", flush=True)
    routers: dict[str, str] = {}
    for name in DEMO_MODELS:
        try:
            poll(f"InferenceDeployment {name}", lambda n=name: _serving(cluster, namespace, n),
                  READY_TIMEOUT_S)  # fmt: skip
        except ClusterError:
            pods = cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False)
            raise ClusterError(f"InferenceDeployment {name} never served:\n{pods.stdout}") from None
        selector = f"{names.LABEL_DEPLOYMENT}={name},{constants.LABEL_COMPONENT}=router"
        ip = poll(f"{name}'s router", lambda s=selector: _ready_pod_ip(cluster, namespace, s),
                   ROUTER_TIMEOUT_S)  # fmt: skip
        routers[name] = f"http://{ip}:{names.ROUTER_PORT}/v1"

    _section("kubectl get inferencedeployments")
    print(cluster.kubectl("get", "inferencedeployments", "-n", namespace).stdout.strip())
    _section(f"a chat completion through each router (openai client): {PROMPT!r}")
    for name, url in routers.items():
        answer = poll(f"an answer from {name}", lambda u=url, n=name: _chat(u, n),
                       ROUTER_TIMEOUT_S)  # fmt: skip
        print(f"{name} via {url}: {answer!r}")
    print(f"({NOISE_MODEL} has random weights: its words are noise, its serving path is real)")
    return routers


def token_secret(cluster: LocalCluster, namespace: str, name: str, value: str = "") -> str:
    """A token that lives only in a Secret: made once (with `value`, or a random one)."""
    secret = _get(cluster, "secret", name, "-n", namespace)
    if secret is None:
        literal = f"--from-literal={ADMIN_SECRET_KEY}={value or secrets.token_hex(24)}"
        cluster.kubectl("create", "secret", "generic", name, "-n", namespace, literal)
        secret = _get(cluster, "secret", name, "-n", namespace)
    return base64.b64decode(secret["data"][ADMIN_SECRET_KEY]).decode()


def _registered_models(cluster: LocalCluster, namespace: str) -> list[dict[str, str]]:
    """The demo models, by the OpenAI endpoints their InferenceDeployments report."""
    models = []
    for name in DEMO_MODELS:
        status = _serving(cluster, namespace, name)
        if status is None:
            raise ClusterError(f"InferenceDeployment {name} is not serving; run show_inference")
        models.append(
            {
                "name": name,
                "endpoint": status["endpoint"],
                "upstream_model": status["servedModel"],
                "display_name": DISPLAY_NAMES[name],
                "organization": "arenastack demo",
                "license": "apache-2.0",
            }
        )
    return models


def arena_values(models: list[dict[str, str]]) -> dict[str, Any]:
    """The chart values of the demo's arena (the seed counts go in with --set-file)."""
    return {
        "arena": {
            "enabled": True,
            # The local node has no volume provisioner: the SQLite file lives as long as the pod.
            "persistence": {"enabled": False},
            "adminToken": {"existingSecret": ADMIN_SECRET, "key": ADMIN_SECRET_KEY},
            "judgeToken": {"existingSecret": JUDGE_SECRET, "key": ADMIN_SECRET_KEY},
            "leaderboard": {"anchor": ANCHOR, "anchorRating": ANCHOR_RATING},
            "models": models,
            # The tiny models' context is 512 tokens: short answers leave room for more turns.
            "env": {"ARENA_MAX_ANSWER_TOKENS": MAX_ANSWER_TOKENS},
        }
    }


def seed_votes() -> int:
    counts = json.loads(chatbot_arena_counts().read_text())
    return int(sum(sum(row) for row in counts["Y"]))


def _print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"{'rank':>4}  {'model':<36} {'rating':>7}  {'95% interval':<17} {'votes':>8}")
    for row in rows:
        interval = f"[{row['lower']:.1f}, {row['upper']:.1f}]"
        flag = "  (flagged: no win/loss path to the rest)" if row.get("flagged") else ""
        # Too few battles to rank: shown apart, never above the real models.
        rank = "-" if row.get("rank") is None else row["rank"]
        print(f"{rank:>4}  {row['model']:<36} {row['rating']:>7.1f}  {interval:<17} "
              f"{row['votes']:>8}{flag}")  # fmt: skip


def show_arena(cluster: LocalCluster, release: str, namespace: str, models_namespace: str) -> str:
    """Run the arena from the chart (release in namespace) with the models of
    `models_namespace`, one battle and vote through its API; returns the UI's URL."""
    seed_counts = chatbot_arena_counts()
    token = token_secret(cluster, namespace, ADMIN_SECRET)
    judge_token = token_secret(cluster, namespace, JUDGE_SECRET)
    token_secret(cluster, models_namespace, JUDGE_SECRET, judge_token)
    values = cluster.state / "arena-values.yaml"
    values.write_text(yaml.safe_dump(arena_values(_registered_models(cluster, models_namespace))))
    _section(f"helm upgrade {release} --set arena.enabled=true (seeded from {seed_counts.name})")
    cluster.helm("upgrade", "--install", release, str(CHART_DIR), "-n", namespace,
                 "--reuse-values", "-f", str(values),
                 "--set-file", f"arena.seedCounts.json={seed_counts}",
                 "--wait", "--timeout", f"{ARENA_TIMEOUT_S:.0f}s")  # fmt: skip
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=arena"
    ip = poll("the arena pod", lambda: _ready_pod_ip(cluster, namespace, selector), 60)
    print(cluster.kubectl("get", "deploy,svc,pods", "-n", namespace, "-l", selector).stdout)
    arena = ArenaClient(f"http://{ip}:{ARENA_PORT}", token)

    registered = arena.call("GET", "/api/admin/models", admin=True)
    print("registered (admin API, token from Secret "
          f"{namespace}/{ADMIN_SECRET}):")  # fmt: skip
    for model in registered:
        print(f"  {model['name']:<8} -> {model['endpoint']}")

    seeded = seed_votes()
    board = arena.wait_leaderboard(seeded, ARENA_TIMEOUT_S)
    _section(f"leaderboard from {board['votes']:,} real battles (2024-08-14), "
             f"{ANCHOR} = {ANCHOR_RATING}: top {TOP_ROWS}")  # fmt: skip
    _print_rows(board["rows"][:TOP_ROWS])
    (anchor,) = [row for row in board["rows"] if row["model"] == ANCHOR]
    print(f"...\n{anchor['rank']:>4}  {ANCHOR:<36} {anchor['rating']:>7.1f}")

    _section(f"a battle through the arena's API (POST /api/battles, SSE): {PROMPT!r}")
    battle = arena.battle(PROMPT)
    for side, text in battle.answers().items():
        print(f"model {side.upper()} (anonymous): {text[:120]!r}")
    # Both engines start from the same sampling seed and a random-weight model's next-token
    # distribution is nearly flat, so the random draws, not the weights, pick most tokens.
    print("(sampled answers of flat random models look alike; the greedy answers above differ)")
    if not battle.votable:
        raise ClusterError(f"the demo battle cannot be voted on: {battle.events[-3:]}")
    reveal = arena.vote(battle.battle_id, "model_a")
    print(f"voted model_a -> revealed: A = {reveal['model_a']['name']}, "
          f"B = {reveal['model_b']['name']}")  # fmt: skip
    board = arena.wait_leaderboard(seeded + 1, ARENA_TIMEOUT_S)
    print(f"leaderboard now counts {board['votes']:,} battles; the demo models (preliminary, "
          "rank -, while they have too few battles):")  # fmt: skip
    rows = board["rows"] + board.get("preliminary", [])
    _print_rows([row for row in rows if row["model"] in DEMO_MODELS])

    url = f"http://{ip}:{ARENA_PORT}/"
    _section("arena UI")
    print(f"battle page {url}  leaderboard {url}leaderboard  (pod IPs are reachable from here)")
    return url
