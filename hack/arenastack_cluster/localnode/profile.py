"""The `local` cluster profile: a local node, kube-proxy and cluster DNS beside the
control plane, instead of kwok's simulated nodes."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from arenastack_cluster.localnode import network
from arenastack_cluster.localnode.agent import kill_pod_dir
from arenastack_cluster.localnode.config import DEFAULT_POD_CIDR, NodeConfig
from arenastack_cluster.processes import free_port, wait_for

# Fake nvidia.com/gpu capacity of the local node, so GPU-requesting pods schedule.
GPUS_ENV = "ARENASTACK_LOCALNODE_GPUS"

if TYPE_CHECKING:
    from arenastack_cluster.cluster import LocalCluster


def config_path(cluster: LocalCluster) -> Path:
    return cluster.state / "localnode" / "node.json"


def prepare(cluster: LocalCluster, apiserver_port: int, pod_cidr: str | None) -> NodeConfig:
    """The node's settings and its bridge, which must exist before the apiserver binds to it."""
    state = cluster.state / "localnode"
    state.mkdir(parents=True, exist_ok=True)
    cfg = NodeConfig(
        state=state,
        kubeconfig=cluster.state / "admin.kubeconfig",
        pod_cidr=pod_cidr or DEFAULT_POD_CIDR,
        apiserver_port=apiserver_port,
        gpus=int(os.environ.get(GPUS_ENV, "0")),
        extra={"kubelet_port": 10250},
    )
    cfg.save(config_path(cluster))
    network.bridge_up(cfg)
    return cfg


def start(cluster: LocalCluster, log: Callable[[str], None]) -> None:
    cfg = NodeConfig.load(config_path(cluster))
    proxy = cluster.bin / "kube-proxy"
    with_proxy = proxy.exists() and shutil.which("iptables") is not None
    if not with_proxy:
        # Without kube-proxy the kubernetes Service's ClusterIP leads nowhere: point
        # in-cluster clients at the apiserver itself.
        cfg.extra["env"] = {
            "KUBERNETES_SERVICE_HOST": cfg.bridge_ip,
            "KUBERNETES_SERVICE_PORT": str(cfg.apiserver_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(cfg.apiserver_port),
        }
        why = "no kube-proxy binary" if not proxy.exists() else "no iptables"
        log(f"cluster: {why}; ClusterIP services are unreachable from pods")
    cfg.save(config_path(cluster))
    cluster.procs["localnode"].start(
        [sys.executable, "-m", "arenastack_cluster.localnode.agent", "--config",
         str(config_path(cluster))]
    )  # fmt: skip
    if with_proxy:
        # After the agent: kube-proxy reads the node's address from its Node object.
        _start_kube_proxy(cluster, cfg)
        log("cluster: kube-proxy (iptables mode) running")


def _start_kube_proxy(cluster: LocalCluster, cfg: NodeConfig) -> None:
    health = free_port()
    cluster.procs["kube-proxy"].start(
        [
            str(cluster.bin / "kube-proxy"),
            f"--kubeconfig={cluster.state / 'admin.kubeconfig'}",
            "--proxy-mode=iptables",
            f"--hostname-override={cfg.name}",
            f"--bind-address={cfg.bridge_ip}",
            f"--cluster-cidr={cfg.pod_cidr}",
            # NodePorts only on the node's own bridge address, never on outside interfaces.
            f"--nodeport-addresses={cfg.bridge_ip}/32",
            f"--healthz-bind-address=127.0.0.1:{health}",
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            # Leave the host's conntrack settings alone.
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            "--v=1",
        ]
    )
    wait_for(
        "kube-proxy",
        lambda: cluster._get(f"http://127.0.0.1:{health}/healthz", tls=False) == 200,
        60,
        cluster.procs["kube-proxy"],
    )


def stop(cluster: LocalCluster) -> None:
    """Kill every pod's processes and remove the node's network."""
    path = config_path(cluster)
    if not path.exists():
        return
    cfg = NodeConfig.load(path)
    if cfg.pods_dir.exists():
        for pod_dir in cfg.pods_dir.iterdir():
            kill_pod_dir(pod_dir)
            network.sandbox_down(pod_dir.name)
    shutil.rmtree(cfg.state / "ipam", ignore_errors=True)
    network.bridge_down(cfg)
