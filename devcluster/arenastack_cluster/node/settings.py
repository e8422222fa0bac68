"""Configuration of the real node's components, as plain text or objects (no I/O)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from arenastack_cluster.node.config import NodeConfig

PAUSE_IMAGE = "localhost/arenastack/pause:3.10"
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
# Host paths the kubelet and containerd 1.6 use whatever they are told; `down` removes
# what this node left there.
DEVICE_PLUGINS_DIR = Path("/var/lib/kubelet/device-plugins")
CONTAINER_LOGS_DIR = Path("/var/log/containers")
SHIM_SOCKETS_DIR = Path("/run/containerd/s")
CNI_RESULTS_DIR = Path("/var/lib/cni/results")
# The kubelet writes these host-wide sysctls at start; `down` puts the old values back.
KERNEL_TUNABLES = ("kernel/panic_on_oops", "vm/overcommit_memory", "kernel/panic")


@dataclass(frozen=True)
class Paths:
    """Where one real node keeps its state: under the cluster's state folder, except the
    runtime state whose socket paths must stay short."""

    state: Path

    @property
    def run(self) -> Path:
        # Unix socket paths are limited to 108 bytes; a checkout's path may be long.
        tag = hashlib.sha256(str(self.state).encode()).hexdigest()[:10]
        return Path("/run/arenastack") / tag

    @property
    def containerd_root(self) -> Path:
        # Kept across `cluster down`/`up`, so imported images stay imported.
        return self.state / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.state / "containerd.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.state / "kubelet.yaml"

    @property
    def pod_logs(self) -> Path:
        return self.state / "pod-logs"

    @property
    def resolv_conf(self) -> Path:
        return self.state / "resolv.conf"

    @property
    def saved_tunables(self) -> Path:
        return self.state / "saved-sysctls.json"


def cgroup_root(cfg: NodeConfig) -> str:
    """The node's own cgroup subtree, so two local nodes (a demo and a test run) never
    share kubepods."""
    return f"/arenastack-{cfg.node_netns}"


def containerd_config(paths: Paths) -> str:
    run = paths.run
    return f"""version = 2
root = "{paths.containerd_root}"
state = "{run / "containerd"}"
# Plugins this node never uses and that would write elsewhere on the host.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{paths.containerd_socket}"

[ttrpc]
  address = "{run / "containerd.ttrpc.sock"}"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Root on these machines lacks CAP_SYS_RESOURCE: without this every sandbox fails
  # ("can't get final child's PID from pipe: EOF"; runc cannot lower oom_score_adj).
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{run / "runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{paths.cni_conf_dir}"
    max_conf_num = 1
"""


def cni_network(cfg: NodeConfig) -> str:
    """One network name per node: CNI's result cache on the host is keyed by it."""
    return f"arenastack-{cfg.node_netns}"


def cni_config(cfg: NodeConfig, paths: Paths) -> dict:
    """The bridge the node namespace already has (network.bridge_up), host-local
    addresses from the pod range (its gateway, uplink and host ends excluded), portmap for
    hostPort. Pods get a default route to the bridge; the node namespace has none, so
    nothing leaves this machine."""
    hosts = cfg.pod_ips
    return {
        "cniVersion": "1.0.0",
        "name": cni_network(cfg),
        "plugins": [
            {
                "type": "bridge",
                "bridge": cfg.bridge,
                "isGateway": True,
                "isDefaultGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.state / "ipam"),
                    # The host's end of the uplink lies inside the pod range: without this
                    # route a pod would look for it on the bridge, and replies to the host
                    # (the apiserver, tests talking to pod IPs) would go nowhere.
                    "routes": [{"dst": f"{cfg.host_ip}/32", "gw": cfg.bridge_ip}],
                    "ranges": [
                        [
                            {
                                "subnet": cfg.pod_cidr,
                                "rangeStart": hosts[0],
                                "rangeEnd": hosts[-1],
                                "gateway": cfg.bridge_ip,
                            }
                        ]
                    ],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(cfg: NodeConfig, paths: Paths, pki: Path) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # cgroup v1 is in maintenance mode and this machine has no systemd.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "cgroupRoot": cgroup_root(cfg),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "address": cfg.uplink_ip,
        "port": cfg.extra.get("kubelet_port", 10250),
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "readOnlyPort": 0,
        "clusterDomain": cfg.cluster_domain,
        "clusterDNS": [cfg.bridge_ip],
        # No upstream resolvers: names outside the cluster never resolve.
        "resolvConf": str(paths.resolv_conf),
        "podLogsDir": str(paths.pod_logs),
        "maxPods": cfg.max_pods,
        # No registry to pull from again: never collect an image.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "volumePluginDir": str(paths.kubelet_root / "volume-plugins"),
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "staticPodPath": "",
        "registerNode": True,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "shutdownGracePeriod": "0s",
    }


def kubelet_argv(binary: Path, cfg: NodeConfig, paths: Paths, kubeconfig: Path) -> list[str]:
    return [
        str(binary),
        f"--config={paths.kubelet_config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={paths.kubelet_root}",
        f"--cert-dir={paths.kubelet_root / 'pki'}",
        f"--hostname-override={cfg.name}",
        f"--node-ip={cfg.uplink_ip}",
        "--node-labels=arenastack.io/local-node=kubelet",
        "--v=1",
    ]


def render_json(obj: dict) -> str:
    return json.dumps(obj, indent=2) + "\n"
