"""`arenastack demo up|down [--profile local|kwok]`: the stack as a user meets it.

local (the default): a control plane plus a local node that runs pods as real
processes. The chart is installed as a user would install it, so the operator
runs as the chart's Deployment under its ServiceAccount; a RayCluster becomes a
real Ray cluster and answers a job whose tasks run on its workers; two
InferenceDeployments of two tiny models answer chat requests through their vLLM
routers; and the arena service, seeded from the real August 2024 battle counts,
runs a battle between them and shows its leaderboard.

kwok: simulated nodes, where pods run nothing; the chart is installed with no
operator replicas and the operator runs beside it as a local process under the
chart's ServiceAccount (a TokenRequest token), never as cluster admin.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request

from arenastack_cluster.cluster import CHART_DIR, REPO_ROOT, LocalCluster
from arenastack_cluster.demo_evaluation import show_evaluation
from arenastack_cluster.demo_serving import show_arena, show_inference
from arenastack_cluster.processes import ClusterError, Process, free_port, wait_for
from arenastack_cluster.rayjobs import run_job, wait_raycluster_ready

RELEASE = "arenastack"
NAMESPACE = "arenastack-system"
DEMO_NAMESPACE = "demo"
SAMPLE = REPO_ROOT / "operator" / "examples" / "raycluster-sample.yaml"
SAMPLE_NAME = "demo"
PROFILES = ("local", "kwok")

# The job's driver runs on the head; its tasks are placed on the worker nodes in turn,
# and each reports the pod it ran in (a pod's hostname is its name).
JOB = """
import ray, socket
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as On
ray.init()
head = ray.get_runtime_context().get_node_id()
workers = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != head)
@ray.remote
def square(x):
    return x * x, socket.gethostname()
refs = [square.options(scheduling_strategy=On(workers[i % len(workers)], soft=False)).remote(i)
        for i in range(100)]
out = ray.get(refs)
print("sum of squares 0..99 =", sum(v for v, _ in out), "computed by tasks on",
      sorted({h for _, h in out}))
"""


def _section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _http(url: str) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return None, ""


def _our_metrics(url: str) -> str:
    _, text = _http(url)
    # The project's own series, less the histogram buckets and creation stamps.
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("arenastack_") and "_bucket{" not in line and "_created" not in line
    ]
    return "\n".join(lines)


def _install_chart(cluster: LocalCluster, *values: str) -> None:
    _section(f"helm upgrade --install {RELEASE} charts/arenastack -n {NAMESPACE}")
    proc = cluster.helm(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART_DIR),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--wait",
        "--timeout",
        "300s",
        *values,
    )
    print(proc.stdout.strip().split("NOTES:")[0].strip())
    _section("kubectl get crds (the APIs the chart installed)")
    print(cluster.kubectl("get", "crds", "-l", "app.kubernetes.io/part-of=arenastack").stdout)


def _apply_sample(cluster: LocalCluster) -> None:
    cluster.kubectl("create", "namespace", DEMO_NAMESPACE, check=False)
    _section(f"kubectl apply -n {DEMO_NAMESPACE} -f {SAMPLE.relative_to(REPO_ROOT)}")
    print(cluster.kubectl("apply", "-n", DEMO_NAMESPACE, "-f", str(SAMPLE)).stdout.strip())


def _operator_ip(cluster: LocalCluster) -> str:
    """The ready operator pod's address (a rollout leaves the old pod terminating a while)."""
    # By label: once the arena runs in the same namespace, a repeat `demo up` lists it too.
    operator_pods = cluster.kubectl(
        "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator", "-o", "json"
    )  # fmt: skip
    for pod in json.loads(operator_pods.stdout)["items"]:
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in pod["status"].get("conditions") or [])  # fmt: skip
        if ready and not pod["metadata"].get("deletionTimestamp"):
            return pod["status"]["podIP"]
    raise ClusterError(f"no ready operator pod in {NAMESPACE}")


def up_local() -> None:
    cluster = LocalCluster(profile="local", pod_cidr=os.environ.get("ARENASTACK_POD_CIDR"))
    cluster.up()
    _install_chart(cluster)
    operator_ip = _operator_ip(cluster)
    print(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout)

    _apply_sample(cluster)
    print("waiting for the Ray head and workers (about a minute)...", flush=True)
    rc = wait_raycluster_ready(cluster, DEMO_NAMESPACE, SAMPLE_NAME, timeout=420)
    head_ip = rc["status"]["head"]["podIP"]
    _section("kubectl get rayclusters,pods -o wide")
    print(cluster.kubectl("get", "rayclusters,pods", "-n", DEMO_NAMESPACE, "-o", "wide").stdout)

    _section(f"a Ray job through the dashboard's Jobs API (http://{head_ip}:8265)")
    job = run_job(head_ip, f"python -c '{JOB}'", timeout=300)
    answer = [line for line in job.logs.splitlines() if line.startswith("sum of squares")]
    print(f"job {job.submission_id}: {job.status}")
    print(answer[0] if answer else job.logs[-2000:])
    if job.status != "SUCCEEDED":
        raise ClusterError(f"the demo's Ray job ended {job.status}")

    show_inference(cluster, DEMO_NAMESPACE)
    arena_url = show_arena(cluster, RELEASE, NAMESPACE, DEMO_NAMESPACE)
    # Enabling the arena gave the operator its default arena (--arena-url): wait for the
    # restarted pod before the evaluation needs it.
    cluster.kubectl("rollout", "status", f"deployment/{RELEASE}-operator", "-n", NAMESPACE,
                    "--timeout=180s")  # fmt: skip
    show_evaluation(cluster, DEMO_NAMESPACE)
    operator_ip = _operator_ip(cluster)  # the restarted pod's

    _section(f"operator metrics (http://{operator_ip}:8080/metrics, ours only)")
    print(_our_metrics(f"http://{operator_ip}:8080/metrics"))
    _section("Grafana dashboards")
    print(_dashboards_help(cluster))
    _section("next")
    print(
        f"export KUBECONFIG={cluster.kubeconfig}\n"
        f"kubectl get rayclusters -A; kubectl explain raycluster.spec\n"
        f"Ray dashboard: http://{head_ip}:8265 (pod IPs are reachable from this machine)\n"
        f"Arena UI: {arena_url} (leaderboard: {arena_url}leaderboard)\n"
        "make demo-down   # stop everything"
    )


def _dashboards_help(cluster: LocalCluster) -> str:
    """Where the dashboards are and how a Grafana gets them (the demo runs no Grafana)."""
    maps = cluster.kubectl(
        "get", "configmaps", "-n", NAMESPACE, "-l", "grafana_dashboard=1", "-o", "name"
    ).stdout.split()
    files = sorted(p.relative_to(REPO_ROOT) for p in (CHART_DIR / "dashboards").glob("*.json"))
    return (
        f"files: {', '.join(map(str, files))} (written by charts/dashboards, make dashboards)\n"
        f"in the cluster: {', '.join(maps)} in {NAMESPACE}, labelled grafana_dashboard=1, which\n"
        "  kube-prometheus-stack's Grafana sidecar loads by itself; elsewhere: Grafana >\n"
        "  Dashboards > New > Import, upload a file, pick a Prometheus data source that scrapes\n"
        "  the chart's monitors (metrics.serviceMonitor.enabled, metrics.podMonitors.*)."
    )


def up_kwok() -> None:
    cluster = LocalCluster(profile="kwok")
    cluster.up()
    _install_chart(cluster, "--set", "operator.replicas=0")
    _section("the operator, as the chart's ServiceAccount (a local process: kwok pods run nothing)")
    operator = Process(cluster.state, "operator")
    meta_path = cluster.state / "operator.json"
    if not operator.alive():
        kubeconfig = cluster.service_account_kubeconfig(
            NAMESPACE, f"{RELEASE}-operator", cluster.state / "operator.kubeconfig"
        )
        ports = {"metrics": free_port(), "health": free_port()}
        operator.start(
            [
                sys.executable,
                "-m",
                "arenastack_operator",
                f"--kubeconfig={kubeconfig}",
                f"--metrics-port={ports['metrics']}",
                f"--health-port={ports['health']}",
                "--bind-address=127.0.0.1",
            ],
            env={"POD_NAMESPACE": NAMESPACE, "POD_NAME": "demo-operator"},
        )
        meta_path.write_text(json.dumps(ports))
    ports = json.loads(meta_path.read_text())
    health = f"http://127.0.0.1:{ports['health']}"
    wait_for("the operator", lambda: _http(f"{health}/readyz")[0] == 200, 60, operator)
    print(f"operator pid {operator.pid}, logs {operator.log}")
    print(f"GET {health}/healthz -> {_http(f'{health}/healthz')[0]}")
    print(f"GET {health}/readyz  -> {_http(f'{health}/readyz')[0]}")

    _apply_sample(cluster)
    wait_raycluster_ready(cluster, DEMO_NAMESPACE, SAMPLE_NAME, timeout=120)
    _section("kubectl get arenastack -A")
    print(cluster.kubectl("get", "arenastack", "-A").stdout.strip())
    _section(f"operator metrics (http://127.0.0.1:{ports['metrics']}/metrics, ours only)")
    print(_our_metrics(f"http://127.0.0.1:{ports['metrics']}/metrics"))
    _section("next")
    print(
        f"export KUBECONFIG={cluster.kubeconfig}\nkubectl explain raycluster.spec\n"
        "make demo-down   # stop everything"
    )


def down() -> None:
    for profile in PROFILES:
        cluster = LocalCluster(profile=profile)
        Process(cluster.state, "operator").stop()
        if cluster.state.exists():
            cluster.down()


def main(action: str, profile: str) -> int:
    try:
        if action == "down":
            down()
        elif profile == "kwok":
            up_kwok()
        else:
            up_local()
    except ClusterError as err:
        print(f"arenastack demo: {err}", file=sys.stderr)
        return 1
    return 0
