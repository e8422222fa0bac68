"""End to end on the local node: the real operator turns an InferenceDeployment into engine and
router pods that run as real processes (the engine pod's command is the one a GPU node runs; the
local node maps the vLLM image to the CPU build). The OpenAI client gets answers through the
router the operator configured, streamed and not, and a second deployment of another model
answers through its own; a LoRA adapter added to the spec becomes
servable without a restart; a burst makes the operator scale up from the engine's /metrics and
the lull after it scale back down. Meanwhile a real Prometheus finds the engines, the routers
and the operator through the apiserver, as the chart's monitors would have it, and every query
of the serving dashboard then has data.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import Any

import local_operator
import pytest
import yaml
from local_operator import vllm_fixtures
from monitoring import Prometheus, pod_job, prometheus
from openai import AsyncOpenAI, OpenAI
from vllm_processes import FAST_FLAGS, SERVED, tiny_lora, tiny_model

from arenastack_cluster.cluster import LocalCluster
from arenastack_cluster.modelclaim import engine_path, model_source
from arenastack_cluster.operatorchart import NAMESPACE as OPERATOR_NAMESPACE
from arenastack_cluster.processes import poll
from arenastack_dashboards import serving as serving_dashboard
from arenastack_dashboards.common import render
from arenastack_operator import constants
from arenastack_operator.inferencedeployment import names

pytestmark = pytest.mark.e2e

NAMESPACE = "e2e-inference"
READY_TIMEOUT_S = 600.0  # an engine's cold start on a busy 2-core machine
ADAPTER = "tiny-lora"
OTHER = "tiny-b"
SCALE_DOWN_WINDOW_S = 15
BURST = 16
AUTOSCALE_INTERVAL_S = 3
# The router counts errors only once one happens, and none should here.
NO_ERRORS_HERE = re.compile(r"vllm_router_request_errors_total")


def _chat(client: OpenAI, model: str) -> str | None:
    try:
        chat = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Say something."}], max_tokens=8,
            temperature=0)  # fmt: skip
    except Exception:  # the router may not have discovered the replica yet
        return None
    return chat.choices[0].message.content


cluster, operator_log = vllm_fixtures(NAMESPACE, AUTOSCALE_INTERVAL_S)


@pytest.fixture
def scraped(cluster: LocalCluster, operator_log, tmp_path) -> Any:
    """Prometheus scraping what the chart's PodMonitors and the operator's ServiceMonitor would."""
    deployment = {"inferencedeployment": names.LABEL_DEPLOYMENT}
    jobs = [
        pod_job("engines", cluster.kubeconfig, [NAMESPACE],
                {names.LABEL_DEPLOYMENT: ".+", constants.LABEL_COMPONENT: "engine"},
                names.ENGINE_PORT_NAME, deployment),
        pod_job("routers", cluster.kubeconfig, [NAMESPACE],
                {names.LABEL_DEPLOYMENT: ".+", constants.LABEL_COMPONENT: "router"},
                names.ROUTER_METRICS_PORT_NAME, deployment),
        pod_job("operator", cluster.kubeconfig, [OPERATOR_NAMESPACE],
                {constants.LABEL_COMPONENT: "operator"}, "metrics", {}, honor_labels=True),
    ]  # fmt: skip
    with prometheus(tmp_path, jobs) as prom:
        yield prom


def get(cl: LocalCluster, *args: str) -> Any:
    return local_operator.get(cl, NAMESPACE, *args)


def pods(cl: LocalCluster, component: str, name: str = "tiny") -> list[dict[str, Any]]:
    selector = f"{names.LABEL_DEPLOYMENT}={name},{constants.LABEL_COMPONENT}={component}"
    return (get(cl, "pods", "-l", selector) or {}).get("items") or []


def ready_ip(cl: LocalCluster, component: str, name: str = "tiny") -> str | None:
    for pod in pods(cl, component, name):
        conditions = pod["status"].get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return pod["status"]["podIP"]
    return None


def test_deployment_serves_scales_and_loads_adapters(
    cluster, operator_log, vllm_python, model_dir, scraped: Prometheus
):
    cl = cluster
    body = {
        "apiVersion": constants.API_VERSION, "kind": "InferenceDeployment",
        "metadata": {"name": "tiny"},
        "spec": {
            "model": {**model_source(cl, NAMESPACE, model_dir),
                      "servedModelName": SERVED, "dtype": "float32"},
            "gpusPerReplica": 0,
            # Two sequences per batch: a modest burst queues requests.
            "engine": {"maxModelLen": 512, "maxNumSeqs": 2, "extraArgs": FAST_FLAGS},
            "router": {"policy": "roundRobin"},
            "lora": {"adapters": []},
            "autoscaling": {"minReplicas": 1, "maxReplicas": 2, "metric": "waitingRequests",
                            "target": 1, "scaleDownStabilizationSeconds": SCALE_DOWN_WINDOW_S},
        },
    }  # fmt: skip
    # A second deployment of another model (other weights, its own router and policy).
    other_model = tiny_model(vllm_python, seed=1)
    other = {
        "apiVersion": constants.API_VERSION, "kind": "InferenceDeployment",
        "metadata": {"name": "other"},
        "spec": {
            "model": {**model_source(cl, NAMESPACE, other_model),
                      "servedModelName": OTHER, "dtype": "float32"},
            "gpusPerReplica": 0,
            "engine": {"maxModelLen": 512, "extraArgs": FAST_FLAGS},
            # The router's own flags pass through (it would not start with a flag it lacks).
            "router": {"policy": "cacheAware",
                       "extraArgs": ["--balance-abs-threshold", "8", "--cache-threshold=0.5"]},
        },
    }  # fmt: skip
    cl.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all([body, other]))

    def serving(name: str = "tiny") -> dict[str, Any] | None:
        status = (get(cl, "inferencedeployment", name) or {}).get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        ok = status.get("readyReplicas") == 1 and conditions.get("Ready", {}).get("status")
        return status if ok == "True" else None

    try:
        status = poll("the deployment to serve", serving, READY_TIMEOUT_S)
    except AssertionError:
        logs = [cl.kubectl("logs", p["metadata"]["name"], "-n", NAMESPACE, check=False).stdout
                for p in pods(cl, "engine") + pods(cl, "router")]  # fmt: skip
        raise AssertionError("\n---\n".join(log[-3000:] for log in logs)) from None
    assert status["servedModel"] == SERVED
    assert status["endpoint"] == f"http://tiny-router.{NAMESPACE}.svc.cluster.local:8000/v1"

    engine_ip = ready_ip(cl, "engine")
    router_ip = poll("a ready router", lambda: ready_ip(cl, "router"), 60)
    messages = [{"role": "user", "content": "Say something."}]
    direct = OpenAI(base_url=f"http://{engine_ip}:{names.ENGINE_PORT}/v1", api_key="none")
    reference = direct.chat.completions.create(model=SERVED, messages=messages, max_tokens=8,
                                               temperature=0)  # fmt: skip
    routed = OpenAI(base_url=f"http://{router_ip}:{names.ROUTER_PORT}/v1", api_key="none",
                    max_retries=0)  # fmt: skip

    content = poll("an answer through the router", lambda: _chat(routed, SERVED), 90)
    assert content == reference.choices[0].message.content
    streamed = routed.chat.completions.create(model=SERVED, messages=messages, max_tokens=8,
                                              temperature=0, stream=True)  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == content
    completion = routed.completions.create(model=SERVED, prompt="import os\n", max_tokens=8,
                                           temperature=0)  # fmt: skip
    pieces = routed.completions.create(model=SERVED, prompt="import os\n", max_tokens=8,
                                       temperature=0, stream=True)  # fmt: skip
    assert completion.choices[0].text
    assert "".join(p.choices[0].text for p in pieces) == completion.choices[0].text

    # The other model answers through its own router, differently.
    poll("the other deployment to serve", lambda: serving("other"), READY_TIMEOUT_S)
    other_router = poll("its router", lambda: ready_ip(cl, "router", "other"), 60)
    other_client = OpenAI(base_url=f"http://{other_router}:{names.ROUTER_PORT}/v1",
                          api_key="none", max_retries=0)  # fmt: skip
    other_chat = poll("an answer from the other model", lambda: _chat(other_client, OTHER), 90)
    assert other_chat and other_chat != content
    assert [m.id for m in other_client.models.list().data] == [OTHER]
    cl.kubectl("delete", "inferencedeployment", "other", "-n", NAMESPACE)  # frees its core

    # A LoRA adapter added to the spec is loaded into the running replica.
    (engine_pod,) = pods(cl, "engine")
    adapter = tiny_lora(vllm_python, model_dir)
    source = engine_path(adapter)
    body["spec"]["lora"]["adapters"] = [{"name": ADAPTER, "source": source}]
    cl.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump(body))

    def adapter_listed() -> bool:
        return ADAPTER in {m.id for m in direct.models.list().data}

    poll("the adapter on the replica", adapter_listed, 60)
    tuned = routed.completions.create(model=ADAPTER, prompt="import os\n", max_tokens=8,
                                      temperature=0)  # fmt: skip
    assert tuned.choices[0].text and tuned.choices[0].text != completion.choices[0].text
    (same_pod,) = [p for p in pods(cl, "engine") if p["status"].get("podIP") == engine_ip]
    assert same_pod["metadata"]["uid"] == engine_pod["metadata"]["uid"]
    assert same_pod["status"]["containerStatuses"][0]["restartCount"] == 0

    # A load through the router: the operator reads the replica's /metrics and scales up...
    # Waves of BURST requests until the decision appears: on a quiet machine one wave can end
    # between two of the operator's reads of the waiting-requests gauge.
    async_client = AsyncOpenAI(base_url=f"http://{router_ip}:{names.ROUTER_PORT}/v1",
                               api_key="none", max_retries=0, timeout=900)  # fmt: skip
    waves: list[list[str]] = []
    loaded = threading.Event()

    async def burst() -> list[str]:
        answers = await asyncio.gather(*(
            async_client.completions.create(model=SERVED, prompt=f"x{i} =", max_tokens=64,
                                            temperature=0, extra_body={"ignore_eos": True})
            for i in range(BURST)))  # fmt: skip
        return [a.choices[0].text for a in answers]

    async def waves_until_scaled() -> None:
        while not loaded.is_set():
            waves.append(await burst())

    def decision() -> dict[str, Any]:
        status = (get(cl, "inferencedeployment", "tiny") or {}).get("status") or {}
        return status.get("lastScalingDecision") or {}

    wave_thread = threading.Thread(target=asyncio.run, args=(waves_until_scaled(),), daemon=True)
    wave_thread.start()
    try:
        up = poll("a scale-up decision", lambda: decision().get("toReplicas") == 2 and decision(),
                  60)  # fmt: skip
    finally:
        loaded.set()
        wave_thread.join(300)
    assert waves and all(len(w) == BURST and all(w) for w in waves)
    assert up["fromReplicas"] == 1 and "waitingRequests" in up["reason"]
    deployment = get(cl, "deployment", "tiny-engine")
    assert deployment["spec"]["replicas"] == 2
    # ...and once the load is gone and the window has passed, back down.
    down = poll("a scale-down decision", lambda: decision().get("toReplicas") == 1 and decision(),
                SCALE_DOWN_WINDOW_S + 60)  # fmt: skip
    assert down["fromReplicas"] == 2
    poll("one engine replica", lambda: get(cl, "deployment", "tiny-engine")["spec"]["replicas"]
         == 1, 30)  # fmt: skip
    events = [e["reason"] for e in (get(cl, "events") or {}).get("items") or []]
    assert "Scaled" in events and "LoraAdaptersSynced" in events
    # Requests, tokens, an adapter and both scaling decisions: every serving panel has data.
    empty = scraped.empty_panels(render(serving_dashboard.build()), skip=NO_ERRORS_HERE)
    assert not empty, "panels without data:\n" + "\n".join(empty)

    # An engine-setting change replaces the replica under a steady, bounded load (one request
    # in flight) with no failed request: the new one serves before the old one leaves.
    (old,) = [p for p in pods(cl, "engine") if not p["metadata"].get("deletionTimestamp")]
    outcomes: list[str] = []
    stop = threading.Event()

    def steady() -> None:
        steady_client = OpenAI(base_url=f"http://{router_ip}:{names.ROUTER_PORT}/v1",
                               api_key="none", max_retries=0, timeout=120)  # fmt: skip
        while not stop.is_set():
            try:
                steady_client.completions.create(model=SERVED, prompt="a", max_tokens=4)
                outcomes.append("ok")
            except Exception as e:  # every failure counts against the rollout
                outcomes.append(repr(e))
            time.sleep(0.2)

    load = threading.Thread(target=steady, daemon=True)
    load.start()
    body["spec"]["engine"]["maxNumSeqs"] = 3
    cl.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump(body))

    def replaced() -> bool:
        live = pods(cl, "engine")
        return (
            len(live) == 1
            and live[0]["metadata"]["uid"] != old["metadata"]["uid"]
            and bool(ready_ip(cl, "engine"))
        )

    try:
        poll("the replica replaced", replaced, READY_TIMEOUT_S)
        time.sleep(3)  # requests keep flowing to the new replica
    finally:
        stop.set()
        load.join(150)
    (new,) = pods(cl, "engine")
    assert "--max-num-seqs 3" in " ".join(new["spec"]["containers"][0]["args"])
    failures = [o for o in outcomes if o != "ok"]
    assert outcomes.count("ok") > 10 and not failures, failures[:5]
