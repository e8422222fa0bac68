"""The real node's configuration as rendered (no processes): what these machines require
(restrict_oom_score_adj, cgroupfs on cgroup v1, no swap check), the node's identity and
authentication, and an address plan that never hands out the gateway, uplink or host ends."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

from arenastack_cluster.node import settings
from arenastack_cluster.node.config import NodeConfig
from arenastack_cluster.node.settings import Paths


def _cfg(tmp_path: Path) -> NodeConfig:
    return NodeConfig(state=tmp_path, kubeconfig=tmp_path / "kc", pod_cidr="10.246.3.0/24")


def test_containerd_config_parses_and_keeps_runtime_state_short(tmp_path):
    paths = Paths(tmp_path / ("very-long-folder-name" * 6))
    config = tomllib.loads(settings.containerd_config(paths))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == settings.PAUSE_IMAGE
    assert cri["cni"]["conf_dir"] == str(paths.cni_conf_dir)
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert runc["SystemdCgroup"] is False and runc["Root"].startswith("/run/arenastack/")
    # Unix socket paths have 108 bytes at most, however deep the checkout is.
    assert len(config["grpc"]["address"]) < 108 and config["root"] == str(paths.containerd_root)
    assert Paths(tmp_path / "a").run != Paths(tmp_path / "b").run


def test_cni_hands_out_only_pod_addresses(tmp_path):
    cfg = _cfg(tmp_path)
    (bridge, portmap) = settings.cni_config(cfg, Paths(tmp_path))["plugins"]
    assert bridge["bridge"] == cfg.bridge and bridge["isGateway"] and not bridge["ipMasq"]
    (rng,) = bridge["ipam"]["ranges"][0]
    first, last = (ipaddress.ip_address(rng[k]) for k in ("rangeStart", "rangeEnd"))
    reserved = {ipaddress.ip_address(a) for a in (cfg.bridge_ip, cfg.uplink_ip, cfg.host_ip)}
    assert not any(first <= a <= last for a in reserved)
    assert rng["gateway"] == cfg.bridge_ip and portmap["type"] == "portmap"
    # Replies to the host's end, which lies inside the pod range, go through the bridge.
    assert {"dst": f"{cfg.host_ip}/32", "gw": cfg.bridge_ip} in bridge["ipam"]["routes"]
    assert settings.cni_network(cfg) != settings.cni_network(
        NodeConfig(state=tmp_path, kubeconfig=tmp_path / "kc", pod_cidr="10.246.4.0/24")
    )


def test_node_addresses_leave_room_for_pods_and_names_fit_interfaces(tmp_path):
    cfg = _cfg(tmp_path)
    assert (cfg.bridge_ip, cfg.uplink_ip, cfg.host_ip) == ("10.246.3.1", "10.246.3.253",
                                                           "10.246.3.254")  # fmt: skip
    assert len(cfg.pod_ips) == 251 and cfg.bridge_ip not in cfg.pod_ips
    # Linux limits interface names to 15 characters.
    assert len(cfg.bridge) <= 15 and len(cfg.host_veth) <= 15


def test_kubelet_config_authenticates_and_fits_these_machines(tmp_path):
    cfg = _cfg(tmp_path)
    kc = settings.kubelet_config(cfg, Paths(tmp_path), tmp_path / "pki")
    assert (kc["cgroupDriver"], kc["failCgroupV1"], kc["failSwapOn"]) == ("cgroupfs", False, False)
    assert kc["authentication"]["anonymous"] == {"enabled": False}
    assert kc["authentication"]["webhook"] == {"enabled": True}
    assert kc["authorization"] == {"mode": "Webhook"} and kc["readOnlyPort"] == 0
    assert kc["address"] == cfg.uplink_ip and kc["clusterDNS"] == [cfg.bridge_ip]
    assert kc["cgroupRoot"] == settings.cgroup_root(cfg) != "/"
    # No registry to pull from again: images are never garbage-collected.
    assert kc["imageGCHighThresholdPercent"] == 100
    argv = settings.kubelet_argv(Path("/bin/kubelet"), cfg, Paths(tmp_path), tmp_path / "kc")
    assert f"--node-ip={cfg.uplink_ip}" in argv and "--hostname-override=localnode" in argv
