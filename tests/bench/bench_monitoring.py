"""The operator's /metrics with many RayClusters: series exported and the time to serve a scrape,
arenastack against KubeRay's operator.

For each operator, on a fresh instance of the same local control plane (simulated nodes, as in
bench_raycluster_scale.py): the series on /metrics at rest with no cluster, then N RayClusters
created and all ready, then 30 sequential GETs of /metrics: median and p95 latency, bytes and
series. KubeRay runs at its defaults (no per-cluster metrics) and with --enable-metrics, its
per-cluster metrics, the setting that matches ours (arenastack exports per-cluster series
always).

    python tests/bench/bench_monitoring.py                  # 1,000 clusters, 3 runs each
    python tests/bench/bench_monitoring.py --clusters 50 --runs 1 --out /tmp/x   # a quick look

Writes tests/bench/results/monitoring_operator.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from pathlib import Path

from bench_common import REPO, RESULTS, git_sha, load_average, machine, today
from bench_raycluster_scale import (
    CPU_NODES,
    KUBERAY_VERSION,
    NAMESPACES,
    api_clients,
    create_all,
    install_crds,
    start_kuberay,
    start_ours,
    wait_ready,
)

from arenastack_cluster.cluster import LocalCluster, toolchain_bin
from arenastack_cluster.processes import Process, free_port, wait_for

SCRAPES = 30
# Which operator, and its flags.
SETTINGS = {
    "arenastack": (),
    "kuberay-default": (),
    "kuberay-metrics": ("--enable-metrics",),
}


def series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def scrape(url: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = resp.read().decode()
    return time.perf_counter() - t0, body


def run_one(setting: str, n: int, work: Path) -> dict:
    state = work / f"{setting}-{n}"
    cl = LocalCluster(state=state)
    cl.up(cpu_nodes=CPU_NODES, gpu_nodes=0, log=lambda _: None)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        install_crds(cl, "kuberay" if setting.startswith("kuberay") else "arenastack")
        for i in range(NAMESPACES):
            cl.kubectl("create", "namespace", f"bench-{i}")
        if setting == "arenastack":
            op = start_ours(cl, state, metrics_port=port)
        else:
            op = start_kuberay(cl, state, metrics_port=port, extra=SETTINGS[setting])
        wait_for("the operator's /metrics", lambda: _answers(url), 60, op)
        time.sleep(5)  # both sides alike: past start-up
        at_rest = series(scrape(url)[1])
        api, core = api_clients(cl)
        t0 = time.monotonic()
        create_all(api, n)
        wait_ready(api, core, setting, n, t0, op)
        time.sleep(10)  # trailing status updates settle
        load = load_average()
        timings, body = [], ""
        for _ in range(SCRAPES):
            seconds, body = scrape(url)
            timings.append(seconds)
        op.stop()
        timings.sort()
        return {
            "series_at_rest": at_rest,
            "series": series(body),
            "bytes": len(body.encode()),
            "scrape_ms_median": round(statistics.median(timings) * 1000, 2),
            "scrape_ms_p95": round(timings[int(0.95 * (len(timings) - 1))] * 1000, 2),
            "load_average": load,
        }
    finally:
        for name in ("arenastack-operator", "kuberay-operator"):
            Process(state, name).stop()
        cl.down(quiet=True)


def _answers(url: str) -> bool:
    try:
        scrape(url)
    except OSError:
        return False
    return True


def median_of(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    toolchain_bin(build=True, part="controlplane")
    toolchain_bin(build=True, part="anchors")
    work = REPO / ".state" / "bench-monitoring"
    runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    for i in range(args.runs):  # interleaved, so a slow spell of the machine hits all alike
        for setting in SETTINGS:
            print(f"== {setting}: {args.clusters} clusters, run {i + 1}", flush=True)
            runs[setting].append(run_one(setting, args.clusters, work))
    write(args.out, args.clusters, runs)


KEYS = ("series_at_rest", "series", "bytes", "scrape_ms_median", "scrape_ms_p95")


def write(out: Path, n: int, runs: dict[str, list[dict]]) -> None:
    medians = {s: {k: median_of(r, k) for k in KEYS} for s, r in runs.items()}
    ratios = {
        anchor: {
            k: round(medians["arenastack"][k] / medians[anchor][k], 3)
            for k in KEYS
            if medians[anchor][k]
        }
        for anchor in ("kuberay-default", "kuberay-metrics")
    }
    result = {
        "benchmark": "monitoring-operator",
        "date": today(),
        "machine": machine(),
        "versions": {"arenastack": git_sha(), "anchor": f"kuberay {KUBERAY_VERSION}"},
        "params": {"clusters": n, "scrapes_per_run": SCRAPES, "simulated_nodes": CPU_NODES},
        "medians": medians,
        "ratios": ratios,
        "ratio_meaning": "arenastack / anchor setting; lower is cheaper",
        "runs": runs,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "monitoring_operator.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# The operator's /metrics with {n:,} RayClusters: arenastack vs KubeRay "
        + KUBERAY_VERSION,
        "",
        f"{result['date']}, {result['machine']}, arenastack {result['versions']['arenastack']}. "
        f"Each operator on a fresh local control plane ({CPU_NODES} kwok nodes); {n:,} clusters "
        f"of 1 head + 3 workers, all ready, then {SCRAPES} sequential GETs of /metrics. Medians "
        f"of {len(runs['arenastack'])} runs. KubeRay at its defaults exports no per-cluster "
        "series; with --enable-metrics it does, as arenastack always does.",
        "",
        "| figure | arenastack | KubeRay default | ratio | KubeRay --enable-metrics | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in KEYS:
        d, m = medians["kuberay-default"][k], medians["kuberay-metrics"][k]
        lines.append(
            f"| {k} | {medians['arenastack'][k]:,} | {d:,} | "
            f"{ratios['kuberay-default'].get(k, '-')} | {m:,} | "
            f"{ratios['kuberay-metrics'].get(k, '-')} |"
        )
    loads = {s: [r["load_average"] for r in rs] for s, rs in runs.items()}
    lines += ["", f"Load average (1 min) before the scrapes: {loads}."]
    (out / "monitoring_operator.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
