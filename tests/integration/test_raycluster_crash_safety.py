"""Crash safety of the RayCluster reconciler: the operator is SIGKILLed at seeded-random moments
while 200 clusters reconcile (some scaled up, some down, some deleted on the way) and restarted
each time.

A watch on the Ray pods (pod_count_watch.py) checks at every event that no group ever holds more
live pods than its desired count (the head group exactly one); at the end every cluster is ready
with exactly its desired pods and nothing is left without a live owner. The seed is printed and
can be replayed with ARENASTACK_CRASH_SEED.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_helpers import wait_for
from kubernetes import client, config
from operator_runner import OperatorProcess, OperatorRunner
from pod_count_watch import GroupKey, PodCountWatch

from arenastack_cluster.nodes import node_manifest
from arenastack_operator import constants
from arenastack_operator.raycluster import names

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("ARENASTACK_CRASH_SEED", "20261128"))
CLUSTERS = 200
NAMESPACES = 4
KILLS = 5
KILL_AFTER_S = (0.5, 4.0)  # after the restarted operator has become leader
SCALED_UP = 30
SCALED_DOWN = 30
DELETED = 10
# Room for 200 small clusters beside whatever the session's other tests left running.
EXTRA_NODES = 4
CONVERGE_TIMEOUT_S = 180.0
# A create the killed process sent just before dying has landed by then.
AFTER_KILL_S = 1.0
# Lease timing between the integration tests' fast one (a restart waits out the dead leader's
# lease) and production's: a slow apiserver under 800 pods must not cost the operator its lease
# (it exits when it does; the test then restarts it, as its Deployment would).
LEASE_ARGS = ("--lease-duration=8", "--renew-deadline=6", "--retry-period=1")

KIND = constants.RAYCLUSTER
SMALL = {"limits": {"cpu": "100m", "memory": "128Mi"}}


@dataclass
class Group:
    name: str
    replicas: int
    min_replicas: int = 0
    max_replicas: int = 4
    hosts: int = 1
    suspend: bool = False

    @property
    def desired(self) -> int:
        # Written out here, independently of the operator's model.
        if self.suspend:
            return 0
        return min(max(self.replicas, self.min_replicas), self.max_replicas) * self.hosts

    def manifest(self) -> dict[str, Any]:
        return {
            "groupName": self.name, "replicas": self.replicas, "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas, "numOfHosts": self.hosts, "suspend": self.suspend,
            "template": {"spec": {"containers": [
                {"name": "ray-worker", "image": "rayproject/ray:2.60.0", "resources": SMALL}]}},
        }  # fmt: skip


@dataclass
class Spec:
    namespace: str
    name: str
    autoscaling: bool
    groups: list[Group] = field(default_factory=list)

    def manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{KIND.group}/{KIND.version}", "kind": KIND.kind,
            "metadata": {"name": self.name},
            "spec": {
                "rayVersion": "2.60.0", "enableInTreeAutoscaling": self.autoscaling,
                "headGroupSpec": {"template": {"spec": {"containers": [
                    {"name": "ray-head", "image": "rayproject/ray:2.60.0", "resources": SMALL}]}}},
                "workerGroupSpecs": [g.manifest() for g in self.groups],
            },
        }  # fmt: skip

    def key(self, group: str) -> GroupKey:
        return (self.namespace, self.name, group)

    def desired(self) -> dict[str, int]:
        want = {names.HEAD_GROUP: 1}
        want.update({g.name: g.desired for g in self.groups if g.desired})
        return want


def make_spec(namespace: str, i: int) -> Spec:
    """Four shapes: plain, a multi-host second group, a suspended second group, replicas below
    minReplicas; every eighth cluster with in-tree autoscaling (and so its RBAC)."""
    # (The schema refuses suspended groups under autoscaling; shape 2 never meets i % 8 == 0.)
    spec = Spec(namespace, f"crash-{i:03d}", autoscaling=i % 8 == 0)
    shape = i % 4
    if shape == 0:
        spec.groups = [Group("cpu", 2)]
    elif shape == 1:
        spec.groups = [Group("cpu", 1), Group("multi", 1, max_replicas=2, hosts=2)]
    elif shape == 2:
        spec.groups = [Group("cpu", 2), Group("idle", 2, suspend=True)]
    else:
        spec.groups = [Group("cpu", 0, min_replicas=1)]
    return spec


@dataclass
class Kill:
    after_s: float
    live_pods: int
    desired_pods: int


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def admin(cluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def spaces(cluster, namespace: str) -> Iterator[list[str]]:
    extra = [f"{namespace}-{i}" for i in range(1, NAMESPACES)]
    for ns in extra:
        cluster.kubectl("create", "namespace", ns)
    yield [namespace, *extra]
    for ns in extra:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def extra_nodes(cluster, namespace: str) -> Iterator[None]:
    nodes = [node_manifest(f"kwok-crash-{namespace}-{i}", 0) for i in range(EXTRA_NODES)]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(nodes))
    yield
    for node in nodes:
        cluster.kubectl("delete", "node", node["metadata"]["name"], "--wait=false", check=False)


@pytest.fixture
def watch(admin: client.ApiClient, spaces: list[str]) -> Iterator[PodCountWatch]:
    watch = PodCountWatch(admin, spaces)
    watch.start()
    assert watch.synced.wait(30) and watch.error is None, watch.error
    yield watch
    watch.stop()


# -- the test -----------------------------------------------------------------------------------


@pytest.fixture
def operator_runner(
    cluster, crds: list[str], operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[OperatorRunner]:
    runner = OperatorRunner(operator_kubeconfig, tmp_path, extra_args=LEASE_ARGS)
    runner.clear_lease(cluster)
    yield runner
    runner.stop_all()


def test_sigkilled_operator_never_overshoots_and_converges(
    cluster, operator_runner: OperatorRunner, admin, spaces, extra_nodes, watch: PodCountWatch
) -> None:
    rng = random.Random(SEED)
    print(f"crash-safety seed {SEED} (replay with ARENASTACK_CRASH_SEED={SEED})")
    custom = client.CustomObjectsApi(admin)
    specs = [make_spec(spaces[i % NAMESPACES], i) for i in range(CLUSTERS)]

    for spec in specs:
        for group, count in spec.desired().items():
            watch.allow(spec.key(group), count)

    operator = _start_leader(operator_runner)
    started = time.monotonic()
    for spec in specs:
        custom.create_namespaced_custom_object(
            KIND.group, KIND.version, spec.namespace, KIND.plural, spec.manifest()
        )

    plain = [s for s in specs if not s.autoscaling]
    changes = rng.sample(plain, SCALED_UP + SCALED_DOWN + DELETED)
    scale_up = changes[:SCALED_UP]
    scale_down = changes[SCALED_UP : SCALED_UP + SCALED_DOWN]
    deleted = changes[SCALED_UP + SCALED_DOWN :]
    kills: list[Kill] = []
    for k in range(KILLS):
        wait = rng.uniform(*KILL_AFTER_S)
        time.sleep(wait)
        kills.append(Kill(wait, sum(watch.live_counts().values()), _total(specs)))
        operator.kill()
        time.sleep(AFTER_KILL_S)
        if k == 1:
            # While no operator runs: the restarted one meets only the new specs, so the bound
            # tightens as soon as the surplus is gone.
            for spec in scale_down:
                _scale(custom, spec, 0, watch)
        operator = _start_leader(operator_runner)
        if k == 2:
            # While an operator runs (just restarted): growth is allowed before it is asked for.
            for spec in scale_up:
                _scale(custom, spec, 4, watch)
        if k == 3:
            for spec in deleted:
                custom.delete_namespaced_custom_object(
                    KIND.group, KIND.version, spec.namespace, KIND.plural, spec.name
                )
    last_start = time.monotonic()
    remaining = [s for s in specs if s not in deleted]

    behind: list[str] = []
    exits = 0

    def converged_now() -> bool:
        nonlocal operator, exits
        if operator.proc.poll() is not None:  # lost its lease on a slow apiserver
            exits += 1
            operator = _start_leader(operator_runner)
        behind[:] = _unconverged(custom, watch, remaining)
        return not behind

    try:
        wait_for("every cluster ready with exactly its desired pods", converged_now,
                 timeout=CONVERGE_TIMEOUT_S)  # fmt: skip
    except AssertionError:
        raise AssertionError(
            f"{len(behind)} clusters not converged, e.g. {behind[:5]}; operator restarted "
            f"{exits} times after exiting; its log:\n{operator.output()[-3000:]}"
        ) from None
    converged = time.monotonic()
    wait_for(
        "the deleted clusters' children collected",
        lambda: not _children(cluster, spaces, {s.name for s in deleted}) or None,
    )
    orphans = _orphans(cluster, custom, spaces)

    head_peak = max(v for k, v in watch.peak.items() if k[2] == names.HEAD_GROUP)
    print(
        f"kills: {len(kills)} at "
        + ", ".join(f"+{k.after_s:.1f}s ({k.live_pods}/{k.desired_pods} pods)" for k in kills)
        + f"; converged {converged - last_start:.1f}s after the last restart "
        f"(operator exits on its own meanwhile: {exits}) "
        f"({converged - started:.1f}s in all); {watch.events} pod events, {watch.lists} lists; "
        f"{len(watch.pods_seen)} pods created in all for {_total(remaining)} desired at the end; "
        f"peak head pods per cluster {head_peak}; peak live pods per group never above its bound "
        f"({len(watch.peak)} groups)"
    )
    assert watch.error is None, watch.error
    assert watch.violations == [], watch.violations[:20]
    assert orphans == [], orphans[:20]
    # The kills hit a reconcile in progress, not a cluster at rest.
    assert any(k.live_pods < k.desired_pods for k in kills), kills
    _assert_quiet_logs(operator_runner.processes, operator)


# -- helpers ------------------------------------------------------------------------------------


def _start_leader(runner: OperatorRunner) -> OperatorProcess:
    process = runner.start()
    process.wait_role("leader", timeout=60)
    return process


def _total(specs: list[Spec]) -> int:
    return sum(sum(s.desired().values()) for s in specs)


def _scale(
    custom: client.CustomObjectsApi, spec: Spec, replicas: int, watch: PodCountWatch
) -> None:
    group = spec.groups[0]
    old = group.desired
    group.replicas = replicas
    group.min_replicas = min(group.min_replicas, replicas)
    if group.desired > old:
        watch.allow(spec.key(group.name), group.desired)
    custom.patch_namespaced_custom_object(
        KIND.group, KIND.version, spec.namespace, KIND.plural, spec.name,
        [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": replicas},
         {"op": "replace", "path": "/spec/workerGroupSpecs/0/minReplicas",
          "value": group.min_replicas}],
        _content_type="application/json-patch+json",
    )  # fmt: skip
    if group.desired < old:
        watch.lower(spec.key(group.name), group.desired)


def _unconverged(
    custom: client.CustomObjectsApi, watch: PodCountWatch, specs: list[Spec]
) -> list[str]:
    """Clusters not yet ready with exactly the desired live pods, all ready, in status."""
    bodies = {}
    for ns in {s.namespace for s in specs}:
        listed = custom.list_namespaced_custom_object(KIND.group, KIND.version, ns, KIND.plural)
        bodies.update({(ns, b["metadata"]["name"]): b for b in listed["items"]})
    counts = watch.live_counts()
    behind = []
    for spec in specs:
        body = bodies.get((spec.namespace, spec.name)) or {}
        status = body.get("status") or {}
        pods = {k[2]: v for k, v in counts.items() if k[:2] == (spec.namespace, spec.name) and v}
        want = spec.desired()
        workers = sum(v for g, v in want.items() if g != names.HEAD_GROUP)
        if (
            pods != want
            or status.get("state") != "ready"
            or status.get("observedGeneration") != body["metadata"]["generation"]
            or status.get("readyWorkerReplicas") != workers
            or status.get("desiredWorkerReplicas") != workers
        ):
            behind.append(f"{spec.name}: pods {pods} want {want}, status {status.get('state')}")
    return behind


def _labelled(cluster, spaces: list[str], kinds: str) -> list[dict[str, Any]]:
    items = []
    for ns in spaces:
        out = cluster.kubectl("get", kinds, "-n", ns, "-l", names.LABEL_CLUSTER, "-o", "json")
        items += json.loads(out.stdout)["items"]
    return items


def _children(cluster, spaces: list[str], clusters: set[str]) -> list[str]:
    return [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in _labelled(cluster, spaces, "pods,services,roles,rolebindings,serviceaccounts")
        if o["metadata"]["labels"][names.LABEL_CLUSTER] in clusters
    ]


def _orphans(cluster, custom: client.CustomObjectsApi, spaces: list[str]) -> list[str]:
    """Children whose controller is not a RayCluster that exists now, and duplicate heads."""
    live = set()
    for ns in spaces:
        listed = custom.list_namespaced_custom_object(KIND.group, KIND.version, ns, KIND.plural)
        live |= {b["metadata"]["uid"] for b in listed["items"]}
    found = []
    heads: dict[tuple[str, str], int] = {}
    for obj in _labelled(cluster, spaces, "pods,services,roles,rolebindings,serviceaccounts"):
        meta = obj["metadata"]
        owners = [r for r in meta.get("ownerReferences") or [] if r.get("controller")]
        if len(owners) != 1 or owners[0]["uid"] not in live:
            found.append(f"{obj['kind']} {meta['namespace']}/{meta['name']}: owners {owners}")
        if obj["kind"] == "Pod" and meta["labels"].get(names.LABEL_NODE_TYPE) == names.NODE_HEAD:
            at = (meta["namespace"], meta["labels"][names.LABEL_CLUSTER])
            heads[at] = heads.get(at, 0) + 1
    found += [f"{ns}/{name}: {n} head pods" for (ns, name), n in heads.items() if n != 1]
    return found


def _assert_quiet_logs(processes: list[OperatorProcess], last: OperatorProcess) -> None:
    """No reconciler error in any process, killed or not; the last one still running."""
    assert last.proc.poll() is None, last.output()[-4000:]
    for process in processes:
        errors = [
            r
            for r in process.logs()
            if r.get("level") == "ERROR" and r.get("logger", "").endswith("raycluster")
        ]
        assert errors == [], (process.identity, errors[:5])
