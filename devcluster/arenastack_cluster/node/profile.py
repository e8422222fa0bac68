"""The `local` cluster profile: the real node (node.kubelet), kube-proxy and cluster DNS
beside the control plane, instead of kwok's simulated nodes."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from arenastack_cluster.layout import REPO_ROOT
from arenastack_cluster.node import kubelet, network
from arenastack_cluster.node.config import DEFAULT_POD_CIDR, DNS_PORT, ControlPlane, NodeConfig
from arenastack_cluster.processes import free_port, http_status, wait_for

# nvidia.com/gpu capacity advertised on the node, so GPU-requesting pods schedule (nothing
# backs it: scheduling tests only).
GPUS_ENV = "ARENASTACK_LOCALNODE_GPUS"
CPU_ENV = "ARENASTACK_LOCALNODE_CPU"
MEMORY_ENV = "ARENASTACK_LOCALNODE_MEMORY"
COREDNS_SCRIPT = REPO_ROOT / "hack" / "coredns.sh"


def config_path(cluster: ControlPlane) -> Path:
    return cluster.state / "localnode" / "node.json"


def node_config(cluster: ControlPlane) -> NodeConfig:
    return NodeConfig.load(config_path(cluster))


def prepare(cluster: ControlPlane, apiserver_port: int, pod_cidr: str | None) -> NodeConfig:
    """The node's settings and its bridge, which must exist before the apiserver binds to it."""
    state = cluster.state / "localnode"
    state.mkdir(parents=True, exist_ok=True)
    cfg = NodeConfig(
        state=state,
        kubeconfig=cluster.state / "admin.kubeconfig",
        pod_cidr=pod_cidr or DEFAULT_POD_CIDR,
        apiserver_port=apiserver_port,
        gpus=int(os.environ.get(GPUS_ENV, "0")),
        # Capacity the scheduler sees, not the machine's: a Ray head, workers and the
        # operator must fit on one development node, so it is generous by default.
        cpu=os.environ.get(CPU_ENV, NodeConfig.cpu),
        memory=os.environ.get(MEMORY_ENV, NodeConfig.memory),
        extra={"kubelet_port": 10250},
    )
    cfg.save(config_path(cluster))
    _drop_stale_pki(cluster, cfg.host_ip)
    network.bridge_up(cfg)
    return cfg


def _drop_stale_pki(cluster: ControlPlane, host_ip: str) -> None:
    """A state folder reused with another pod range has a serving certificate for the
    old address: start its PKI afresh (the cluster's state is new at every `up`)."""
    crt = cluster.pki / "apiserver.crt"
    if not crt.exists():
        return
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if ipaddress.ip_address(host_ip) not in sans.get_values_for_type(x509.IPAddress):
        shutil.rmtree(cluster.pki)


def start(cluster: ControlPlane, log: Callable[[str], None]) -> None:
    cfg = NodeConfig.load(config_path(cluster))
    proxy = cluster.bin / "kube-proxy"
    with_proxy = proxy.exists() and shutil.which("iptables") is not None
    if not with_proxy:
        # Without kube-proxy the kubernetes Service's ClusterIP leads nowhere: point
        # in-cluster clients at the apiserver itself.
        cfg.extra["env"] = {
            "KUBERNETES_SERVICE_HOST": cfg.host_ip,
            "KUBERNETES_SERVICE_PORT": str(cfg.apiserver_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(cfg.apiserver_port),
        }
        why = "no kube-proxy binary" if not proxy.exists() else "no iptables"
        log(f"cluster: {why}; ClusterIP services are unreachable from pods")
    cfg.save(config_path(cluster))
    kubelet.start(cluster, cfg, log)
    if with_proxy:
        # After the kubelet: kube-proxy reads the node's address from its Node object.
        _start_kube_proxy(cluster, cfg)
        log("cluster: kube-proxy (iptables mode) running")
    coredns = _coredns_binary()
    if coredns is not None:
        _start_coredns(cluster, cfg, coredns)
        log(f"cluster: CoreDNS answering {cfg.cluster_domain} on {cfg.bridge_ip}:{DNS_PORT}")
    else:
        log(f"cluster: building CoreDNS failed (see above; {COREDNS_SCRIPT}); "
            "service names do not resolve in pods")  # fmt: skip


def _start_kube_proxy(cluster: ControlPlane, cfg: NodeConfig) -> None:
    health = free_port()
    # In the node's network namespace: its rules never touch the host's firewall.
    cluster.procs["kube-proxy"].start(
        [
            *network.in_node(cfg),
            str(cluster.bin / "kube-proxy"),
            f"--kubeconfig={cluster.state / 'admin.kubeconfig'}",
            "--proxy-mode=iptables",
            f"--hostname-override={cfg.name}",
            f"--cluster-cidr={cfg.pod_cidr}",
            # NodePorts only on the node's own bridge address, never on outside interfaces.
            f"--nodeport-addresses={cfg.bridge_ip}/32",
            f"--healthz-bind-address={cfg.bridge_ip}:{health}",
            f"--metrics-bind-address={cfg.bridge_ip}:{free_port()}",
            # Leave the machine's conntrack settings alone.
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            "--v=1",
        ]
    )
    wait_for(
        "kube-proxy",
        lambda: http_status(f"http://{cfg.bridge_ip}:{health}/healthz") == 200,
        60,
        cluster.procs["kube-proxy"],
    )


def _coredns_binary() -> Path | None:
    # Progress lines pass through on stderr; stdout is the binary's path.
    proc = subprocess.run([str(COREDNS_SCRIPT)], stdout=subprocess.PIPE, text=True)
    path = Path(proc.stdout.strip())
    return path if proc.returncode == 0 and path.exists() else None


def _start_coredns(cluster: ControlPlane, cfg: NodeConfig, binary: Path) -> None:
    """Cluster DNS for pods (their resolv.conf names the bridge address). No forwarder:
    names outside the cluster get REFUSED, so lookups never leave this machine."""
    ready, health = free_port(), free_port()
    corefile = cfg.state / "Corefile"
    corefile.write_text(
        f"""{cfg.cluster_domain}:{DNS_PORT} in-addr.arpa:{DNS_PORT} {{
    bind {cfg.bridge_ip}
    errors
    ready {cfg.bridge_ip}:{ready}
    health {cfg.bridge_ip}:{health}
    kubernetes {cfg.cluster_domain} in-addr.arpa {{
        kubeconfig {cluster.state / "admin.kubeconfig"}
        pods insecure
    }}
    cache 5
    loadbalance
}}
"""
    )
    cluster.procs["coredns"].start([*network.in_node(cfg), str(binary), "-conf", str(corefile)])
    wait_for(
        "CoreDNS",
        lambda: http_status(f"http://{cfg.bridge_ip}:{ready}/ready") == 200,
        60,
        cluster.procs["coredns"],
    )


def stop_node(cluster: ControlPlane) -> None:
    """The node's drain and shutdown, which need the control plane still running."""
    if config_path(cluster).exists():
        kubelet.stop(cluster, node_config(cluster))


def stop(cluster: ControlPlane) -> None:
    """Remove the node's network, once the node itself is stopped."""
    if config_path(cluster).exists():
        network.bridge_down(node_config(cluster))
