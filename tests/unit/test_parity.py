"""The differential tier's normalising and comparing (tests/parity.py), apart from clusters."""

from __future__ import annotations

import copy

import parity
import pytest


def _pod(name: str, flags: str, created_by: str, **env: str) -> dict:
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "uid": name,
            "labels": {
                "ray.io/cluster": "c",
                "ray.io/group": "workers",
                parity.CREATED_BY: created_by,
            },
        },
        "spec": {
            "nodeName": f"node-{name}",
            "containers": [
                {
                    "name": "ray-worker",
                    "command": ["/bin/bash", "-lc", "--"],
                    "args": [f"ulimit -n 65536; ray start {flags}"],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "volumeMounts": [
                        {"name": f"kube-api-access-{name[-5:]}", "mountPath": "/var/run"}
                    ],
                }
            ],
            "volumes": [{"name": f"kube-api-access-{name[-5:]}", "projected": {}}],
        },
    }


def test_ray_start_flags_are_a_set_and_values_may_be_separate_words() -> None:
    flags, shell = parity.ray_start(
        [], ["ulimit -n 65536; ray start --block --port 6379 --head && x"]
    )
    assert flags == ["--block", "--head", "--port=6379"]
    assert shell == "ulimit -n 65536; ray start <flags>&& x"
    assert parity.ray_start(["sleep"], ["1"]) is None


def test_runs_and_operators_that_differ_only_in_what_is_random_compare_equal() -> None:
    ours = parity.snapshot(
        [_pod("c-workers-abcde", "--block --address=h:6379", "arenastack", A="1")], []
    )
    theirs = parity.snapshot(
        [_pod("c-workers-vwxyz", "--address=h:6379 --block", "kuberay", A="1")], []
    )
    assert ours == theirs
    assert ours["Pod/c/workers"]["count"] == 1


def test_a_flag_an_env_var_and_a_missing_object_are_each_one_difference() -> None:
    a = parity.snapshot([_pod("c-workers-abcde", "--block --num-cpus=1", "x", A="1")], [])
    b = copy.deepcopy(a)
    b["Pod/c/workers"]["spec"]["containers"]["ray-worker"]["rayStartFlags"] = ["--block"]
    b["Pod/c/workers"]["spec"]["containers"]["ray-worker"]["env"]["B"] = {"value": "2"}
    b["Service/c-head-svc"] = {"spec": {}}
    found = parity.differences("s.yaml", a, b)
    paths = [d.path for d in found]
    assert paths == [
        "Pod/c/workers:spec.containers.ray-worker.env.B.value",
        "Pod/c/workers:spec.containers.ray-worker.rayStartFlags",
        "Service/c-head-svc:",
    ]
    assert found[-1].ours == parity.MISSING


def test_a_rayjobs_random_cluster_name_is_folded_everywhere() -> None:
    job = {"kind": "RayJob", "metadata": {"name": "j"}, "status": {"rayClusterName": "j-k2x9q"}}
    svc = {
        "kind": "Service",
        "metadata": {"name": "j-k2x9q-head-svc"},
        "spec": {"selector": {"ray.io/cluster": "j-k2x9q"}},
    }
    snap = parity.snapshot([svc], [job])
    assert snap["Service/j-<generated>-head-svc"]["spec"]["selector"] == {
        "ray.io/cluster": "j-<generated>"
    }


def test_the_allow_list_needs_reasons_and_reports_what_it_no_longer_covers(tmp_path) -> None:
    found = [parity.Difference("ray-cluster.tls.yaml", "Pod/c/headgroup:spec", 1, 2)]
    rules = [
        parity.Allowed("Pod/*:spec", "why", samples=("ray-cluster.tls.yaml",)),
        parity.Allowed("RayJob/*", "timing", may_vanish=True),
        parity.Allowed("Service/*", "stale"),
    ]
    left, stale = parity.unexplained(found, rules)
    assert left == [] and [r.reason for r in stale] == ["stale"]
    path = tmp_path / "allowed.yaml"
    path.write_text("- path: 'Pod/*'\n")
    with pytest.raises(ValueError, match="no reason"):
        parity.load_allowed(path)


def test_node_ports_in_a_clusters_endpoints_are_the_apiservers_choice() -> None:
    ours = parity.owner_status("RayCluster", {"status": {"endpoints": {
        "dashboard": "30123", "client": "10001", "named": "client"}}})  # fmt: skip
    theirs = parity.owner_status("RayCluster", {"status": {"endpoints": {
        "dashboard": "32700", "client": "10001", "named": "client"}}})  # fmt: skip
    assert ours == theirs
    assert ours["endpoints"] == {"dashboard": "<node port>", "client": "10001", "named": "client"}
