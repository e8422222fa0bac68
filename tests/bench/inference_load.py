"""Client-side load for the inference benchmarks: streamed OpenAI chat requests against vLLM
(directly, through vllm-router, or through a Service), timed at the client.

Time to first token is the time until the first streamed chunk that carries a choice (vLLM
sends nothing before the first generated token); tokens are the engine's own count from the
final usage chunk. Every request opens its own connection ("Connection: close"), like many
independent clients: a kube-proxy Service picks its endpoint per connection, so pooled
connections would pin the whole load to whichever replica each connection first reached.

Also runs as a script, so a load can be sent from inside another network namespace (a
ClusterIP Service is reachable only from the node's namespace):

    ip netns exec NS python tests/bench/inference_load.py < job.json   # prints the result JSON
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

CHAT_PATH = "/v1/chat/completions"
REQUEST_TIMEOUT_S = 600.0
Message = dict[str, str]


@dataclass
class Reply:
    ttft_s: float
    completion_tokens: int
    text: str


@dataclass
class LoadResult:
    ttfts_s: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    elapsed_s: float = 0.0

    def add(self, reply: Reply) -> None:
        self.ttfts_s.append(reply.ttft_s)
        self.completion_tokens += reply.completion_tokens

    def merge(self, other: LoadResult) -> None:
        self.ttfts_s += other.ttfts_s
        self.completion_tokens += other.completion_tokens
        self.elapsed_s += other.elapsed_s

    def summary(self) -> dict[str, float]:
        return {
            "ttft_p50_ms": round(percentile(self.ttfts_s, 50) * 1000, 1),
            "ttft_p99_ms": round(percentile(self.ttfts_s, 99) * 1000, 1),
            "tokens_per_s": round(self.completion_tokens / self.elapsed_s, 1),
            "requests": len(self.ttfts_s),
        }

    def to_json(self) -> dict[str, Any]:
        return {"ttfts_s": self.ttfts_s, "completion_tokens": self.completion_tokens,
                "elapsed_s": self.elapsed_s}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadResult:
        return cls(list(data["ttfts_s"]), int(data["completion_tokens"]), float(data["elapsed_s"]))


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 100 samples is the 99th)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


async def chat(
    client: httpx.AsyncClient,
    base_url: str,
    model: str,
    messages: list[Message],
    max_tokens: int,
    *,
    ignore_eos: bool = False,
) -> Reply:
    body = {
        "model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": ignore_eos,
    }  # fmt: skip
    sent = time.perf_counter()
    ttft: float | None = None
    tokens = 0
    text: list[str] = []
    headers = {"Connection": "close"}
    async with client.stream("POST", base_url + CHAT_PATH, json=body, headers=headers) as resp:
        if resp.status_code != 200:
            detail = (await resp.aread()).decode(errors="replace")[:500]
            raise RuntimeError(f"{base_url}{CHAT_PATH} answered {resp.status_code}: {detail}")
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            if chunk.get("choices"):
                if ttft is None:
                    ttft = time.perf_counter() - sent
                text.append(chunk["choices"][0].get("delta", {}).get("content") or "")
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    if ttft is None:
        raise RuntimeError(f"{base_url}{CHAT_PATH} streamed no tokens")
    return Reply(ttft, tokens, "".join(text))


def client() -> httpx.AsyncClient:
    # No pooled connections: see the module docstring.
    return httpx.AsyncClient(
        timeout=REQUEST_TIMEOUT_S, limits=httpx.Limits(max_keepalive_connections=0)
    )


async def fixed_load(
    urls: Sequence[str],
    model: str,
    prompts: Sequence[str],
    concurrency: int,
    max_tokens: int,
) -> LoadResult:
    """Every prompt once, `concurrency` requests in flight at all times (while any are left),
    each answer exactly `max_tokens` long (ignore_eos), request i sent to urls[i % len(urls)]."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(prompts)):
        queue.put_nowait(i)
    result = LoadResult()

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            messages = [{"role": "user", "content": prompts[i]}]
            reply = await chat(http, urls[i % len(urls)], model, messages, max_tokens,
                               ignore_eos=True)  # fmt: skip
            result.add(reply)

    async with client() as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - started
    return result


@dataclass
class Conversation:
    """A chat: its opening messages (the system prompt), then one user message per turn; the
    assistant's answers are appended as they arrive, so the history grows turn by turn."""

    messages: list[Message]
    questions: list[str]


async def conversations(
    url: str,
    model: str,
    chats: Sequence[Conversation],
    concurrency: int,
    max_tokens: int,
    seed: int,
) -> LoadResult:
    """Every chat open at once, like many users at a time: `concurrency` requests in flight;
    whenever one is free, a chat whose previous answer has arrived sends its next turn, picked
    at random (seeded), as users come back after differing pauses. Answers are `max_tokens`
    long."""
    rng = random.Random(seed)
    ready = list(range(len(chats)))
    turns = [0] * len(chats)
    wake = asyncio.Event()
    in_flight = 0
    result = LoadResult()

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal in_flight
        while True:
            while not ready:
                if in_flight == 0:
                    return
                wake.clear()
                await wake.wait()
            n = ready.pop(rng.randrange(len(ready)))
            chat_ = chats[n]
            chat_.messages.append({"role": "user", "content": chat_.questions[turns[n]]})
            in_flight += 1
            try:
                reply = await chat(http, url, model, chat_.messages, max_tokens, ignore_eos=True)
            finally:
                in_flight -= 1
            chat_.messages.append({"role": "assistant", "content": reply.text})
            result.add(reply)
            turns[n] += 1
            if turns[n] < len(chat_.questions):
                ready.append(n)
            wake.set()

    async with client() as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - started
    return result


def run_job(job: dict[str, Any]) -> LoadResult:
    return asyncio.run(
        fixed_load(job["urls"], job["model"], job["prompts"], job["concurrency"],
                   job["max_tokens"])
    )  # fmt: skip


if __name__ == "__main__":
    json.dump(run_job(json.load(sys.stdin)).to_json(), sys.stdout)
