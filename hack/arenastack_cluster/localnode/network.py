"""Pod networking: a bridge on the host, a network namespace per pod joined to it
by a veth pair, and one address per pod from the node's pod range.

Pods get routes to the pod range (on the bridge) and the service range (via
the node's bridge address, where kube-proxy's rules catch it) and no default
route, so their traffic cannot leave this machine. When iptables is present,
forwarding between the bridge and any other interface is dropped as well.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

from arenastack_cluster.localnode.config import NodeConfig

NETNS_DIR = Path("/run/netns")


class NetworkError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key.replace(".", "/")
    if path.exists() and path.read_text().strip() != value:
        path.write_text(value)


def _iptables_guard(bridge: str, add: bool) -> None:
    if shutil.which("iptables") is None:
        return
    for rule in (["-i", bridge, "!", "-o", bridge], ["!", "-i", bridge, "-o", bridge]):
        exists = subprocess.run(["iptables", "-C", "FORWARD", *rule, "-j", "DROP"],
                                capture_output=True).returncode == 0  # fmt: skip
        if add and not exists:
            subprocess.run(["iptables", "-I", "FORWARD", *rule, "-j", "DROP"], check=True)
        elif not add and exists:
            subprocess.run(["iptables", "-D", "FORWARD", *rule, "-j", "DROP"], check=True)


def bridge_up(cfg: NodeConfig) -> None:
    """Create the node's bridge with its address (idempotent)."""
    net = cfg.network
    if _ip("link", "show", cfg.bridge, check=False).returncode != 0:
        _ip("link", "add", cfg.bridge, "type", "bridge")
    have = _ip("-o", "addr", "show", "dev", cfg.bridge).stdout
    if f" {cfg.bridge_ip}/" not in have:
        _ip("addr", "add", f"{cfg.bridge_ip}/{net.prefixlen}", "dev", cfg.bridge)
    _ip("link", "set", cfg.bridge, "up")
    # Service traffic from pods is DNATed on the host and sent back out of the
    # bridge: that is forwarding, and replies between pods on one bridge must
    # pass netfilter for the DNAT to be undone.
    _sysctl("net.ipv4.ip_forward", "1")
    _sysctl("net.bridge.bridge-nf-call-iptables", "1")
    _iptables_guard(cfg.bridge, add=True)


def bridge_down(cfg: NodeConfig) -> None:
    _iptables_guard(cfg.bridge, add=False)
    _ip("link", "del", cfg.bridge, check=False)


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

    def lookup(self, uid: str) -> str | None:
        for f in self.dir.iterdir():
            if f.read_text() == uid:
                return f.name
        return None

    def allocate(self, uid: str) -> str:
        found = self.lookup(uid)
        if found:
            return found
        for host in list(self.cfg.network.hosts())[1:]:
            try:
                fd = os.open(self.dir / str(host), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.write(fd, uid.encode())
            os.close(fd)
            return str(host)
        raise NetworkError(f"no free address left in {self.cfg.pod_cidr}")

    def release(self, uid: str) -> None:
        ip = self.lookup(uid)
        if ip:
            (self.dir / ip).unlink(missing_ok=True)

    def owners(self) -> dict[str, str]:
        return {f.read_text(): f.name for f in self.dir.iterdir()}


def sandbox_up(cfg: NodeConfig, uid: str, ip: str) -> Path:
    """The pod's network namespace with eth0 at `ip`; returns its path."""
    ns = netns_name(uid)
    path = NETNS_DIR / ns
    if path.exists():
        sandbox_down(uid)
    veth = _veth_name(uid)
    _ip("link", "del", veth, check=False)
    _ip("netns", "add", ns)
    _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    _ip("link", "set", veth, "master", cfg.bridge, "up")
    prefix = ipaddress.IPv4Network(cfg.pod_cidr).prefixlen
    _ip("-n", ns, "addr", "add", f"{ip}/{prefix}", "dev", "eth0")
    _ip("-n", ns, "link", "set", "eth0", "up")
    _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", ns, "route", "add", cfg.service_cidr, "via", cfg.bridge_ip)
    return path


def sandbox_down(uid: str) -> None:
    _ip("netns", "del", netns_name(uid), check=False)
    _ip("link", "del", _veth_name(uid), check=False)


def sandbox_exists(uid: str) -> bool:
    return (NETNS_DIR / netns_name(uid)).exists()
