"""Scale to zero on the local node with the real engine and router: an idle deployment drops its
last replica while its router stays up; a request sent to the router at zero replicas is held
there, the operator sees it in the router's own /metrics and starts a replica, the held request
is answered, and after the idle window the deployment is back at zero.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import yaml
from local_operator import get, vllm_fixtures, wait
from openai import OpenAI
from vllm_processes import FAST_FLAGS, SERVED

from arenastack_cluster.cluster import LocalCluster
from arenastack_cluster.modelclaim import model_source
from arenastack_operator import constants
from arenastack_operator.inferencedeployment import names

pytestmark = pytest.mark.e2e

NAMESPACE = "e2e-scale-to-zero"
NAME = "sleepy"
IDLE_S = 15  # scaleToZeroIdleSeconds
INTERVAL_S = 2  # the operator's autoscaling period
ACTIVATION_TIMEOUT_S = 400  # how long the router holds a request at zero
COLD_START_S = 420.0  # an engine's cold start on a busy 2-core machine


cluster, operator_log = vllm_fixtures(NAMESPACE, INTERVAL_S)


def status(cl: LocalCluster) -> dict[str, Any]:
    return (get(cl, NAMESPACE, "inferencedeployment", NAME) or {}).get("status") or {}


def decision(cl: LocalCluster) -> dict[str, Any]:
    return status(cl).get("lastScalingDecision") or {}


def live_pods(cl: LocalCluster, component: str) -> list[dict[str, Any]]:
    selector = f"{names.LABEL_DEPLOYMENT}={NAME},{constants.LABEL_COMPONENT}={component}"
    items = (get(cl, NAMESPACE, "pods", "-l", selector) or {}).get("items") or []
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready_ip(cl: LocalCluster, component: str) -> str | None:
    for pod in live_pods(cl, component):
        if any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod["status"].get("conditions") or []):  # fmt: skip
            return pod["status"]["podIP"]
    return None


def scaled_to_zero(cl: LocalCluster) -> dict[str, Any] | None:
    engine = get(cl, NAMESPACE, "deployment", names.engine_name(NAME)) or {}
    pods = live_pods(cl, "engine")
    # Read last: the operator rewrites its Ready condition only after it sees the pod go, so the
    # status must postdate the pod listing for the two to agree.
    st = status(cl)
    ready = {c["type"]: c for c in st.get("conditions") or []}.get("Ready") or {}
    done = (
        st.get("replicas") == 0
        and (engine.get("spec") or {}).get("replicas") == 0
        and not pods
        and ready.get("reason") == "ScaledToZero"
    )
    return st if done else None


def engine_logs(cl: LocalCluster) -> str:
    return "\n---\n".join(
        cl.kubectl("logs", p["metadata"]["name"], "-n", NAMESPACE, check=False).stdout[-3000:]
        for p in live_pods(cl, "engine") + live_pods(cl, "router")
    )


def test_zero_replicas_wake_on_a_request_at_the_router_and_sleep_again(
    cluster, operator_log, model_dir
):
    cl = cluster
    body = {
        "apiVersion": constants.API_VERSION, "kind": "InferenceDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "model": {**model_source(cl, NAMESPACE, model_dir), "servedModelName": SERVED,
                      "dtype": "float32"},
            "gpusPerReplica": 0,
            "engine": {"maxModelLen": 512, "extraArgs": FAST_FLAGS},
            "router": {"policy": "roundRobin"},
            "autoscaling": {"minReplicas": 0, "maxReplicas": 1, "target": 1,
                            "scaleToZero": True, "scaleToZeroIdleSeconds": IDLE_S,
                            "activationTimeoutSeconds": ACTIVATION_TIMEOUT_S},
        },
    }  # fmt: skip
    cl.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump(body))

    # A new deployment starts with one replica (its model is known to load), then, unused for
    # the idle window, goes to zero while the router stays up.
    try:
        wait("the first replica", lambda: status(cl).get("readyReplicas") == 1, COLD_START_S)
    except AssertionError:
        raise AssertionError(engine_logs(cl)) from None
    first_ready = time.monotonic()
    asleep = wait("scale to zero", lambda: scaled_to_zero(cl), IDLE_S + 60)
    slept_after = time.monotonic() - first_ready
    down = asleep["lastScalingDecision"]
    assert (down["fromReplicas"], down["toReplicas"]) == (1, 0)
    assert "no request for" in down["reason"], down
    router_ip = ready_ip(cl, "router")
    assert router_ip, "the router must stay up at zero replicas"
    assert asleep["endpoint"].endswith(f"{names.router_name(NAME)}.{NAMESPACE}"
                                       f".svc.cluster.local:{names.ROUTER_PORT}/v1")  # fmt: skip

    # A request at zero replicas: the router holds it while the operator starts a replica.
    client = OpenAI(base_url=f"http://{router_ip}:{names.ROUTER_PORT}/v1", api_key="none",
                    max_retries=0, timeout=ACTIVATION_TIMEOUT_S + 60)  # fmt: skip
    outcome: dict[str, Any] = {}

    def ask() -> None:
        started = time.monotonic()
        try:
            answer = client.completions.create(model=SERVED, prompt="import os\n", max_tokens=8,
                                               temperature=0)  # fmt: skip
            outcome["text"] = answer.choices[0].text
        except Exception as e:  # reported by the assertion below
            outcome["error"] = repr(e)
        outcome["seconds"] = time.monotonic() - started

    asked = time.monotonic()
    request = threading.Thread(target=ask, daemon=True)
    request.start()
    up = wait("a scale-up from zero", lambda: decision(cl).get("fromReplicas") == 0
              and decision(cl), 60)  # fmt: skip
    woke_after = time.monotonic() - asked
    assert up["toReplicas"] == 1 and "requests at the router with no replica" in up["reason"]
    demand = status(cl)["observedDemand"]
    assert set(demand) >= {"requests", "withoutReplica", "lastRequestTime", "time"}
    request.join(ACTIVATION_TIMEOUT_S + 90)
    assert outcome.get("text"), (outcome, engine_logs(cl))
    answered_after = outcome["seconds"]
    assert status(cl)["readyReplicas"] == 1

    # Unused again for the idle window: back to zero, the router still up.
    last_request = time.monotonic()
    wait("scale to zero again", lambda: scaled_to_zero(cl)
         and decision(cl).get("fromReplicas") == 1 and decision(cl), IDLE_S + 60)  # fmt: skip
    asleep_again = time.monotonic() - last_request
    assert asleep_again >= IDLE_S - INTERVAL_S
    assert ready_ip(cl, "router")
    events = [
        e["message"]
        for e in (get(cl, NAMESPACE, "events") or {}).get("items") or []
        if e["reason"] == "Scaled"
    ]
    assert any("0 -> 1" in m for m in events) and any("-> 0" in m for m in events), events
    log = operator_log()
    assert "Autoscaling of" not in log, log[-3000:]  # the loop met no exception
    print(
        f"\nscale-to-zero figures: idle->0 {slept_after:.1f}s after ready (window {IDLE_S}s); "
        f"request at zero -> scale-up decision {woke_after:.1f}s; held request answered "
        f"{answered_after:.1f}s; back to 0 {asleep_again:.1f}s after it"
    )
