"""The local control plane: start, idempotence, stop, and clear errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from arenastack_cluster.cluster import TOOLCHAIN_SCRIPT, LocalCluster
from arenastack_cluster.processes import ClusterError, pid_alive

pytestmark = pytest.mark.integration


def test_session_cluster_has_cpu_and_gpu_nodes(cluster):
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    gpu = [n for n in nodes if "nvidia.com/gpu" in n["status"]["allocatable"]]
    assert len(nodes) - len(gpu) >= 4 and len(gpu) >= 4
    assert all(n["metadata"]["labels"]["nvidia.com/gpu.present"] == "true" for n in gpu)


def test_gpu_pod_is_scheduled_on_a_gpu_node(cluster, namespace):
    cluster.kubectl(
        "run",
        "gpu",
        "-n",
        namespace,
        "--image=x",
        "--restart=Never",
        "--overrides",
        json.dumps(
            {
                "spec": {
                    "containers": [
                        {
                            "name": "gpu",
                            "image": "x",
                            "resources": {"limits": {"nvidia.com/gpu": "8"}},
                        }
                    ]
                }
            }
        ),
    )
    cluster.kubectl("wait", "-n", namespace, "pod/gpu", "--for=condition=Ready", "--timeout=60s")
    pod = json.loads(cluster.kubectl("get", "pod", "gpu", "-n", namespace, "-o", "json").stdout)
    assert pod["spec"]["nodeName"].startswith("kwok-gpu-")


def test_controllers_run(cluster, namespace):
    # Deployment -> ReplicaSet -> Pods needs the controller-manager; the pods'
    # owner chain and the garbage collector are exercised on delete.
    cluster.kubectl("create", "deployment", "web", "-n", namespace, "--image=x", "--replicas=3")
    cluster.kubectl("rollout", "status", "-n", namespace, "deploy/web", "--timeout=60s")
    cluster.kubectl(
        "delete", "deployment", "web", "-n", namespace, "--cascade=foreground", "--timeout=60s"
    )
    left = cluster.kubectl("get", "replicasets,pods", "-n", namespace, "-o", "name").stdout
    assert left.strip() == ""


def test_up_is_idempotent(cluster):
    before = cluster.status()
    cluster.up(log=lambda _: None)
    assert cluster.status() == before


def test_down_stops_everything(tmp_path):
    cl = LocalCluster(state=tmp_path / "state")
    cl.up(cpu_nodes=1, gpu_nodes=1, log=lambda _: None)
    pids = [p.pid for p in cl.procs.values()]
    assert all(pid and pid_alive(pid) for pid in pids)
    cl.down(quiet=True)
    assert not any(pid_alive(pid) for pid in pids)
    assert set(cl.status().values()) == {"stopped"}


def test_port_in_use_is_one_clear_error(tmp_path, monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("ARENASTACK_APISERVER_PORT", str(port))
        with pytest.raises(ClusterError, match=f"port {port} .* already in use"):
            LocalCluster(state=tmp_path / "state").up(log=lambda _: None)


def _toolchain_without_go(cache) -> subprocess.CompletedProcess[str]:
    path = ":".join(
        p for p in os.environ["PATH"].split(":") if not os.path.exists(os.path.join(p, "go"))
    )
    return subprocess.run(
        [str(TOOLCHAIN_SCRIPT)],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path, "ARENASTACK_CACHE": str(cache)},
    )


def test_missing_go_is_one_clear_error(tmp_path):
    proc = _toolchain_without_go(tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("toolchain: the Go toolchain is missing")


def test_interrupted_build_is_not_trusted(tmp_path):
    # A binary without its completion marker (a build cut short) must be rebuilt,
    # which here means asking for Go, never running the half-written file.
    out = subprocess.run(
        [str(TOOLCHAIN_SCRIPT), "--path"],
        capture_output=True,
        text=True,
        env={**os.environ, "ARENASTACK_CACHE": str(tmp_path)},
    ).stdout.strip()
    bin_dir = tmp_path / out.split(str(tmp_path) + "/", 1)[1]
    bin_dir.mkdir(parents=True)
    (bin_dir / "etcd").write_bytes(b"\x7fELF truncated")
    (bin_dir / "etcd").chmod(0o755)
    proc = _toolchain_without_go(tmp_path)
    assert proc.returncode == 1 and "Go toolchain is missing" in proc.stderr
