"""Issue 13's node figures: the local node (the upstream kubelet, containerd and runc running
the project's images). The process runner it replaced was measured beside it by this script
at arenastack c16302b, the last commit that had it (its figures stay in the results).

A fresh local-profile cluster (a pod range and state folder of its own) with the chart's
operator installed as a user would. Then:
- the memory (PSS) of the node's own processes at rest, with only the operator's pod;
- `--runs` rounds, one workload after the other, each pod timed from the moment a watch
  sees it created to the moment the watch sees it Ready:
    a RayCluster (the demo's, operator/examples/raycluster-sample.yaml, one worker): head, worker;
    an InferenceDeployment of the tiny model, one replica: engine, router;
    the arena (the chart upgraded with arena.enabled, SQLite on an emptyDir): arena;
  with the last round's workloads still running, the node's memory again; then all of it is
  deleted before the next round.

    .venv/bin/python tests/bench/bench_local_node.py [--runs 3]

Writes tests/bench/results/local_node.{json,md}, keeping the stored process-runner figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from bench_common import REPO, RESULTS, git_sha, load_average, machine, today
from kubernetes import client, config, watch

sys.path.insert(0, str(REPO / "tests" / "e2e"))
from vllm_processes import FAST_FLAGS, SERVED, tiny_model, vllm_env_python

from arenastack_cluster.cluster import LocalCluster
from arenastack_cluster.modelclaim import model_source
from arenastack_cluster.node.settings import Paths
from arenastack_cluster.operatorchart import NAMESPACE as CHART_NAMESPACE
from arenastack_cluster.operatorchart import RELEASE, operator_installed
from arenastack_cluster.processes import poll
from arenastack_operator import constants

NAMESPACE = "bench-node"
RAYCLUSTER = REPO / "operator" / "examples" / "raycluster-sample.yaml"
READY_TIMEOUT_S = 900
SETTLE_S = 20
QUIET_LOAD = 2.5  # the 1-minute load average a round waits for (2 cores)
# kube-proxy and CoreDNS ran the same way beside either node: reported apart.
SHARED = ("kube-proxy", "coredns")
ROLES = ("ray head", "ray worker", "engine", "router", "arena")
ARENA_VALUES = ["--set", "arena.enabled=true", "--set", "arena.persistence.enabled=false"]


# -- what a pod is, and when it was created and became Ready ---------------------------------
def role_of(pod: client.V1Pod) -> str | None:
    labels = pod.metadata.labels or {}
    if labels.get("ray.io/node-type") in ("head", "worker"):
        return f"ray {labels['ray.io/node-type']}"
    component = labels.get(constants.LABEL_COMPONENT)
    return component if component in ("engine", "router", "arena") else None


class PodClock:
    """Host-clock times at which a watch over every namespace saw each pod created and
    first Ready (the API's own timestamps have whole seconds only)."""

    def __init__(self, api: client.CoreV1Api) -> None:
        self.api = api
        self.pods: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            try:
                stream = watch.Watch().stream(self.api.list_pod_for_all_namespaces,
                                              timeout_seconds=300)  # fmt: skip
                for event in stream:
                    self._saw(event["type"], event["object"], time.monotonic())
            except Exception as err:  # a dropped watch: start another
                print(f"watch: {err}; watching again", flush=True)
                time.sleep(1)

    def _saw(self, kind: str, pod: client.V1Pod, now: float) -> None:
        role = role_of(pod)
        if role is None or kind == "DELETED":
            return
        with self.lock:
            entry = self.pods.setdefault(
                pod.metadata.uid, {"name": pod.metadata.name, "role": role, "created": now}
            )
            ready = any(c.type == "Ready" and c.status == "True"
                        for c in (pod.status.conditions or []))  # fmt: skip
            if ready and "ready" not in entry:
                entry["ready"] = now

    def started_after(self, t0: float, role: str) -> dict[str, Any] | None:
        """The first pod of `role` created after t0, once it is Ready."""
        with self.lock:
            found = [p for p in self.pods.values() if p["role"] == role and p["created"] >= t0]
        return found[0] if found and "ready" in found[0] else None


# -- the node's own processes ----------------------------------------------------------------
def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))


def node_processes(cl: LocalCluster) -> dict[str, list[int]]:
    """The pids of the node's own processes, grouped: the kubelet, containerd, the shim of
    each pod and its pause sandbox, and the shared kube-proxy and CoreDNS. (The process
    runner's were its agent and one shim per container: the processes whose argv named
    arenastack_cluster.localnode.agent or .shim.)"""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    groups: dict[str, list[int]] = {name: [cl.procs[name].pid] for name in SHARED}
    socket = str(Paths(cl.state / "localnode").containerd_socket).encode()
    groups["kubelet"] = [cl.procs["kubelet"].pid]
    groups["containerd"] = [cl.procs["containerd"].pid]
    shims = [
        pid for pid in pids if (argv := _argv(pid))
        and argv[0].endswith(b"containerd-shim-runc-v2") and any(socket in a for a in argv)
    ]  # fmt: skip
    groups["shims"] = shims
    groups["pause"] = [
        pid for pid in pids if _parent(pid) in shims and _argv(pid)[:1] == [b"/pause"]
    ]  # fmt: skip
    return groups


def node_memory(cl: LocalCluster) -> dict[str, dict[str, float]]:
    out = {}
    for group, pids in node_processes(cl).items():
        out[group] = {"processes": len(pids), "pss_mib": round(sum(map(_pss_kib, pids)) / 1024, 1)}
    out["node total (without kube-proxy, CoreDNS)"] = {
        "processes": sum(v["processes"] for k, v in out.items() if k not in SHARED),
        "pss_mib": round(sum(v["pss_mib"] for k, v in out.items() if k not in SHARED), 1),
    }
    return out


# -- one round of workloads ------------------------------------------------------------------
def raycluster() -> dict[str, Any]:
    body = yaml.safe_load(RAYCLUSTER.read_text())
    body["spec"]["workerGroupSpecs"][0]["replicas"] = 1
    body["spec"]["workerGroupSpecs"][0]["minReplicas"] = 1
    return body


def inference(cl: LocalCluster, model: Path) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION, "kind": "InferenceDeployment",
        "metadata": {"name": "tiny"},
        "spec": {
            "model": {**model_source(cl, NAMESPACE, model), "servedModelName": SERVED,
                      "dtype": "float32"},
            "gpusPerReplica": 0,
            "engine": {"maxModelLen": 512, "extraArgs": FAST_FLAGS},
        },
    }  # fmt: skip


def timed(clock: PodClock, roles: tuple[str, ...], start: Any) -> dict[str, float]:
    t0 = time.monotonic()
    start()
    out = {}
    for role in roles:
        pod = poll(f"a {role} pod Ready", lambda r=role: clock.started_after(t0, r),
                   READY_TIMEOUT_S, 0.5)  # fmt: skip
        out[role] = round(pod["ready"] - pod["created"], 2)
        print(f"  {role}: {out[role]} s ({pod['name']})", flush=True)
    return out


def no_workload_pods(cl: LocalCluster) -> bool:
    out = cl.kubectl("get", "pods", "-A", "-o", "json")
    return not any(role_of_json(p) for p in json.loads(out.stdout)["items"])


def role_of_json(pod: dict[str, Any]) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return ("ray.io/node-type" in labels
            or labels.get(constants.LABEL_COMPONENT) in ("engine", "router", "arena"))  # fmt: skip


def one_round(cl: LocalCluster, clock: PodClock, model: Path, last: bool) -> dict[str, Any]:
    kubectl_apply = lambda body: cl.kubectl(  # noqa: E731
        "apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(body)
    )
    times = {}
    times |= timed(clock, ("ray head", "ray worker"), lambda: kubectl_apply(raycluster()))
    times |= timed(clock, ("engine", "router"), lambda: kubectl_apply(inference(cl, model)))
    times |= timed(clock, ("arena",), lambda: cl.helm(
        "upgrade", RELEASE, str(REPO / "charts" / "arenastack"), "-n", CHART_NAMESPACE,
        "--reuse-values", *ARENA_VALUES))  # fmt: skip
    memory = None
    if last:
        time.sleep(SETTLE_S)
        memory = node_memory(cl)
    cl.kubectl("delete", "raycluster,inferencedeployment", "--all", "-n", NAMESPACE)
    cl.helm("upgrade", RELEASE, str(REPO / "charts" / "arenastack"), "-n", CHART_NAMESPACE,
            "--reuse-values", "--set", "arena.enabled=false")  # fmt: skip
    poll("the workloads' pods to go", lambda: no_workload_pods(cl), 300, 1)
    return {"ready_s": times, "memory_busy": memory}


def bench_node(runs: int) -> dict[str, Any]:
    state = REPO / ".state" / "bench-kubeletnode"
    cl = LocalCluster(state=state, profile="local", pod_cidr="10.247.10.0/24")
    t0 = time.monotonic()
    cl.up(log=lambda line: print(line, flush=True))
    up_s = round(time.monotonic() - t0, 1)
    try:
        config.load_kube_config(str(cl.kubeconfig))
        clock = PodClock(client.CoreV1Api())
        model = tiny_model(vllm_env_python())
        cl.apply_crds(sorted((REPO / "charts" / "arenastack" / "crds").glob("*.yaml")))
        cl.kubectl("create", "namespace", NAMESPACE)
        with operator_installed(cl, values={"operator.resources.requests.cpu": "0"}):
            time.sleep(SETTLE_S)
            at_rest = node_memory(cl)
            print(f"  at rest: {at_rest}", flush=True)
            rounds = []
            for i in range(runs):
                # The last round's deletions settle first: each round starts on a quiet machine.
                poll("a quiet machine", lambda: load_average() < QUIET_LOAD, 600, 5)
                print(f"-- round {i + 1} (load {load_average()})", flush=True)
                rounds.append({"load_average": load_average(),
                               **one_round(cl, clock, model, last=i == runs - 1)})  # fmt: skip
    finally:
        cl.down(quiet=True)
        # The real node's image store holds every image unpacked (about 14 GB).
        shutil.rmtree(state, ignore_errors=True)
    return {"date": today(), "arenastack": git_sha(), "cluster_up_s": up_s,
            "memory_at_rest": at_rest, "rounds": rounds}  # fmt: skip


def medians(result: dict[str, Any]) -> dict[str, float]:
    return {role: round(statistics.median(r["ready_s"][role] for r in result["rounds"]), 2)
            for role in ROLES}  # fmt: skip


def report(results: dict[str, Any], path: Path) -> None:
    nodes = list(results["nodes"])
    lines = [
        "# The real node beside the process runner",
        "",
        f"{results['machine']}; "
        + ", ".join(
            f"{n} on {results['nodes'][n]['date']} at arenastack "
            f"{results['nodes'][n]['arenastack']}"
            for n in nodes
        )  # fmt: skip
        + f"; {results['runs']} rounds per node, one workload at a time; load average at the "
        f"rounds' starts: "
        + ", ".join(
            f"{n} {[r['load_average'] for r in results['nodes'][n]['rounds']]}" for n in nodes
        ),
        "",
        "Pod creation to Ready (as a watch saw both), median seconds:",
        "",
        "| pod | " + " | ".join(nodes) + " | ratio " + "/".join(nodes) + " |",
        "|---|" + "---:|" * (len(nodes) + 1),
    ]
    meds = {n: medians(results["nodes"][n]) for n in nodes}
    for role in ROLES:
        cells = [f"{meds[n][role]:.1f}" for n in nodes]
        ratio = (f"{meds[nodes[0]][role] / meds[nodes[1]][role]:.2f}"
                 if len(nodes) == 2 and meds[nodes[1]][role] else "")  # fmt: skip
        lines.append(f"| {role} | " + " | ".join(cells) + f" | {ratio} |")
    for title, key in (("at rest (the operator's pod only)", "memory_at_rest"),
                       ("with the last round's pods running", None)):  # fmt: skip
        lines += ["", f"Memory (PSS, MiB) of the node's own processes {title}:", ""]
        for n in nodes:
            node = results["nodes"][n]
            mem = node[key] if key else node["rounds"][-1]["memory_busy"]
            parts = [f"{group} {v['pss_mib']} ({v['processes']} processes)"
                     for group, v in mem.items()]  # fmt: skip
            lines.append(f"- {n}: " + "; ".join(parts))
    lines += [
        "",
        "Cluster up (control plane and node, from `up` to a Ready node): "
        + ", ".join(f"{n} {results['nodes'][n]['cluster_up_s']} s" for n in nodes),
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    stored = args.out / "local_node.json"
    results: dict[str, Any] = json.loads(stored.read_text()) if stored.exists() else {"nodes": {}}
    results.update(machine=machine(), runs=args.runs)
    results["nodes"]["kubelet"] = bench_node(args.runs)
    stored.write_text(json.dumps(results, indent=2))
    report(results, args.out / "local_node.md")
    print((args.out / "local_node.md").read_text())


if __name__ == "__main__":
    main()
