"""`arenastack demo up|down`: the local stack as a user would meet it.

On the kwok profile pods are simulated and run nothing, so the chart is
installed with no operator replicas and the operator runs beside it as a local
process, under the chart's own ServiceAccount (a TokenRequest token), never as
cluster admin.
"""

from __future__ import annotations

import json
import sys
import urllib.request

from arenastack_cluster.cluster import CHART_DIR, REPO_ROOT, LocalCluster
from arenastack_cluster.processes import ClusterError, Process, free_port, wait_for

RELEASE = "arenastack"
NAMESPACE = "arenastack-system"
SAMPLE = REPO_ROOT / "operator" / "examples" / "raycluster-sample.yaml"


def _section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _http(url: str) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return None, ""


def up() -> None:
    cluster = LocalCluster(profile="kwok")
    cluster.up()
    _section(f"helm install {RELEASE} charts/arenastack (namespace {NAMESPACE})")
    proc = cluster.helm(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART_DIR),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--set",
        "operator.replicas=0",
        "--wait",
    )
    print(proc.stdout.strip().split("NOTES:")[0].strip())

    _section("the operator, as the chart's ServiceAccount")
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

    _section("kubectl get crds (the APIs the chart installed)")
    print(
        cluster.kubectl(
            "get", "crds", "-l", "app.kubernetes.io/part-of=arenastack", "-o", "wide"
        ).stdout.strip()
        or cluster.kubectl("get", "crds").stdout.strip()
    )
    _section(f"kubectl apply -f {SAMPLE.relative_to(REPO_ROOT)}")
    print(cluster.kubectl("apply", "-n", "default", "-f", str(SAMPLE)).stdout.strip())
    wait_for(
        "the operator to reconcile the sample",
        lambda: (
            cluster.kubectl(
                "get",
                "raycluster",
                "demo",
                "-n",
                "default",
                "-o",
                "jsonpath={.status.observedGeneration}",
            ).stdout.strip()
            != ""
        ),
        60,
        operator,
    )
    _section("kubectl get arenastack -A")
    print(cluster.kubectl("get", "arenastack", "-A").stdout.strip())

    _section(f"operator metrics (GET http://127.0.0.1:{ports['metrics']}/metrics, ours only)")
    _, text = _http(f"http://127.0.0.1:{ports['metrics']}/metrics")
    print("\n".join(line for line in text.splitlines() if line.startswith("arenastack_"))[:3000])
    _section("next")
    print(
        f"export KUBECONFIG={cluster.kubeconfig}\nkubectl explain raycluster.spec\n"
        "make demo-down   # stop everything"
    )


def down() -> None:
    cluster = LocalCluster(profile="kwok")
    Process(cluster.state, "operator").stop()
    cluster.down()


def main(argv: list[str]) -> int:
    try:
        down() if argv[:1] == ["down"] else up()
    except ClusterError as err:
        print(f"arenastack demo: {err}", file=sys.stderr)
        return 1
    return 0
