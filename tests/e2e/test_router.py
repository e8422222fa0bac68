"""vllm-router, configured by the operator's router builder, in front of two real engines: the
official OpenAI client gets chat and completion answers, streamed and not, and both engines
serve their share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI
from vllm_processes import SERVED, Process, counter, start_router

from arenastack_operator.inferencedeployment import workloads
from arenastack_operator.inferencedeployment.spec import InferenceDeploymentSpec
from arenastack_operator.inferencedeployment.workloads import Owner

pytestmark = pytest.mark.e2e

SUCCESS = "vllm:request_success_total"
REQUESTS = 8


@pytest.fixture(scope="module")
def router(
    vllm_python: Path, engines: list[Process], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    spec = InferenceDeploymentSpec.model_validate(
        {"model": {"path": "/m"}, "router": {"policy": "roundRobin", "discovery": "static"}}
    )
    args = workloads.router_args(spec, Owner("tiny", "default", "uid"), [e.url for e in engines])
    process = start_router(vllm_python, args, tmp_path_factory.mktemp("router"))
    try:
        process.wait_http("/health", timeout=60)
        yield process
    finally:
        process.stop()


def client(url: str) -> OpenAI:
    return OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=120)


def test_chat_and_completions_through_the_router(router: Process, engines: list[Process]):
    through = client(router.url)
    direct = client(engines[0].url)
    messages = [{"role": "user", "content": "Say something."}]

    chat = through.chat.completions.create(model=SERVED, messages=messages, max_tokens=12,
                                           temperature=0)  # fmt: skip
    reference = direct.chat.completions.create(model=SERVED, messages=messages, max_tokens=12,
                                               temperature=0)  # fmt: skip
    assert chat.choices[0].message.content
    assert chat.choices[0].message.content == reference.choices[0].message.content
    assert chat.usage is not None and chat.usage.completion_tokens == 12

    stream = through.chat.completions.create(model=SERVED, messages=messages, max_tokens=12,
                                             temperature=0, stream=True,
                                             stream_options={"include_usage": True})  # fmt: skip
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == reference.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12

    completion = through.completions.create(model=SERVED, prompt="import os\n", max_tokens=10,
                                            temperature=0)  # fmt: skip
    assert completion.choices[0].text
    pieces = through.completions.create(model=SERVED, prompt="import os\n", max_tokens=10,
                                        temperature=0, stream=True)  # fmt: skip
    assert "".join(p.choices[0].text for p in pieces) == completion.choices[0].text


def test_round_robin_spreads_requests_over_both_engines(router: Process, engines: list[Process]):
    before = [counter(e.metrics(), SUCCESS) for e in engines]
    through = client(router.url)
    for i in range(REQUESTS):
        answer = through.completions.create(model=SERVED, prompt=f"x = {i}", max_tokens=4)
        assert answer.choices[0].text
    served = [counter(e.metrics(), SUCCESS) - b for e, b in zip(engines, before, strict=True)]
    assert sum(served) == REQUESTS
    assert served == [REQUESTS // 2, REQUESTS // 2], served
