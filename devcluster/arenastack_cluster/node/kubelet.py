"""Start and stop the real node: containerd and the kubelet in the node's network
namespace, the project's images imported, and every trace on the host removed at `down`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from arenastack_cluster.certs import ensure_node_pki
from arenastack_cluster.layout import REPO_ROOT
from arenastack_cluster.node import settings
from arenastack_cluster.node.config import ControlPlane, NodeConfig
from arenastack_cluster.node.network import NETNS_DIR, in_node
from arenastack_cluster.node.settings import Paths
from arenastack_cluster.processes import ClusterError, run_tool, wait_for

IMAGES_SCRIPT = REPO_ROOT / "hack" / "images.sh"
CGROUP_DIR = Path("/sys/fs/cgroup")
REQUIRED = {
    "containerd": "containerd",
    "runc": "runc",
    "nsenter": "util-linux",
    str(settings.CNI_BIN_DIR / "bridge"): "containernetworking-plugins",
}


def _check_host() -> None:
    missing = [
        pkg for cmd, pkg in REQUIRED.items() if shutil.which(cmd) is None and not Path(cmd).exists()
    ]
    if missing:
        raise ClusterError(
            f"the real node needs the Debian packages {', '.join(missing)}: run `make apt`"
        )


def ctr(
    paths: Paths, *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    prefix = ["ctr", "--address", str(paths.containerd_socket), "--namespace", "k8s.io"]
    return run_tool("ctr", prefix, args, check=check, timeout=timeout)


def prepare_pki(cluster: ControlPlane, cfg: NodeConfig) -> None:
    ensure_node_pki(cluster.pki, cfg.name, cfg.uplink_ip)


def apiserver_flags(cluster: ControlPlane) -> list[str]:
    pki = cluster.pki
    return [
        "--enable-admission-plugins=NodeRestriction",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
    ]


def start(cluster: ControlPlane, cfg: NodeConfig, log: Callable[[str], None]) -> None:
    _check_host()
    paths = Paths(cfg.state)
    for folder in (
        paths.run,
        paths.containerd_root,
        paths.cni_conf_dir,
        paths.kubelet_root,
        paths.pod_logs,
    ):
        folder.mkdir(parents=True, exist_ok=True)
    paths.containerd_config.write_text(settings.containerd_config(paths))
    conflist = paths.cni_conf_dir / "10-arenastack.conflist"
    conflist.write_text(settings.render_json(settings.cni_config(cfg, paths)))
    paths.resolv_conf.write_text("# no upstream resolvers: names outside the cluster fail\n")
    kubelet_cfg = settings.kubelet_config(cfg, paths, cluster.pki)
    paths.kubelet_config.write_text(yaml.safe_dump(kubelet_cfg, sort_keys=False))
    _save_tunables(paths)
    _make_cgroup_root(settings.cgroup_root(cfg))

    t0 = time.monotonic()
    containerd = cluster.procs["containerd"]
    containerd.start([*in_node(cfg), "containerd", "--config", str(paths.containerd_config)])
    wait_for(
        "containerd", lambda: ctr(paths, "version", check=False).returncode == 0, 60, containerd
    )
    log(f"cluster: containerd ready in {time.monotonic() - t0:.1f} s")
    build_images()
    import_images(paths, log)

    t0 = time.monotonic()
    kubelet = cluster.procs["kubelet"]
    kubelet.start(
        [
            *in_node(cfg),
            *settings.kubelet_argv(
                cluster.bin / "kubelet", cfg, paths, cluster.state / "node.kubeconfig"
            ),
        ]
    )
    wait_for("the kubelet", lambda: _node_registered(cluster, cfg), 90, kubelet)
    if cfg.gpus:
        advertise_gpus(cluster, cfg)
    log(f"cluster: kubelet registered node {cfg.name} in {time.monotonic() - t0:.1f} s")


def _node_registered(cluster: ControlPlane, cfg: NodeConfig) -> bool:
    return cluster.kubectl("get", "node", cfg.name, check=False).returncode == 0


def advertise_gpus(cluster: ControlPlane, cfg: NodeConfig) -> None:
    """Extended resources the documented way: a status patch the kubelet keeps. Only for
    scheduling tests: nothing backs the capacity."""
    patch = [{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": str(cfg.gpus)}]
    cluster.kubectl(
        "patch", "node", cfg.name, "--subresource=status", "--type=json", "-p", json.dumps(patch)
    )


# -- images ------------------------------------------------------------------------
def build_images() -> None:
    """`make images`: builds what changed since the last build (seconds when nothing did)."""
    # Progress lines pass through to the terminal on stderr.
    if subprocess.run([str(IMAGES_SCRIPT)], stdout=subprocess.DEVNULL).returncode != 0:
        raise ClusterError(f"building the images failed; see the lines above ({IMAGES_SCRIPT})")


def image_archives() -> list[tuple[str, Path]]:
    """(reference, docker archive) of each image hack/images.sh has built."""
    proc = subprocess.run([str(IMAGES_SCRIPT), "--list"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"{IMAGES_SCRIPT} --list failed: {proc.stderr.strip()}")
    out = []
    for line in proc.stdout.splitlines():
        ref, _, archive = line.partition(" ")
        if ref and archive:
            out.append((ref, Path(archive)))
    return out


def import_images(paths: Paths, log: Callable[[str], None]) -> None:
    """Import what is not yet in the node's image store (kept across `up`s), so pods
    with IfNotPresent find it: there is no registry to pull from."""
    record = paths.containerd_root / "imported.json"
    done: dict[str, str] = json.loads(record.read_text()) if record.exists() else {}
    archives = image_archives()
    if not any(ref == settings.PAUSE_IMAGE for ref, _ in archives):
        raise ClusterError("the pause image is missing: run `make images` first")
    present = set(ctr(paths, "images", "ls", "-q").stdout.split())
    missing = [a for ref, a in archives if not (done.get(ref) == a.name and ref in present)]
    _check_room(paths, missing)
    for ref, archive in archives:
        if done.get(ref) == archive.name and ref in present:
            continue
        t0 = time.monotonic()
        ctr(paths, "images", "import", "--no-unpack=false", str(archive))
        freed = discard_unpacked_layers(paths, ref)
        done[ref] = archive.name
        record.write_text(json.dumps(done, indent=2))
        log(
            f"cluster: imported {ref} in {time.monotonic() - t0:.1f} s"
            f" ({freed / 2**20:.0f} MiB of unpacked layers dropped)"
        )


# Room kept free besides the images: the pods' logs, writable layers and the control plane.
SPARE_BYTES = 2 * 2**30


def _check_room(paths: Paths, archives: list[Path]) -> None:
    """Refuse to start an import the disk cannot hold, with the figures, rather than
    fail half-way with every later write on the machine (etcd's among them) failing."""
    if not archives:
        return
    sizes = [a.stat().st_size for a in archives]
    # Each image ends up unpacked (about its archive's size); the one being imported
    # also has its blobs in the store until they are dropped.
    need = sum(sizes) + max(sizes) + SPARE_BYTES
    free = shutil.disk_usage(paths.containerd_root).free
    if free < need:
        raise ClusterError(
            f"the local node needs {need / 2**30:.1f} GiB free under {paths.containerd_root}"
            f" to import {len(archives)} images; {free / 2**30:.1f} GiB are free"
        )


MANIFEST_LISTS = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def _layer_digests(paths: Paths, digest: str) -> list[tuple[str, int]]:
    """(digest, size) of the layers under a manifest or manifest list in the store."""
    doc = json.loads(ctr(paths, "content", "get", digest).stdout)
    if doc.get("mediaType") in MANIFEST_LISTS or "manifests" in doc:
        return [d for m in doc.get("manifests", []) for d in _layer_digests(paths, m["digest"])]
    return [(layer["digest"], int(layer.get("size", 0))) for layer in doc.get("layers", [])]


def discard_unpacked_layers(paths: Paths, ref: str) -> int:
    """Delete the layer blobs of an unpacked image from the content store; returns the
    bytes freed. Once unpacked, pods run from the snapshots: the blobs would only double
    the image's size on disk (the vLLM image alone is about 6 GB), which is what
    containerd's own `discard_unpacked_layers` does for pulled images. An image that
    shares a layer with a later one gets it back from that one's archive."""
    listing = ctr(paths, "images", "ls").stdout.splitlines()
    target = next((line.split()[2] for line in listing[1:] if line.split()[:1] == [ref]), None)
    if target is None:
        raise ClusterError(f"{ref} is not in the node's image store after its import")
    freed = 0
    for digest, size in _layer_digests(paths, target):
        if ctr(paths, "content", "rm", digest, check=False).returncode == 0:
            freed += size
    return freed


# -- host state the kubelet touches ------------------------------------------------
def _save_tunables(paths: Paths) -> None:
    if paths.saved_tunables.exists():  # an earlier `up` saved the machine's own values
        return
    values = {k: Path("/proc/sys", k).read_text().strip() for k in settings.KERNEL_TUNABLES}
    paths.saved_tunables.write_text(json.dumps(values))


def _restore_tunables(paths: Paths) -> None:
    if not paths.saved_tunables.exists():
        return
    for key, value in json.loads(paths.saved_tunables.read_text()).items():
        try:
            Path("/proc/sys", key).write_text(value)
        except OSError:
            pass
    paths.saved_tunables.unlink()


def _controllers(unified: bool = False) -> list[Path]:
    """The cgroup v1 hierarchies the kubelet writes to (one folder per mounted controller),
    and with `unified` the hybrid layout's cgroup v2 tree, where it makes folders too."""
    return [
        p
        for p in sorted(CGROUP_DIR.iterdir())
        if p.is_dir() and not p.is_symlink() and (unified or p.name != "unified")
    ]


def _make_cgroup_root(root: str) -> None:
    for controller in _controllers():
        path = controller / root.lstrip("/")
        path.mkdir(exist_ok=True)
        if controller.name.startswith("cpuset"):
            # A new cpuset has no CPUs or memory nodes until given its parent's.
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not (path / name).read_text().strip():
                    (path / name).write_text((controller / name).read_text())


def _remove_cgroup_tree(root: str) -> None:
    for controller in _controllers(unified=True):
        top = controller / root.lstrip("/")
        if not top.exists():
            continue
        for folder in sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
        ):
            _rmdir(folder)
        _rmdir(top)


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


# -- down ----------------------------------------------------------------------------
def drain(cluster: ControlPlane, cfg: NodeConfig, timeout: float = 60) -> None:
    """While the control plane still runs: delete every pod on the node, so the kubelet
    stops their containers and CNI releases their networks the normal way."""
    out = cluster.kubectl(
        "delete",
        "pods",
        "--all-namespaces",
        "--field-selector",
        f"spec.nodeName={cfg.name}",
        "--grace-period=0",
        "--force",
        "--wait=false",
        check=False,
        timeout=30,
    )
    if out.returncode != 0:
        return
    paths = Paths(cfg.state)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = ctr(paths, "tasks", "ls", check=False)
        # Columns: TASK PID STATUS; a stopped task stays listed until it is deleted.
        if tasks.returncode != 0 or "RUNNING" not in tasks.stdout.split():
            return
        time.sleep(0.5)


def stop(cluster: ControlPlane, cfg: NodeConfig) -> None:
    """Drain while the control plane runs, stop the kubelet, kill whatever still runs in
    containerd, then containerd; every host path, mount, namespace, cgroup and sysctl the
    node touched is put back."""
    paths = Paths(cfg.state)
    if cluster.procs["kube-apiserver"].alive() and cluster.procs["kubelet"].alive():
        drain(cluster, cfg)
    cluster.procs["kubelet"].stop()
    if cluster.procs["containerd"].alive():
        _kill_containers(paths)
    cluster.procs["containerd"].stop()
    _kill_stray_shims(paths)
    _unmount_under(paths.run, paths.containerd_root, paths.kubelet_root)
    shutil.rmtree(paths.run, ignore_errors=True)
    for folder in (settings.SHIM_SOCKETS_DIR, settings.SHIM_SOCKETS_DIR.parent, paths.run.parent):
        _rmdir(folder)
    _remove_cni_results(cfg)
    _remove_log_links(paths)
    _remove_device_plugins_dir()
    shutil.rmtree(cfg.state / "ipam", ignore_errors=True)
    _restore_tunables(paths)
    _remove_cgroup_tree(settings.cgroup_root(cfg))


def _kill_containers(paths: Paths) -> None:
    ids = ctr(paths, "containers", "ls", "-q", check=False).stdout.split()
    netns: set[str] = set()
    for cid in ids:
        info = ctr(paths, "containers", "info", cid, check=False)
        try:
            spec = json.loads(info.stdout).get("Spec", {})
        except ValueError:
            spec = {}
        for ns in spec.get("linux", {}).get("namespaces", []):
            # CRI names /var/run/netns/cni-<id>, which is /run/netns/cni-<id>.
            name = Path(ns.get("path", "")).name
            if ns.get("type") == "network" and name and (NETNS_DIR / name).exists():
                netns.add(name)
        ctr(paths, "tasks", "kill", "--signal", "SIGKILL", cid, check=False)
    for cid in ids:
        ctr(paths, "tasks", "delete", "--force", cid, check=False, timeout=30)
        ctr(paths, "containers", "delete", cid, check=False, timeout=30)
    for name in netns:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _kill_stray_shims(paths: Paths) -> None:
    address = str(paths.containerd_socket)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and address.encode() in argv:
            try:
                os.kill(int(proc.name), 9)
            except ProcessLookupError:
                pass


def _unmount_under(*roots: Path) -> None:
    prefixes = tuple(str(r.resolve()) for r in roots)
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefixes):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _remove_cni_results(cfg: NodeConfig) -> None:
    if not settings.CNI_RESULTS_DIR.exists():
        return
    for f in settings.CNI_RESULTS_DIR.glob(f"{settings.cni_network(cfg)}-*"):
        f.unlink(missing_ok=True)
    for folder in (settings.CNI_RESULTS_DIR, settings.CNI_RESULTS_DIR.parent):
        _rmdir(folder)


def _remove_log_links(paths: Paths) -> None:
    logs = settings.CONTAINER_LOGS_DIR
    if not logs.exists():
        return
    ours = str(paths.pod_logs)
    for link in logs.iterdir():
        if link.is_symlink() and os.readlink(link).startswith(ours):
            link.unlink()
    _rmdir(logs)


def _remove_device_plugins_dir() -> None:
    folder = settings.DEVICE_PLUGINS_DIR
    if folder.exists():
        (folder / "kubelet_internal_checkpoint").unlink(missing_ok=True)
        for sock in folder.glob("kubelet.sock"):
            sock.unlink(missing_ok=True)
        for f in (folder, folder.parent):
            _rmdir(f)
