"""The operator process against the real apiserver, under the chart's ServiceAccount RBAC:
leader election between two replicas, takeover, SIGTERM, probes, metrics and JSON logs."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from operator_runner import LEASE_DURATION_S, RETRY_PERIOD_S, OperatorProcess, OperatorRunner

from arenastack_cluster.cluster import CHART_DIR
from arenastack_cluster.processes import poll
from arenastack_operator import constants

pytestmark = pytest.mark.integration

RAYCLUSTER = """
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: {name}
spec:
  rayVersion: "2.60.0"
  headGroupSpec:
    rayStartParams: {{}}
    template:
      spec:
        containers:
          - name: ray-head
            image: rayproject/ray:2.60.0
  workerGroupSpecs:
    - groupName: cpu
      replicas: {replicas}
      minReplicas: 0
      maxReplicas: 4
      rayStartParams: {{}}
      template:
        spec:
          containers:
            - name: ray-worker
              image: rayproject/ray:2.60.0
"""


# The smallest valid InferenceDeployment: only what the schema requires.
INFERENCEDEPLOYMENT = """
apiVersion: arenastack.io/v1alpha1
kind: InferenceDeployment
metadata:
  name: {name}
spec:
  model:
    huggingFace:
      repoId: facebook/opt-125m
"""


def lease_spec(cluster, runner: OperatorRunner) -> dict:
    proc = cluster.kubectl(
        "get", "lease", runner.lease_name, "-n", runner.lease_namespace, "-o", "json", check=False
    )
    return json.loads(proc.stdout)["spec"] if proc.returncode == 0 else {}


def lease_holder(cluster, runner: OperatorRunner) -> str | None:
    return lease_spec(cluster, runner).get("holderIdentity")


def micro_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait_for(what: str, check, timeout: float, interval: float = 0.1):
    return poll(what, check, timeout, interval)


def apply_raycluster(cluster, namespace: str, name: str, replicas: int) -> None:
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=RAYCLUSTER.format(name=name, replicas=replicas)
    )


def raycluster(cluster, namespace: str, name: str) -> dict:
    return json.loads(
        cluster.kubectl("get", "raycluster", name, "-n", namespace, "-o", "json").stdout
    )


def observed(
    cluster, namespace: str, name: str, generation: int, kind: str = "raycluster"
) -> dict | None:
    obj = json.loads(cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)
    return obj if obj.get("status", {}).get("observedGeneration") == generation else None


def reporters(cluster, namespace: str, name: str) -> set[str]:
    """Which operator replicas posted Kubernetes events about the object."""
    events = json.loads(
        cluster.kubectl(
            "get", "events", "-n", namespace, "-o", "json",
            f"--field-selector=involvedObject.name={name}",
        ).stdout
    )["items"]  # fmt: skip
    return {
        e["reportingInstance"]
        for e in events
        if e.get("reportingComponent") == constants.OPERATOR_NAME and e.get("reportingInstance")
    }


def reconcile_count(op: OperatorProcess, kind: str = "RayCluster") -> float:
    """Handler runs of any result: a standby must have none at all."""
    return op.metric("arenastack_operator_reconciles_total", kind=kind) or 0.0


def assert_json_logs(*ops: OperatorProcess) -> None:
    for op in ops:
        records = op.logs()
        assert records, f"{op.identity} logged nothing"
        unparsed = [r["unparsed"] for r in records if "unparsed" in r]
        assert not unparsed, f"{op.identity}: non-JSON output lines: {unparsed[:5]}"
        for r in records:
            assert {"timestamp", "level", "logger", "message"} <= r.keys(), r


def test_one_leader_reconciles_and_a_standby_takes_over(cluster, namespace, operator_runner):
    first = operator_runner.start()
    first.wait_role("leader")
    second = operator_runner.start()
    status, ready = second.readyz()
    assert (status, ready["role"], ready["leader"]) == (200, "standby", first.identity)
    assert lease_holder(cluster, operator_runner) == first.identity

    apply_raycluster(cluster, namespace, "rc", replicas=1)
    wait_for("the leader to reconcile", lambda: observed(cluster, namespace, "rc", 1), timeout=30)
    assert reporters(cluster, namespace, "rc") == {first.identity}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=INFERENCEDEPLOYMENT.format(name="m"))
    wait_for(
        "the leader to reconcile an InferenceDeployment",
        lambda: observed(cluster, namespace, "m", 1, kind="inferencedeployment"),
        timeout=30,
    )

    # Only the leader reconciled: the standby has no handler runs at all.
    assert reconcile_count(first) >= 1
    assert reconcile_count(second) == 0
    assert reconcile_count(first, "InferenceDeployment") >= 1
    assert reconcile_count(second, "InferenceDeployment") == 0
    assert first.metric("arenastack_operator_leader") == 1
    assert second.metric("arenastack_operator_leader") == 0
    # Exactly one RayCluster is managed, whatever phase the reconciler has reached.
    wait_for(
        "the managed-objects gauge",
        lambda: first.metric("arenastack_operator_managed_objects", kind="RayCluster") == 1,
        timeout=10,
    )
    metrics = first.metrics()
    for series in (
        "arenastack_operator_reconcile_duration_seconds_bucket",
        "arenastack_operator_build_info",
        "process_resident_memory_bytes",
    ):
        assert series in metrics, series

    # The leader dies without releasing: the standby waits out the lease, then leads.
    first.kill()
    last_renewal = micro_time(lease_spec(cluster, operator_runner)["renewTime"])
    wait_for(
        "the standby to take the lease",
        lambda: lease_holder(cluster, operator_runner) == second.identity,
        timeout=LEASE_DURATION_S * 3,
    )
    taken = micro_time(lease_spec(cluster, operator_runner)["acquireTime"])
    # Never before the dead leader's lease expired (the standby times expiry from when it saw
    # that last renewal, which is after it was written), and not much later than one jittered
    # retry after. Both times come from this machine's clock.
    waited = (taken - last_renewal).total_seconds()
    print(f"takeover {waited:.2f}s after the dead leader's last renewal")
    assert LEASE_DURATION_S <= waited <= LEASE_DURATION_S + 1.2 * RETRY_PERIOD_S + 2, waited
    second.wait_role("leader")

    # The new leader picks up existing objects and handles new generations.
    apply_raycluster(cluster, namespace, "rc", replicas=2)
    wait_for(
        "the new leader to reconcile generation 2",
        lambda: observed(cluster, namespace, "rc", 2),
        timeout=30,
    )
    assert second.identity in reporters(cluster, namespace, "rc")
    assert reconcile_count(second) >= 1
    assert_json_logs(first, second)


def test_sigterm_exits_zero_quickly_and_releases_the_lease(cluster, operator_runner):
    leader = operator_runner.start()
    leader.wait_role("leader")
    standby = operator_runner.start()
    assert standby.readyz()[1]["role"] == "standby"

    stopped_at = time.monotonic()
    assert leader.terminate(timeout=15) == 0
    exit_s = time.monotonic() - stopped_at
    # Released, not expired: the standby leads well before the lease duration.
    wait_for(
        "the standby to take the released lease",
        lambda: lease_holder(cluster, operator_runner) == standby.identity,
        timeout=LEASE_DURATION_S,
    )
    handover_s = time.monotonic() - stopped_at
    print(f"SIGTERM: exit after {exit_s:.2f}s, lease handed over after {handover_s:.2f}s")
    assert handover_s < exit_s + LEASE_DURATION_S / 2, (exit_s, handover_s)
    leader.wait_for_log(lambda r: r.get("message") == "Released the lease", timeout=1)

    # Stopped as soon as it became leader, while kopf is still starting up.
    standby.wait_role("leader")
    assert standby.terminate(timeout=15) == 0
    assert lease_holder(cluster, operator_runner) is None
    for op in (leader, standby):
        # Clean: kopf finished by itself, nothing had to be abandoned after the grace period.
        assert not [r for r in op.logs() if "abandoning" in r.get("message", "")]
        op.wait_for_log(lambda r: r.get("message") == "Stopped" and r["exit_status"] == 0, 1)
    assert_json_logs(leader, standby)


def test_probes_standby_stop_and_losing_the_lease(cluster, operator_runner):
    leader = operator_runner.start()
    leader.wait_role("leader")
    standby = operator_runner.start()
    for op, role in ((leader, "leader"), (standby, "standby")):
        status, live = op.healthz()
        assert (status, live["status"], live["identity"]) == (200, "ok", op.identity)
        status, ready = op.readyz()
        assert (status, ready["role"], ready["leader"]) == (200, role, leader.identity)

    # A standby holds nothing: it just stops.
    assert standby.terminate(timeout=10) == 0
    standby.wait_for_log(lambda r: r.get("message") == "Stopped while on standby", timeout=1)
    assert leader.readyz()[1]["role"] == "leader"

    # Someone else takes the lease (as a partitioned leader would find on its return): the
    # leader stops reconciling and exits non-zero so that its Deployment restarts it.
    cluster.kubectl(
        "patch", "lease", operator_runner.lease_name, "-n", operator_runner.lease_namespace,
        "--type=merge", "-p", json.dumps({"spec": {"holderIdentity": "intruder"}}),
    )  # fmt: skip
    assert leader.wait_exit(timeout=LEASE_DURATION_S * 2) == constants.EXIT_LEADERSHIP_LOST
    leader.wait_for_log(lambda r: r.get("message", "").startswith("Lost the lease"), timeout=1)
    assert lease_holder(cluster, operator_runner) == "intruder"
    assert_json_logs(leader, standby)


def test_namespaced_operator_needs_only_its_role(cluster, crds, namespace, tmp_path):
    """Installed with watchAllNamespaces=false the chart grants Roles in one namespace and no
    ClusterRole; the operator then watches, reconciles and elects there, and nowhere else."""
    cluster.helm(
        "install", "r", str(CHART_DIR), "-n", namespace,
        "--set", "operator.watchAllNamespaces=false", "--set", "operator.replicas=0", "--wait",
    )  # fmt: skip
    kubeconfig = cluster.service_account_kubeconfig(
        namespace, "r-arenastack-operator", tmp_path / "kubeconfig"
    )
    runner = OperatorRunner(kubeconfig, tmp_path)
    assert runner.lease_namespace == namespace
    other = f"{namespace}-other"
    cluster.kubectl("create", "namespace", other)
    try:
        op = runner.start(namespaces=[namespace])
        op.wait_role("leader")
        apply_raycluster(cluster, other, "outside", replicas=0)
        apply_raycluster(cluster, namespace, "inside", replicas=0)
        wait_for(
            "the watched namespace's object",
            lambda: observed(cluster, namespace, "inside", 1),
            timeout=30,
        )
        time.sleep(1)  # time for a wrongly watched object to be reconciled too
        assert "status" not in raycluster(cluster, other, "outside")
        assert lease_holder(cluster, runner) == op.identity
        # Namespaced, kopf must not need (or warn about) cluster-wide permissions.
        problems = [r for r in op.logs() if r.get("level") in ("WARNING", "ERROR")]
        assert not problems, problems
        assert runner.processes[0].terminate() == 0
    finally:
        runner.stop_all()
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)
