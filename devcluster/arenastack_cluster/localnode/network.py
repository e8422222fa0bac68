"""Pod networking, kept inside a network namespace of the node's own.

    host netns                 node netns (asnode-*)                pod netns (as-*)
    apiserver, kubelet port    bridge asbr* (pod range .1)          eth0 (pod IP)
    host_ip (.254) <-- veth -> uplink (.253)    <-- veth per pod -->
                               kube-proxy's iptables, CoreDNS

The host routes the pod range to the node namespace and answers the node at
host_ip; the node namespace forwards between pods and the host and holds
kube-proxy's rules, so the host's own firewall and forwarding settings stay
untouched and two local nodes (say a demo and a test run) do not meet. Pods and
the node namespace have no default route: their traffic cannot leave this
machine.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from arenastack_cluster.localnode.config import NodeConfig

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
    """Prefix that runs a command inside the node's network namespace."""
    return ["ip", "netns", "exec", cfg.node_netns]


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


def netns_name(uid: str) -> str:
    return f"as-{uid[:13]}"


def _veth_name(uid: str) -> str:
    return f"veth{uid.replace('-', '')[:11]}"


class Ipam:
    """Addresses of the pod range, one file per address naming its pod."""

    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.state / "ipam"
        self.dir.mkdir(parents=True, exist_ok=True)
        # Pods start and stop on threads of their own.
        self.lock = threading.Lock()

    def _owners(self) -> dict[str, str]:
        out = {}
        for f in self.dir.iterdir():
            try:
                out[f.read_text()] = f.name
            except FileNotFoundError:
                continue
        return out

    def lookup(self, uid: str) -> str | None:
        with self.lock:
            return self._owners().get(uid)

    def allocate(self, uid: str) -> str:
        with self.lock:
            return self._allocate(uid)

    def _allocate(self, uid: str) -> str:
        found = self._owners().get(uid)
        if found:
            return found
        for ip in self.cfg.pod_ips:
            try:
                fd = os.open(self.dir / ip, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.write(fd, uid.encode())
            os.close(fd)
            return ip
        raise NetworkError(f"no free address left in {self.cfg.pod_cidr}")

    def release(self, uid: str) -> None:
        with self.lock:
            ip = self._owners().get(uid)
            if ip:
                (self.dir / ip).unlink(missing_ok=True)

    def owners(self) -> dict[str, str]:
        with self.lock:
            return self._owners()


def sandbox_up(cfg: NodeConfig, uid: str, ip: str) -> Path:
    """The pod's network namespace with eth0 at `ip` on the node's bridge; returns its path."""
    ns, node = netns_name(uid), cfg.node_netns
    path = NETNS_DIR / ns
    if path.exists():
        sandbox_down(cfg, uid)
    veth = _veth_name(uid)
    _ip("netns", "add", ns)
    _ip("-n", node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    _ip("-n", node, "link", "set", veth, "master", cfg.bridge, "up")
    _ip("-n", ns, "addr", "add", f"{ip}/{cfg.network.prefixlen}", "dev", "eth0")
    _ip("-n", ns, "link", "set", "eth0", "up")
    _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", ns, "route", "add", cfg.service_cidr, "via", cfg.bridge_ip)
    _ip("-n", ns, "route", "add", f"{cfg.host_ip}/32", "via", cfg.bridge_ip)
    return path


def sandbox_down(cfg: NodeConfig, uid: str) -> None:
    _ip("netns", "del", netns_name(uid), check=False)
    _ip("-n", cfg.node_netns, "link", "del", _veth_name(uid), check=False)


def sandbox_exists(uid: str) -> bool:
    return (NETNS_DIR / netns_name(uid)).exists()
