"""The node agent: `python -m arenastack_cluster.localnode.agent --config node.json`.

Registers the Node, keeps its status and Lease fresh, watches the pods bound
to it and gives each a PodRunner. On start it adopts containers a previous
agent left running (their shims outlive it) and removes what belongs to pods
that no longer exist.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import logging
import os
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path

import requests

from arenastack_cluster.localnode import mountpoints, network
from arenastack_cluster.localnode.config import KUBELET_PORT, NodeConfig
from arenastack_cluster.localnode.images import ImageMap
from arenastack_cluster.localnode.kube import ApiError, Kube
from arenastack_cluster.localnode.pod import NodeServices, PodRunner
from arenastack_cluster.nodes import GPU_LABELS, GPU_RESOURCE

log = logging.getLogger("localnode")
HEARTBEAT = 10.0
LEASE_SECONDS = 40
KUBELET_VERSION = "v1.34.4-localnode"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Agent:
    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.kube = Kube(cfg.kubeconfig)
        self.images = ImageMap.load(cfg.images_config)
        self.runners: dict[str, PodRunner] = {}
        # The watch adds runners, their own threads remove them.
        self.runners_lock = threading.Lock()
        self.stopping = threading.Event()
        self.capacity = {
            "cpu": cfg.cpu,
            "memory": cfg.memory,
            "pods": str(cfg.max_pods),
            "ephemeral-storage": "100Gi",
        }
        if cfg.gpus:
            self.capacity[GPU_RESOURCE] = str(cfg.gpus)
        self.services = NodeServices(
            cfg=cfg,
            images=self.images,
            fetch=self.fetch,
            token=self.token,
            patch_status=self.patch_status,
            event=self.event,
            finalize=self.finalize,
            base_env=self.base_env,
            allocatable=dict(self.capacity),
            ipam=network.Ipam(cfg),
            release_mounts=self.release_mounts,
        )
        self.mounts = mountpoints.Registry(cfg.state / "mountpoints.json")

    # -- node and lease ----------------------------------------------------
    def _node_status(self) -> dict:
        now = _now()

        def cond(kind: str, status: str, reason: str, message: str) -> dict:
            return {"type": kind, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": self.started_at}  # fmt: skip

        return {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "addresses": [{"type": "InternalIP", "address": self.cfg.host_ip}],
            "daemonEndpoints": {
                "kubeletEndpoint": {"Port": self.cfg.extra.get("kubelet_port", KUBELET_PORT)}
            },
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "enough PIDs"),
                cond("Ready", "True", "KubeletReady", "localnode agent is posting ready status"),
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "localnode://processes",
                "osImage": "arenastack local node",
                "kernelVersion": os.uname().release,
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }

    def register(self) -> None:
        self.started_at = _now()
        labels = {
            "kubernetes.io/hostname": self.cfg.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "localnode",
            "arenastack.io/localnode": "true",
        }
        if self.cfg.gpus:
            labels.update({**GPU_LABELS, "nvidia.com/gpu.count": str(self.cfg.gpus)})
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.cfg.name, "labels": labels},
            "spec": {"podCIDR": self.cfg.pod_cidr, "podCIDRs": [self.cfg.pod_cidr]},
        }
        path = f"/api/v1/nodes/{self.cfg.name}"
        if self.kube.get_or_none(path) is None:
            self.kube.create("/api/v1/nodes", node)
        else:
            self.kube.merge_patch(path, {"metadata": {"labels": labels}})
        self.heartbeat()

    def heartbeat(self) -> None:
        self.kube.merge_patch(
            f"/api/v1/nodes/{self.cfg.name}/status", {"status": self._node_status()}
        )
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.cfg.name}"
        spec = {"holderIdentity": self.cfg.name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": _micro_now()}  # fmt: skip
        try:
            self.kube.merge_patch(path, {"spec": spec})
        except ApiError as err:
            if err.status != 404:
                raise
            self.kube.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {"metadata": {"name": self.cfg.name}, "spec": spec},
            )

    def _heartbeat_loop(self) -> None:
        while not self.stopping.wait(HEARTBEAT):
            try:
                self.heartbeat()
            except Exception as err:
                log.warning("heartbeat failed: %s", err)

    # -- services for pod runners -------------------------------------------
    def fetch(self, kind: str, ns: str, name: str) -> dict[str, bytes] | None:
        plural = "configmaps" if kind == "configmap" else "secrets"
        obj = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/{plural}/{name}")
        if obj is None:
            return None
        out: dict[str, bytes] = {}
        if kind == "configmap":
            out.update({k: v.encode() for k, v in (obj.get("data") or {}).items()})
            out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            out.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
            out.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
        return out

    def token(
        self, ns: str, sa: str, audience: str | None, seconds: int, pod: dict
    ) -> tuple[str, float]:
        spec: dict = {
            "expirationSeconds": seconds,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                               "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
        }  # fmt: skip
        if audience:
            spec["audiences"] = [audience]
        resp = self.kube.create(
            f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        expires = dt.datetime.fromisoformat(
            resp["status"]["expirationTimestamp"].replace("Z", "+00:00")
        )
        return resp["status"]["token"], expires.timestamp()

    def patch_status(self, pod: dict, status: dict) -> None:
        meta = pod["metadata"]
        try:
            self.kube.merge_patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                {"metadata": {"uid": meta["uid"]}, "status": status},
            )
        except ApiError as err:
            if err.status not in (404, 409):
                raise

    def event(self, pod: dict, kind: str, reason: str, message: str) -> None:
        meta = pod["metadata"]
        now = _now()
        body = {
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                         "namespace": meta["namespace"]},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": meta["namespace"],
                               "name": meta["name"], "uid": meta["uid"]},
            "reason": reason, "message": message, "type": kind,
            "source": {"component": "kubelet", "host": self.cfg.name},
            "reportingComponent": "kubelet", "reportingInstance": self.cfg.name,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }  # fmt: skip
        try:
            self.kube.create(f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except (ApiError, requests.RequestException) as err:
            # Events are best effort, as the kubelet's are.
            log.warning("event for %s: %s", meta["name"], err)

    def finalize(self, pod: dict, delete: bool) -> None:
        """The kubelet's last word on a pod: delete it for good once its processes are gone."""
        meta = pod["metadata"]
        with self.runners_lock:
            self.runners.pop(meta["uid"], None)
        if not delete:
            return
        try:
            self.kube.delete(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )
        except ApiError as err:
            if err.status not in (404, 409):
                log.warning("final delete of %s: %s", meta["name"], err)

    def release_mounts(self, uid: str, created: set[str]) -> None:
        with self.runners_lock:
            others = [r for u, r in self.runners.items() if u != uid]
        in_use = mountpoints.with_parents(p for r in others for p in r.mount_points())
        self.mounts.sweep(created, in_use)

    def base_env(self, pod: dict) -> dict[str, str]:
        """Service environment variables, as the kubelet injects them."""
        env: dict[str, str] = {}
        ns = pod["metadata"]["namespace"]
        services = []
        if pod["spec"].get("enableServiceLinks", True):
            services = self.kube.get(f"/api/v1/namespaces/{ns}/services")["items"]
        if ns != "default":
            k8s = self.kube.get_or_none("/api/v1/namespaces/default/services/kubernetes")
            services += [k8s] if k8s else []
        for svc in services:
            ip = svc["spec"].get("clusterIP")
            if not ip or ip == "None":
                continue
            name = svc["metadata"]["name"].upper().replace("-", "_")
            ports = svc["spec"].get("ports") or []
            if not ports:
                continue
            first = ports[0]
            env[f"{name}_SERVICE_HOST"] = ip
            env[f"{name}_SERVICE_PORT"] = str(first["port"])
            env[f"{name}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
            for p in ports:
                proto = p.get("protocol", "TCP")
                base = f"{name}_PORT_{p['port']}_{proto}"
                env[base] = f"{proto.lower()}://{ip}:{p['port']}"
                env[f"{base}_PROTO"] = proto.lower()
                env[f"{base}_PORT"] = str(p["port"])
                env[f"{base}_ADDR"] = ip
                if p.get("name"):
                    env[f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(
                        p["port"]
                    )
        env.update(self.cfg.extra.get("env", {}))
        return env

    # -- pods ------------------------------------------------------------
    def _on_pod(self, kind: str, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        with self.runners_lock:
            runner = self.runners.get(uid)
            if runner is None and kind != "DELETED":
                runner = self.runners[uid] = PodRunner(pod, self.services)
                runner.start()
                return
        if runner is None:
            return
        if kind == "DELETED":
            runner.deleted()
        else:
            runner.update(pod)

    def _cleanup_orphans(self, pods: list[dict]) -> None:
        live = {p["metadata"]["uid"] for p in pods}
        specs = [
            c for p in pods for c in p["spec"]["containers"] + p["spec"].get("initContainers", [])
        ]
        in_use = mountpoints.with_parents(
            m["mountPath"] for c in specs for m in c.get("volumeMounts") or []
        )
        if not self.cfg.pods_dir.exists():
            return
        for pod_dir in self.cfg.pods_dir.iterdir():
            if pod_dir.name not in live:
                log.info("removing leftovers of pod %s", pod_dir.name)
                self.mounts.sweep(kill_pod_dir(pod_dir), in_use)
                network.sandbox_down(self.cfg, pod_dir.name)
                self.services.ipam.release(pod_dir.name)
        for uid in set(self.services.ipam.owners()) - live:
            self.services.ipam.release(uid)

    def _watch_loop(self) -> None:
        selector = f"spec.nodeName={self.cfg.name}"
        first = True
        while not self.stopping.is_set():
            try:
                listing = self.kube.get("/api/v1/pods", fieldSelector=selector)
                live = {p["metadata"]["uid"] for p in listing["items"]}
                if first:
                    self._cleanup_orphans(listing["items"])
                    first = False
                with self.runners_lock:
                    vanished = [r for u, r in self.runners.items() if u not in live]
                for runner in vanished:
                    runner.deleted()
                for pod in listing["items"]:
                    self._on_pod("ADDED", pod)
                rv = listing["metadata"]["resourceVersion"]
                for ev in self.kube.watch("/api/v1/pods", rv, fieldSelector=selector):
                    if ev["type"] == "ERROR":
                        break
                    if ev["type"] == "BOOKMARK":
                        continue
                    self._on_pod(ev["type"], ev["object"])
                    if self.stopping.is_set():
                        return
            except Exception as err:
                log.warning("pod watch: %s; relisting", err)
                time.sleep(1)

    def run(self) -> None:
        self.cfg.pods_dir.mkdir(parents=True, exist_ok=True)
        network.bridge_up(self.cfg)
        self.register()
        threading.Thread(target=self._heartbeat_loop, daemon=True, name="heartbeat").start()
        from arenastack_cluster.localnode import kubeletserver

        kubeletserver.serve(self.cfg, self.stopping)
        log.info(
            "node %s ready on %s (pods %s)", self.cfg.name, self.cfg.host_ip, self.cfg.pod_cidr
        )
        self._watch_loop()


def kill_pod_dir(pod_dir: Path) -> set[str]:
    """SIGKILL every shim recorded for a pod (its PID namespaces take the processes with
    them) and remove its folder; returns the mount points its containers created."""
    try:
        data = json.loads((pod_dir / "state.json").read_text())
    except (OSError, ValueError):
        data = {}
    for rec in data.get("containers", []):
        pid = rec.get("pid")
        if pid and rec.get("current_done") is None and _is_shim(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    created = mountpoints.created_by(pod_dir)
    shutil.rmtree(pod_dir, ignore_errors=True)
    return created


def _is_shim(pid: int) -> bool:
    try:
        return b"arenastack_cluster.localnode.shim" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    agent = Agent(NodeConfig.load(args.config))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    agent.run()


if __name__ == "__main__":
    main()
