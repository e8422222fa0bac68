"""RayJob with real Ray, arenastack's operator against KubeRay's, on the same real node.

A fresh local-profile cluster (a pod range and state folder of its own). For each operator
in turn, `--runs` times one after the other: apply the example RayJob
(operator/examples/rayjob-sample.yaml: a head-only cluster made for the job, a submitter Job
in the head's image, shutdownAfterJobFinishes with a TTL of 0) and time, from the apply, the
moment the RayJob says SUCCEEDED and Complete, and the moment its RayCluster is gone. Then
the RayJob is deleted and the next run waits for a quiet machine.

- arenastack: the chart installed as a user would (its operator is a pod on the node).
- KubeRay v1.5.0 (the toolchain's `anchors`, built from its Go module): its CRDs replace ours
  and its operator runs as a process in the node's network namespace, with the node's cluster
  DNS in its resolv.conf, because it reaches the Ray dashboard by the head Service's name as
  a pod would. Both at their default settings; the job is the same.

    .venv/bin/python tests/bench/bench_rayjob.py [--runs 3]

Writes tests/bench/results/rayjob.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from bench_common import REPO, RESULTS, git_sha, load_average, machine, today
from kubernetes import client, config

from arenastack_cluster.cluster import LocalCluster, toolchain_bin
from arenastack_cluster.node import profile as localprofile
from arenastack_cluster.node.network import in_node
from arenastack_cluster.operatorchart import operator_installed
from arenastack_cluster.processes import Process, poll

EXAMPLE = REPO / "operator" / "examples" / "rayjob-sample.yaml"
NAMESPACE = "bench-rayjob"
KUBERAY_VERSION = "v1.5.0"
TIMEOUT_S = 600
QUIET_LOAD = 2.5
OPERATORS = ("arenastack", "kuberay")


def _rayjob(api: client.CustomObjectsApi, name: str) -> dict[str, Any] | None:
    try:
        return api.get_namespaced_custom_object("ray.io", "v1", NAMESPACE, "rayjobs", name)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def _cluster_exists(api: client.CustomObjectsApi, name: str) -> bool:
    try:
        api.get_namespaced_custom_object("ray.io", "v1", NAMESPACE, "rayclusters", name)
    except client.ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def one_run(cl: LocalCluster, api: client.CustomObjectsApi, job: dict[str, Any]) -> dict:
    name = job["metadata"]["name"]
    poll("a quiet machine", lambda: load_average() < QUIET_LOAD, 600, 5)
    load = load_average()
    t0 = time.monotonic()
    api.create_namespaced_custom_object("ray.io", "v1", NAMESPACE, "rayjobs", job)
    succeeded_s = gone_s = None
    cluster_name = ""
    while time.monotonic() - t0 < TIMEOUT_S:
        status = (_rayjob(api, name) or {}).get("status") or {}
        cluster_name = status.get("rayClusterName") or cluster_name
        if succeeded_s is None and status.get("jobDeploymentStatus") in ("Complete", "Failed"):
            if status.get("jobStatus") != "SUCCEEDED":
                raise RuntimeError(f"RayJob {name} ended {status}")
            succeeded_s = round(time.monotonic() - t0, 1)
        if succeeded_s is not None and cluster_name and not _cluster_exists(api, cluster_name):
            gone_s = round(time.monotonic() - t0, 1)
            break
        time.sleep(0.25)
    else:
        raise RuntimeError(f"RayJob {name}: not done in {TIMEOUT_S} s")
    cl.kubectl("delete", "rayjob", name, "-n", NAMESPACE, "--wait=true", "--timeout=120s")
    cl.kubectl("delete", "jobs", "--all", "-n", NAMESPACE, "--wait=true", "--timeout=120s",
               check=False)  # fmt: skip
    poll("no pods left", lambda: not cl.kubectl("get", "pods", "-n", NAMESPACE, "-o", "name")
         .stdout.strip(), 180, 2)  # fmt: skip
    print(f"  load {load}: SUCCEEDED at {succeeded_s} s, cluster gone at {gone_s} s", flush=True)
    return {"load_average": load, "succeeded_s": succeeded_s, "cluster_deleted_s": gone_s}


def _start_kuberay(cl: LocalCluster, work: Path) -> Process:
    """KubeRay's operator in the node's network namespace, resolving names with CoreDNS."""
    node = localprofile.node_config(cl)
    resolv = work / "resolv.conf"
    resolv.write_text(f"nameserver {node.bridge_ip}\nsearch svc.cluster.local cluster.local\n"
                      "options ndots:5\n")  # fmt: skip
    binary = cl.bin / "kuberay-operator"
    script = (f"mount --bind {resolv} /etc/resolv.conf && exec {binary} "
              f"--kubeconfig={cl.kubeconfig} --metrics-addr=127.0.0.1:0 "
              "--health-probe-bind-address=127.0.0.1:0 "
              "--leader-election-namespace=default")  # fmt: skip
    proc = Process(work, "kuberay-operator")
    proc.start([*in_node(node), "unshare", "--mount", "--", "sh", "-c", script])
    return proc


def bench(runs: int) -> dict[str, Any]:
    bin_dir = toolchain_bin(part="anchors")
    assert (bin_dir / "kuberay-operator").exists(), "hack/toolchain.sh anchors did not build it"
    state = REPO / ".state" / "bench-rayjob"
    cl = LocalCluster(state=state, profile="local", pod_cidr="10.247.20.0/24")
    cl.up(log=lambda line: print(line, flush=True))
    work = Path(tempfile.mkdtemp(prefix="bench-rayjob-"))
    job, config_map = yaml.safe_load_all(EXAMPLE.read_text())
    results: dict[str, Any] = {}
    try:
        config.load_kube_config(str(cl.kubeconfig))
        api = client.CustomObjectsApi()
        cl.kubectl("create", "namespace", NAMESPACE)
        cl.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(config_map))
        ours = sorted((REPO / "charts" / "arenastack" / "crds").glob("*.yaml"))
        cl.apply_crds(ours)
        with operator_installed(cl, values={"operator.resources.requests.cpu": "0"}):
            print("-- arenastack", flush=True)
            results["arenastack"] = [one_run(cl, api, job) for _ in range(runs)]
        for crd in ("rayclusters.ray.io", "rayjobs.ray.io"):
            cl.kubectl("delete", "crd", crd, "--wait=true")
        cl.apply_crds(sorted((bin_dir.parent / "kuberay-crds").glob("*.yaml")))
        operator = _start_kuberay(cl, work)
        try:
            print("-- kuberay", flush=True)
            results["kuberay"] = [one_run(cl, api, job) for _ in range(runs)]
        finally:
            operator.stop()
    finally:
        cl.down(quiet=True)
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return results


def report(result: dict[str, Any], path: Path) -> None:
    med = result["medians"]
    lines = [
        f"# RayJob with real Ray: arenastack against KubeRay {KUBERAY_VERSION}",
        "",
        f"{result['machine']}; {result['date']}, arenastack {result['arenastack']}; "
        f"{result['runs']} runs each, one job at a time; the example RayJob "
        "(operator/examples/rayjob-sample.yaml: a head-only cluster made for the job, a "
        "submitter Job, shutdownAfterJobFinishes with a TTL of 0). Both operators at their "
        "defaults; ours is the chart's pod, KubeRay's a process in the node's network namespace.",
        "",
        "| seconds from apply (median) | arenastack | KubeRay | ratio |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (("succeeded_s", "to SUCCEEDED and Complete"),
                       ("cluster_deleted_s", "to the cluster deleted")):  # fmt: skip
        ours, theirs = med["arenastack"][key], med["kuberay"][key]
        lines.append(f"| {label} | {ours} | {theirs} | {ours / theirs:.2f} |")
    lines += ["", "Runs (load average at each start):", ""]
    for op in OPERATORS:
        lines.append(f"- {op}: " + "; ".join(
            f"{r['succeeded_s']} / {r['cluster_deleted_s']} s (load {r['load_average']})"
            for r in result["runs_by_operator"][op]))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = bench(args.runs)
    medians = {
        op: {k: statistics.median(r[k] for r in runs[op])
             for k in ("succeeded_s", "cluster_deleted_s")}
        for op in OPERATORS
    }  # fmt: skip
    result = {"machine": machine(), "date": today(), "arenastack": git_sha(),
              "anchor": f"kuberay {KUBERAY_VERSION}", "runs": args.runs,
              "runs_by_operator": runs, "medians": medians}  # fmt: skip
    (args.out / "rayjob.json").write_text(json.dumps(result, indent=2))
    report(result, args.out / "rayjob.md")
    print((args.out / "rayjob.md").read_text())


if __name__ == "__main__":
    main()
