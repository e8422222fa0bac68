"""The local control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and either kwok (simulated nodes) or the real node (arenastack_cluster.node),
built from upstream by hack/toolchain.sh and run as local processes with their state, logs
and kubeconfigs in one folder."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from arenastack_cluster import nodes
from arenastack_cluster.certs import CLIENTS, ensure_pki
from arenastack_cluster.layout import (  # noqa: F401 (REPO_ROOT, CHART_DIR: callers' names)
    CHART_DIR,
    CLUSTER_DOMAIN,
    REPO_ROOT,
    SERVICE_CIDR,
    TOOLCHAIN_SCRIPT,
)
from arenastack_cluster.node import kubelet
from arenastack_cluster.node import profile as localprofile
from arenastack_cluster.processes import (
    ClusterError,
    Process,
    free_port,
    http_status,
    require_free,
    run_tool,
    wait_for,
)

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# The local profile runs pods for real: the upstream kubelet with containerd.
LOCAL_COMPONENTS = (*COMPONENTS[:4], "containerd", "kubelet", "kube-proxy", "coredns")
LOOPBACK = "127.0.0.1"
# Controllers the tests and the operator rely on, named as kube-controller-manager
# names them; the rest of its defaults stay on too.
CONTROLLERS = "*"


def toolchain_bin(build: bool = True, part: str = "controlplane") -> Path:
    """The folder with the pinned binaries; builds what `part` needs first
    (controlplane or monitoring)."""
    argv = [str(TOOLCHAIN_SCRIPT), part] if build else [str(TOOLCHAIN_SCRIPT), "--path"]
    # Progress lines pass through to the terminal on stderr; stdout is the path.
    proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise ClusterError("building the control-plane toolchain failed; see the lines above")
    return Path(proc.stdout.strip())


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def pick(cls) -> Ports:
        fixed = os.environ.get("ARENASTACK_APISERVER_PORT")
        if fixed:
            require_free(int(fixed), "kube-apiserver (ARENASTACK_APISERVER_PORT)")
        return cls(
            etcd_client=free_port(),
            etcd_peer=free_port(),
            apiserver=int(fixed) if fixed else free_port(),
            controller_manager=free_port(),
            scheduler=free_port(),
            kwok=free_port(),
        )


class LocalCluster:
    """A control plane whose state lives in ``state``; safe to `up` repeatedly."""

    def __init__(
        self,
        state: Path | None = None,
        profile: str = "kwok",
        pod_cidr: str | None = None,
    ) -> None:
        default = os.environ.get("ARENASTACK_STATE") or REPO_ROOT / ".state" / f"cluster-{profile}"
        self.state = Path(state or default).resolve()
        self.profile = profile
        self.pki = self.state / "pki"
        self.kubeconfig = self.state / "kubeconfig"
        self.components = LOCAL_COMPONENTS if profile == "local" else COMPONENTS
        self.procs = {name: Process(self.state, name) for name in self.components}
        self.pod_cidr = pod_cidr
        self._bin: Path | None = None

    # -- paths and access ------------------------------------------------
    @property
    def bin(self) -> Path:
        if self._bin is None:
            recorded = self._read_meta().get("bin")
            self._bin = Path(recorded) if recorded else toolchain_bin(build=False)
        return self._bin

    @property
    def host(self) -> str:
        """Where the apiserver listens: loopback, or the local node's bridge address."""
        return self._read_meta().get("host", LOOPBACK)

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self._read_meta()['ports']['apiserver']}"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        prefix = [str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig)]
        return run_tool("kubectl", prefix, args, check=check, timeout=timeout, input=input)

    def helm(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """helm against this cluster, with its caches and config kept in the state folder."""
        home = self.state / "helm"
        prefix = [str(self.bin / "helm"), "--kubeconfig", str(self.kubeconfig)]
        env = {
            f"HELM_{part.upper()}_HOME": str(home / part) for part in ("cache", "config", "data")
        }
        return run_tool("helm", prefix, args, check=check, timeout=timeout, env=env)

    def apply_crds(self, files: list[Path]) -> list[str]:
        """Server-side apply CRD files and wait until each is Established; returns names."""
        names = []
        for f in files:
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f))
            names.extend(d["metadata"]["name"] for d in yaml.safe_load_all(f.read_text()) if d)
        crds = [f"crd/{n}" for n in names]
        # Right after creation a CRD has no conditions yet and `kubectl wait` errors
        # out instead of waiting, so ask again until it answers.
        wait_for(
            "CRDs to be Established",
            lambda: (
                self.kubectl(
                    "wait", "--for=condition=Established", "--timeout=10s", *crds, check=False
                ).returncode
                == 0
            ),
            60,
        )
        return names

    def service_account_kubeconfig(self, namespace: str, sa: str, path: Path) -> Path:
        """Write a kubeconfig for ServiceAccount `sa` with a TokenRequest token, so
        whatever uses it runs with that account's RBAC and nothing more."""
        token = self.kubectl("create", "token", sa, "-n", namespace, "--duration=8h").stdout.strip()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": sa, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "local",
                    "context": {"cluster": "local", "user": sa, "namespace": namespace},
                }
            ],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def _read_meta(self) -> dict:
        try:
            return json.loads((self.state / "cluster.json").read_text())
        except (OSError, ValueError):
            return {}

    # -- lifecycle --------------------------------------------------------
    def healthy(self) -> bool:
        meta = self._read_meta()
        if not meta or not all(p.alive() for p in self.procs.values()):
            return False
        return self._get(f"{self.server}/readyz") == 200

    def up(self, cpu_nodes: int = 4, gpu_nodes: int = 4, log=print) -> None:  # noqa: ANN001
        if self.healthy():
            log(f"cluster: already running ({self.server}); kubeconfig {self.kubeconfig}")
            return
        t0 = time.monotonic()
        self.down(quiet=True)
        self._bin = toolchain_bin(build=True)
        ports = Ports.pick()
        (self.state / "etcd").mkdir(parents=True, exist_ok=True)
        host = LOOPBACK
        if self.profile == "local":
            host = localprofile.prepare(self, ports.apiserver, self.pod_cidr).host_ip
        ensure_pki(self.pki, extra_ips=() if host == LOOPBACK else (host,))
        # Written before any process starts so `down` can always find them.
        meta = {"ports": ports.__dict__, "bin": str(self._bin), "profile": self.profile}
        meta["host"] = host
        stems = [client.file_stem for client in CLIENTS]
        if self.profile == "local":
            kubelet.prepare_pki(self, localprofile.node_config(self))
            stems.append("node")
        for stem in stems:
            self._write_kubeconfig(stem, host, ports.apiserver)
        (self.state / "cluster.json").write_text(json.dumps(meta, indent=2))
        (self.state / "kubeconfig").write_text((self.state / "admin.kubeconfig").read_text())

        self._start_etcd(ports)
        log(f"cluster: etcd ready on 127.0.0.1:{ports.etcd_client}")
        self._start_apiserver(ports)
        log(f"cluster: kube-apiserver ready on https://{host}:{ports.apiserver}")
        self._start_controller_manager(ports)
        self._start_scheduler(ports)
        log("cluster: kube-controller-manager and kube-scheduler healthy")
        if self.profile == "local":
            localprofile.start(self, log)
            self._wait_nodes_ready(1)
            self._wait_default_service_account()
            log(f"cluster: local node ready in {time.monotonic() - t0:.0f} s; kubeconfig "
                f"{self.kubeconfig}")  # fmt: skip
            return
        self._start_kwok(ports)
        nodes.register(self, cpu_nodes, gpu_nodes)
        self._wait_nodes_ready(cpu_nodes + gpu_nodes)
        self._wait_default_service_account()
        log(
            f"cluster: {cpu_nodes} CPU + {gpu_nodes} GPU simulated nodes ready "
            f"in {time.monotonic() - t0:.0f} s; kubeconfig {self.kubeconfig}"
        )

    def down(self, quiet: bool = False) -> None:
        if self.profile == "local":
            # First, while the control plane still answers: pods are drained the normal way.
            localprofile.stop_node(self)
        for name in reversed(self.components):
            self.procs[name].stop()
        if self.profile == "local":
            localprofile.stop(self)
        shutil.rmtree(self.state / "etcd", ignore_errors=True)
        (self.state / "cluster.json").unlink(missing_ok=True)
        if not quiet:
            print(f"cluster: stopped; logs kept in {self.state / 'logs'}")

    def status(self) -> dict[str, str]:
        meta = self._read_meta()
        out = {}
        for name, proc in self.procs.items():
            out[name] = f"running (pid {proc.pid})" if proc.alive() else "stopped"
        if meta and self.procs["kube-apiserver"].alive():
            ok = self._get(f"{self.server}/readyz") == 200
            out["kube-apiserver"] += ", ready" if ok else ", NOT ready"
        return out

    # -- components -------------------------------------------------------
    def _start_etcd(self, ports: Ports) -> None:
        peer = f"http://127.0.0.1:{ports.etcd_peer}"
        client = f"http://127.0.0.1:{ports.etcd_client}"
        self.procs["etcd"].start(
            [
                str(self.bin / "etcd"),
                "--name=local",
                f"--data-dir={self.state / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=local={peer}",
                "--listen-metrics-urls=",
                # A throwaway development store: fsync buys nothing and costs seconds.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ]
        )
        wait_for(
            "etcd", lambda: self._get(f"{client}/health", tls=False) == 200, 30, self.procs["etcd"]
        )

    def _start_apiserver(self, ports: Ports) -> None:
        pki = self.pki
        host = self.host
        # The local profile's pods reach the apiserver at the node's bridge address, and
        # the `kubernetes` Service's endpoints must name it; kwok's stay as they were.
        local = ["--endpoint-reconciler-type=lease", "--kubelet-preferred-address-types=InternalIP"]
        self.procs["kube-apiserver"].start(
            [
                str(self.bin / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
                f"--secure-port={ports.apiserver}",
                f"--bind-address={host}",
                f"--advertise-address={host}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                *(local if self.profile == "local" else ["--endpoint-reconciler-type=none"]),
                *(kubelet.apiserver_flags(self) if self.profile == "local" else []),
                "--v=1",
            ]
        )
        url = f"https://{host}:{ports.apiserver}/readyz"
        wait_for("kube-apiserver", lambda: self._get(url) == 200, 90, self.procs["kube-apiserver"])

    def _start_controller_manager(self, ports: Ports) -> None:
        self._start_control_loop(
            "kube-controller-manager",
            "controller-manager",
            ports.controller_manager,
            [
                f"--controllers={CONTROLLERS}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )

    def _start_scheduler(self, ports: Ports) -> None:
        self._start_control_loop("kube-scheduler", "scheduler", ports.scheduler, [])

    def _start_control_loop(self, name: str, identity: str, port: int, extra: list[str]) -> None:
        """kube-controller-manager and kube-scheduler: same credentials, serving and health."""
        kc = str(self.state / f"{identity}.kubeconfig")
        self.procs[name].start(
            [
                str(self.bin / name),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                f"--secure-port={port}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                "--v=1",
                *extra,
            ]
        )
        url = f"https://127.0.0.1:{port}/healthz"
        wait_for(name, lambda: self._get(url) == 200, 60, self.procs[name])

    def _start_kwok(self, ports: Ports) -> None:
        self.procs["kwok"].start(
            [
                str(self.bin / "kwok"),
                f"--kubeconfig={self.state / 'kwok.kubeconfig'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={nodes.KWOK_ANNOTATION}=fake",
                "--manage-nodes-with-label-selector=",
                f"--disregard-status-with-annotation-selector={nodes.KWOK_STATUS_ANNOTATION}=custom",
                "--disregard-status-with-label-selector=",
                "--cidr=10.244.0.1/16",
                "--node-ip=10.244.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{ports.kwok}",
            ]
        )
        url = f"http://127.0.0.1:{ports.kwok}/healthz"
        wait_for("kwok", lambda: self._get(url, tls=False) == 200, 60, self.procs["kwok"])

    # -- helpers ----------------------------------------------------------
    def _write_kubeconfig(self, stem: str, host: str, port: int) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "arenastack-local",
                    "cluster": {
                        "server": f"https://{host}:{port}",
                        "certificate-authority": str(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": stem,
                    "user": {
                        "client-certificate": str(self.pki / f"{stem}.crt"),
                        "client-key": str(self.pki / f"{stem}.key"),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "arenastack-local",
                    "context": {"cluster": "arenastack-local", "user": stem},
                }
            ],
            "current-context": "arenastack-local",
        }
        path = self.state / f"{stem}.kubeconfig"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        # kube-controller-manager and kube-scheduler serve self-signed certificates.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _get(self, url: str, tls: bool = True) -> int | None:
        return http_status(url, self._ssl() if tls else None)

    def _wait_nodes_ready(self, count: int) -> None:
        def ready() -> bool:
            out = self.kubectl("get", "nodes", "-o", "json", check=False)
            if out.returncode != 0:
                return False
            items = json.loads(out.stdout)["items"]
            ready_nodes = [
                n
                for n in items
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
            ]
            return len(ready_nodes) >= count

        node_proc = self.procs["kubelet" if self.profile == "local" else "kwok"]
        wait_for("the nodes", ready, 60, node_proc)

    def _wait_default_service_account(self) -> None:
        # Pods cannot be created in a namespace until its default ServiceAccount exists.
        wait_for(
            "the default ServiceAccount",
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            60,
            self.procs["kube-controller-manager"],
        )
