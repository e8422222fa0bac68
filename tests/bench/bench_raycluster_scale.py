"""RayCluster at scale: arenastack's reconciler against KubeRay's operator.

For each operator, on a fresh instance of the same local control plane (same
binaries, same simulated nodes, so neither inherits the other's objects):
create N RayClusters (1 head + 3 workers each) over 10 namespaces at 100
creations/s, and measure the time until every cluster reports `state: ready`
with all its pods Running, plus the operator's peak RSS and CPU seconds. Then,
with nothing changing, count the write requests (POST, PUT, PATCH, DELETE) the
apiserver served for the operator's resources during a minute at rest, from the
apiserver's own request counters (the issue's "quiet at rest").

    python tests/bench/bench_raycluster_scale.py            # 100 and 1,000 clusters
    python tests/bench/bench_raycluster_scale.py --sizes 50 # a quick look

Writes tests/bench/results/raycluster_scale.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench_common import REPO, RESULTS, git_sha, machine, today
from kubernetes import client, config

from arenastack_cluster.cluster import LocalCluster, toolchain_bin
from arenastack_cluster.processes import Process, free_port, wait_for

NAMESPACES = 10
RATE_PER_S = 100
WORKERS = 3
TIMEOUT_S = 1800
# kwok nodes hold 110 pods each; enough nodes for 1,000 clusters x 4 pods.
CPU_NODES = 48
KUBERAY_VERSION = "v1.5.0"
CLK_TCK = os.sysconf("SC_CLK_TCK")
REST_SECONDS = 60
# What the operators write; kwok's node heartbeats (leases, nodes) are left out.
OPERATOR_RESOURCES = (
    "rayclusters", "pods", "services", "events", "serviceaccounts", "roles", "rolebindings",
)  # fmt: skip
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")


def raycluster(name: str) -> dict:
    def template(role: str) -> dict:
        return {
            "spec": {
                "containers": [
                    {
                        "name": f"ray-{role}",
                        "image": "rayproject/ray:2.60.0",
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"cpu": "1", "memory": "1Gi"},
                        },
                    }
                ]
            }
        }

    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name},
        "spec": {
            "rayVersion": "2.60.0",
            "headGroupSpec": {"rayStartParams": {}, "template": template("head")},
            "workerGroupSpecs": [
                {
                    "groupName": "workers",
                    "replicas": WORKERS,
                    "minReplicas": WORKERS,
                    "maxReplicas": WORKERS,
                    "rayStartParams": {},
                    "template": template("worker"),
                }
            ],
        },
    }


@dataclass
class ProcessSampler:
    """Peak RSS (VmHWM) and CPU seconds of one process, read from /proc."""

    pid: int
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _read(self) -> None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)
            stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            self.cpu_s = (int(stat[11]) + int(stat[12])) / CLK_TCK
        except (OSError, ValueError, IndexError):
            pass

    def run(self) -> None:
        while not self._stop.wait(1.0):
            self._read()

    def stop(self) -> None:
        self._read()
        self._stop.set()


def start_ours(cl: LocalCluster, state: Path, metrics_port: int | None = None) -> Process:
    proc = Process(state, "arenastack-operator")
    proc.start(
        [
            sys.executable,
            "-m",
            "arenastack_operator",
            f"--kubeconfig={cl.kubeconfig}",
            f"--health-port={free_port()}",
            f"--metrics-port={metrics_port or free_port()}",
            "--bind-address=127.0.0.1",
            "--lease-namespace=default",
            "--log-level=WARNING",
        ]
    )
    return proc


def start_kuberay(
    cl: LocalCluster, state: Path, metrics_port: int | None = None, extra: tuple[str, ...] = ()
) -> Process:
    proc = Process(state, "kuberay-operator")
    proc.start(
        [
            str(cl.bin / "kuberay-operator"),
            f"--kubeconfig={cl.kubeconfig}",
            f"--metrics-addr=127.0.0.1:{metrics_port or free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{free_port()}",
            "--leader-election-namespace=default",
            *extra,
        ]
    )
    return proc


def install_crds(cl: LocalCluster, which: str) -> None:
    if which == "kuberay":
        files = sorted((cl.bin.parent / "kuberay-crds").glob("*.yaml"))
    else:
        files = [REPO / "charts" / "arenastack" / "crds" / "rayclusters.ray.io.yaml"]
    cl.apply_crds(files)


def create_all(api: client.CustomObjectsApi, n: int) -> float:
    """Create n clusters round-robin over the namespaces at RATE_PER_S; returns seconds."""
    t0 = time.monotonic()

    def create(i: int) -> None:
        # Pace by the schedule, not by completion, so the rate holds under latency.
        delay = t0 + i / RATE_PER_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for attempt in range(5):
            try:
                api.create_namespaced_custom_object(
                    "ray.io",
                    "v1",
                    f"bench-{i % NAMESPACES}",
                    "rayclusters",
                    raycluster(f"rc-{i:04d}"),
                )
                return
            except client.ApiException as err:
                if err.status not in (429, 500, 503, 504) or attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(create, range(n)))
    return time.monotonic() - t0


def _progress(api: client.CustomObjectsApi, core: client.CoreV1Api) -> tuple[int, int]:
    clusters = api.list_cluster_custom_object("ray.io", "v1", "rayclusters")["items"]
    ready = sum(1 for c in clusters if (c.get("status") or {}).get("state") == "ready")
    pods = core.list_pod_for_all_namespaces(
        label_selector="ray.io/cluster",
        field_selector="status.phase=Running",
        _preload_content=False,
    )
    running = len(json.loads(pods.data)["items"])
    return ready, running


def api_clients(cl: LocalCluster) -> tuple[client.CustomObjectsApi, client.CoreV1Api]:
    api_client = config.new_client_from_config(str(cl.kubeconfig))
    api_client.configuration.connection_pool_maxsize = 32
    return client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)


def wait_ready(
    api: client.CustomObjectsApi,
    core: client.CoreV1Api,
    which: str,
    n: int,
    t0: float,
    op: Process,
) -> None:
    """Until all n clusters are ready with every pod Running, printing the progress."""

    def done() -> bool:
        ready, running = _progress(api, core)
        print(
            f"  {which} n={n}: {ready}/{n} ready, {running}/{n * (1 + WORKERS)} "
            f"pods running, {time.monotonic() - t0:.0f} s",
            flush=True,
        )
        return ready == n and running == n * (1 + WORKERS)

    wait_for(f"{n} ready clusters ({which})", done, TIMEOUT_S, op)


def _writes(cl: LocalCluster) -> int:
    """Write requests the apiserver has served for the operators' resources so far."""
    text = cl.kubectl("get", "--raw", "/metrics").stdout
    total = 0
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(
            part.split("=", 1) for part in line[line.index("{") + 1 : line.rindex("}")].split(",")
        )
        if (
            labels.get("verb", "").strip('"') in WRITE_VERBS
            and labels.get("resource", "").strip('"') in OPERATOR_RESOURCES
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def _rest_writes(cl: LocalCluster, seconds: int) -> int:
    """Writes during `seconds` of rest, after a settling pause for trailing status updates."""
    time.sleep(10)
    before = _writes(cl)
    time.sleep(seconds)
    return _writes(cl) - before


def run_one(which: str, n: int, work: Path, rest_s: int) -> dict:
    state = work / f"{which}-{n}"
    cl = LocalCluster(state=state)
    cl.up(cpu_nodes=CPU_NODES, gpu_nodes=0, log=lambda _: None)
    try:
        install_crds(cl, which)
        for i in range(NAMESPACES):
            cl.kubectl("create", "namespace", f"bench-{i}")
        op = start_kuberay(cl, state) if which == "kuberay" else start_ours(cl, state)
        sampler = ProcessSampler(op.pid)
        threading.Thread(target=sampler.run, daemon=True).start()
        time.sleep(5)  # let the operator finish starting (both sides alike)
        api, core = api_clients(cl)

        t0 = time.monotonic()
        create_s = create_all(api, n)
        wait_ready(api, core, which, n, t0, op)
        seconds = time.monotonic() - t0
        sampler.stop()
        peak_rss, cpu_s = sampler.peak_rss_mb, sampler.cpu_s
        rest = _rest_writes(cl, rest_s) if rest_s else None
        op.stop()
        return {
            "seconds": round(seconds, 1),
            "create_seconds": round(create_s, 1),
            "peak_rss_mb": round(peak_rss, 1),
            "cpu_seconds": round(cpu_s, 1),
            "writes_at_rest": rest,
        }
    finally:
        for name in ("arenastack-operator", "kuberay-operator"):
            Process(state, name).stop()
        cl.down(quiet=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument(
        "--rest-seconds", type=int, default=REST_SECONDS, help="0 skips the at-rest count"
    )
    args = parser.parse_args()
    toolchain_bin(build=True, part="controlplane")
    toolchain_bin(build=True, part="anchors")
    work = REPO / ".state" / "bench-raycluster"
    runs = []
    for n in args.sizes:
        entry = {"clusters": n}
        for which in ("kuberay", "arenastack"):
            print(f"== {which}: {n} clusters", flush=True)
            entry[which] = run_one(which, n, work, args.rest_seconds)
        entry["ratios"] = {
            k: round(entry["arenastack"][k] / entry["kuberay"][k], 3)
            for k in ("seconds", "peak_rss_mb", "cpu_seconds")
            if entry["kuberay"][k]
        }
        runs.append(entry)
    write(runs, args.rest_seconds)


def write(runs: list[dict], rest_s: int) -> None:
    top = runs[-1]
    result = {
        "benchmark": "raycluster-scale",
        "date": today(),
        "machine": machine(),
        "versions": {
            "arenastack": git_sha(),
            "anchor": f"kuberay {KUBERAY_VERSION}",
            "kubernetes": "v1.34.4 (local control plane, kwok nodes)",
        },
        "params": {
            "clusters": top["clusters"],
            "pods_per_cluster": 1 + WORKERS,
            "namespaces": NAMESPACES,
            "creations_per_s": RATE_PER_S,
            "simulated_nodes": CPU_NODES,
        },
        "ours": top["arenastack"],
        "anchor": top["kuberay"],
        "ratios": top["ratios"],
        "ratio_meaning": "ours / anchor; costs, lower is better",
        "targets": {"seconds": "<= 1.0", "peak_rss_mb": "<= 2.0", "writes_at_rest": "0"},
        "rest_seconds": rest_s,
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "raycluster_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# RayCluster scale: arenastack vs KubeRay " + KUBERAY_VERSION,
        "",
        f"{result['date']}, {result['machine']}, arenastack {result['versions']['arenastack']}. "
        f"Each operator on a fresh instance of the same local control plane (Kubernetes "
        f"v1.34.4, {CPU_NODES} kwok nodes); clusters of 1 head + {WORKERS} workers over "
        f"{NAMESPACES} namespaces, created at {RATE_PER_S}/s. Time = first creation until every "
        "cluster is `ready` with all pods Running. Ratio = ours / KubeRay (lower is better). "
        f"writes_at_rest = write requests for the operators' resources that the apiserver served "
        f"during {rest_s} s with nothing changing (its `apiserver_request_total`).",
        "",
        "| clusters | what | arenastack | KubeRay | ratio | target |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for r in runs:
        for key, target in (
            ("seconds", "<= 1.0"), ("peak_rss_mb", "<= 2.0"), ("cpu_seconds", ""),
            ("writes_at_rest", "ours 0"),
        ):  # fmt: skip
            lines.append(
                f"| {r['clusters']:,} | {key} | {r['arenastack'][key]} | "
                f"{r['kuberay'][key]} | {r['ratios'].get(key, '-')} | {target} |"
            )
    if len(runs) > 1:
        a, b = runs[0], runs[-1]
        lines += [
            "",
            f"Growth from {a['clusters']:,} to {b['clusters']:,} clusters: arenastack "
            f"x{b['arenastack']['seconds'] / a['arenastack']['seconds']:.1f}, KubeRay "
            f"x{b['kuberay']['seconds'] / a['kuberay']['seconds']:.1f} in time.",
        ]
    (RESULTS / "raycluster_scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
