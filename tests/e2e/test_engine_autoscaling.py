"""The autoscaler's decisions from a real vLLM engine's /metrics: a burst of requests scales up,
the lull after it scales back down once the stabilisation window has passed.

The engine is the real CPU build, started with the command the operator puts in a replica's pod;
the readings go through the operator's own scraper (enginemetrics.scrape_all) and decision
(autoscaler.Autoscaler), as in its autoscaling loop.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from openai import AsyncOpenAI
from vllm_processes import SERVED

from arenastack_operator.inferencedeployment import enginemetrics
from arenastack_operator.inferencedeployment.autoscaler import Autoscaler, Decision
from arenastack_operator.inferencedeployment.spec import AutoscalingSpec

pytestmark = pytest.mark.e2e

BURST = 24  # concurrent requests, against max-num-seqs 4
MAX_TOKENS = 96
DOWN_WINDOW_S = 6


def scaling(**fields) -> AutoscalingSpec:
    return AutoscalingSpec.model_validate(
        {"minReplicas": 1, "maxReplicas": 4, "scaleDownStabilizationSeconds": DOWN_WINDOW_S,
         **fields}
    )  # fmt: skip


async def burst(base_url: str, n: int) -> list[str]:
    client = AsyncOpenAI(base_url=base_url + "/v1", api_key="none")
    try:
        answers = await asyncio.gather(*(
            client.completions.create(model=SERVED, prompt=f"def f{i}(x):", max_tokens=MAX_TOKENS,
                                      temperature=0, extra_body={"ignore_eos": True})
            for i in range(n)))  # fmt: skip
    finally:
        await client.close()
    return [a.choices[0].text for a in answers]


async def test_burst_scales_up_and_the_lull_scales_down(engines):
    engine = engines[0]
    urls = {"replica-0": engine.url + "/metrics"}
    by_waiting = Autoscaler(scaling(metric="waitingRequests", target=2))
    by_kv = Autoscaler(scaling(metric="kvCacheUsage", target=0.001))
    by_ttft = Autoscaler(scaling(metric="timeToFirstToken", target=0.001, ttftPercentile=90))
    start = time.monotonic()
    idle = await enginemetrics.scrape_all(urls)
    assert idle["replica-0"].waiting == 0
    for scaler in (by_waiting, by_kv, by_ttft):
        assert scaler.decide(1, idle, time.monotonic() - start).replicas == 1

    # As the operator does: read, decide, apply the count, read again.
    load = asyncio.create_task(burst(engine.url, BURST))
    peak_waiting = peak_kv = 0.0
    replicas = 1
    decisions: list[tuple[float, Decision]] = []
    kv_up = 1
    while not load.done():
        samples = await enginemetrics.scrape_all(urls)
        now = time.monotonic() - start
        reading = samples["replica-0"]
        peak_waiting = max(peak_waiting, reading.waiting)
        peak_kv = max(peak_kv, reading.kv_cache_usage)
        decision = by_waiting.decide(replicas, samples, now)
        decisions.append((now, decision))
        replicas = decision.replicas
        kv_up = max(kv_up, by_kv.decide(1, samples, now).replicas)
        await asyncio.sleep(0.2)
    answers = await load
    assert len(answers) == BURST and all(answers)

    # TTFT: the requests of the burst, read from the histogram's growth since the idle reading.
    after = await enginemetrics.scrape_all(urls)
    assert after["replica-0"].ttft.count - idle["replica-0"].ttft.count == BURST
    ttft_decision = by_ttft.decide(1, after, time.monotonic() - start)

    assert peak_waiting >= 2, "the burst never queued"
    assert peak_kv > 0, "the KV cache never filled"
    assert max(d.replicas for _, d in decisions) == 4  # ceil(1 x waiting / 2), capped at 4
    assert kv_up > 1
    assert ttft_decision.value > 0.001 and ttft_decision.replicas == 4, ttft_decision

    # The lull: idle readings until the count is back at the minimum.
    deadline = time.monotonic() + DOWN_WINDOW_S * 4
    while replicas > 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        samples = await enginemetrics.scrape_all(urls)
        assert samples["replica-0"].waiting == 0 and samples["replica-0"].running == 0
        now = time.monotonic() - start
        decision = by_waiting.decide(replicas, samples, now)
        decisions.append((now, decision))
        replicas = decision.replicas
    assert replicas == 1, [d.reason for _, d in decisions[-5:]]
    # Held at 4 for the whole window after the last recommendation of 4, and only then lowered.
    last_four = max(t for t, d in decisions if d.recommendation >= 4)
    within = [d.replicas for t, d in decisions if last_four <= t < last_four + DOWN_WINDOW_S]
    assert within and all(r == 4 for r in within), within
    lowered = next(t for t, d in decisions if t > last_four and d.replicas < 4)
    assert lowered >= last_four + DOWN_WINDOW_S
