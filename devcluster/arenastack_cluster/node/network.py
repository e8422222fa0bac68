"""The node's network namespace, which keeps pod networking apart from the host's.

    host netns                 node netns (asnode-*)                pod netns (cni-*)
    apiserver                  bridge asbr* (pod range .1)          eth0 (pod IP)
    host_ip (.254) <-- veth -> uplink (.253), kubelet  <-- veth per pod (CNI bridge) -->
                               containerd, kube-proxy's iptables, CoreDNS

The host routes the pod range to the node namespace and answers the node at
host_ip; the node namespace forwards between pods and the host and holds
kube-proxy's rules, so the host's own firewall and forwarding settings stay
untouched and two local nodes (say a demo and a test run) do not meet. Pods and
the node namespace have no default route: their traffic cannot leave this
machine.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from arenastack_cluster.node.config import NodeConfig

NETNS_DIR = Path("/run/netns")
UPLINK = "uplink"


class NetworkError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def in_node(cfg: NodeConfig) -> list[str]:
    """Prefix that runs a command inside the node's network namespace, and only there.
    (`ip netns exec` also remounts /sys, which hides the cgroup file systems that containerd
    and the kubelet need.)"""
    return ["nsenter", f"--net={NETNS_DIR / cfg.node_netns}", "--"]


def _node_sysctl(cfg: NodeConfig, key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    subprocess.run([*in_node(cfg), "sh", "-c", f"[ ! -e {path} ] || echo {value} > {path}"],
                   check=True)  # fmt: skip


def bridge_up(cfg: NodeConfig) -> None:
    """The node's namespace, its bridge and its link to the host (idempotent)."""
    node, prefix = cfg.node_netns, cfg.network.prefixlen
    if (NETNS_DIR / node).exists():
        return
    _ip("netns", "add", node)
    _ip("-n", node, "link", "set", "lo", "up")
    _ip("-n", node, "link", "add", cfg.bridge, "type", "bridge")
    _ip("-n", node, "addr", "add", f"{cfg.bridge_ip}/{prefix}", "dev", cfg.bridge)
    _ip("-n", node, "link", "set", cfg.bridge, "up")
    _ip("link", "del", cfg.host_veth, check=False)
    _ip("link", "add", cfg.host_veth, "type", "veth", "peer", "name", UPLINK, "netns", node)
    _ip("addr", "add", f"{cfg.host_ip}/32", "dev", cfg.host_veth)
    _ip("link", "set", cfg.host_veth, "up")
    _ip("-n", node, "addr", "add", f"{cfg.uplink_ip}/32", "dev", UPLINK)
    _ip("-n", node, "link", "set", UPLINK, "up")
    _ip("-n", node, "route", "add", f"{cfg.host_ip}/32", "dev", UPLINK)
    _ip("route", "add", f"{cfg.uplink_ip}/32", "dev", cfg.host_veth)
    _ip("route", "add", cfg.pod_cidr, "via", cfg.uplink_ip, "dev", cfg.host_veth)
    # Pods' service traffic is DNATed in the node namespace and forwarded back out of
    # the bridge; replies between pods on one bridge must pass netfilter too.
    _node_sysctl(cfg, "net.ipv4.ip_forward", "1")
    _node_sysctl(cfg, "net.bridge.bridge-nf-call-iptables", "1")


def bridge_down(cfg: NodeConfig) -> None:
    """Removing the namespace removes the bridge, the link and every rule in it."""
    _ip("netns", "del", cfg.node_netns, check=False)
    _ip("link", "del", cfg.host_veth, check=False)
