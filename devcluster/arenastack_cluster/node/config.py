"""Settings of the local node, and what the node's modules need of the control plane."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from arenastack_cluster.layout import CLUSTER_DOMAIN, SERVICE_CIDR
from arenastack_cluster.processes import Process

DEFAULT_POD_CIDR = "10.244.0.0/24"
DEFAULT_NODE_NAME = "localnode"
KUBELET_PORT = 10250
DNS_PORT = 53


@dataclass
class NodeConfig:
    state: Path
    kubeconfig: Path
    name: str = DEFAULT_NODE_NAME
    pod_cidr: str = DEFAULT_POD_CIDR
    gpus: int = 0
    cpu: str = "8"
    memory: str = "32Gi"
    max_pods: int = 110
    service_cidr: str = SERVICE_CIDR
    cluster_domain: str = CLUSTER_DOMAIN
    # Where pods reach the apiserver (host_ip, at this port).
    apiserver_port: int = 6443
    extra: dict = field(default_factory=dict)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.pod_cidr)

    @property
    def bridge_ip(self) -> str:
        """The pods' gateway and DNS address: the first host of the pod range, on the
        bridge inside the node's network namespace."""
        return str(self.network.network_address + 1)

    @property
    def host_ip(self) -> str:
        """The host's end of the link to the node namespace (the last host of the pod
        range): where the apiserver and the kubelet port listen, the Node's InternalIP."""
        return str(self.network.broadcast_address - 1)

    @property
    def uplink_ip(self) -> str:
        """The node namespace's end of that link."""
        return str(self.network.broadcast_address - 2)

    @property
    def pod_ips(self) -> list[str]:
        reserved = {self.bridge_ip, self.host_ip, self.uplink_ip}
        return [str(h) for h in self.network.hosts() if str(h) not in reserved]

    @property
    def _tag(self) -> str:
        # Interface names are limited to 15 characters; the range picks the names so two
        # local nodes (a demo and a test run) never share a bridge or a namespace.
        octets = self.network.network_address.packed
        return f"{octets[1]}x{octets[2]}"

    @property
    def bridge(self) -> str:
        return f"asbr{self._tag}"

    @property
    def node_netns(self) -> str:
        return f"asnode-{self._tag}"

    @property
    def host_veth(self) -> str:
        return f"asup{self._tag}"

    def save(self, path: Path) -> None:
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        path.write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        data = json.loads(path.read_text())
        for key in ("state", "kubeconfig"):
            data[key] = Path(data[key])
        return cls(**data)


class ControlPlane(Protocol):
    """What the node's modules use of the cluster that runs them (arenastack_cluster.cluster's
    LocalCluster), so that they need not import it."""

    state: Path
    pki: Path
    procs: dict[str, Process]

    @property
    def bin(self) -> Path: ...

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]: ...
