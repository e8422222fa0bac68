"""One pod on the local node: sandbox, volumes, init containers, containers,
restarts with back-off, probes, status, and deletion with its grace period."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from arenastack_cluster.localnode import mountpoints, network, volumes
from arenastack_cluster.localnode.config import REPO_ROOT, NodeConfig
from arenastack_cluster.localnode.container import ContainerRun, Terminated, rfc3339
from arenastack_cluster.localnode.envresolve import (
    ConfigError,
    EnvContext,
    command_line,
    container_env,
)
from arenastack_cluster.localnode.images import ImageMap, ImageNotMapped
from arenastack_cluster.localnode.kube import ApiError
from arenastack_cluster.localnode.probes import Prober, ProbeTarget, nsenter_prefix, run_once

log = logging.getLogger("localnode.pod")
TICK = 0.2
RETRY = 2.0
# A container that ran this long without failing has its back-off reset (kubelet: 10 min).
BACKOFF_RESET = 600.0
DEFAULT_GRACE = 30


@dataclass
class NodeServices:
    """What a pod runner needs from the agent."""

    cfg: NodeConfig
    images: ImageMap
    fetch: volumes.Fetch
    token: volumes.TokenSource
    patch_status: Callable[[dict, dict], None]
    event: Callable[[dict, str, str, str], None]
    finalize: Callable[[dict, bool], None]
    release_mounts: Callable[[str, set[str]], None]
    base_env: Callable[[dict], dict[str, str]]
    allocatable: dict[str, str]
    ipam: network.Ipam


class PodRunner(threading.Thread):
    def __init__(self, pod: dict, svc: NodeServices) -> None:
        super().__init__(daemon=True, name=f"pod-{pod['metadata']['name']}")
        self.svc = svc
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.dir = svc.cfg.pods_dir / self.uid
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.gone = False  # the API object no longer exists
        self.stop_agent = threading.Event()
        self.ip: str | None = None
        self.netns: Path | None = None
        self.vols: volumes.Volumes | None = None
        self.failed_reason: tuple[str, str] | None = None
        self.last_status: dict | None = None
        self.terminal = False
        self.start_time = rfc3339(time.time())
        self.transitions: dict[str, tuple[str, str]] = {}
        spec = pod["spec"]
        self.inits = [
            ContainerRun(c["name"], True, c, self.dir) for c in spec.get("initContainers") or []
        ]
        self.mains = [ContainerRun(c["name"], False, c, self.dir) for c in spec["containers"]]
        self.probers: dict[str, list[Prober]] = {}
        self.init_done = not self.inits
        self.host_network = bool(spec.get("hostNetwork"))
        self._load_state()

    # -- inputs from the agent --------------------------------------------
    def update(self, pod: dict) -> None:
        with self.lock:
            self.pod = pod
        self.wake.set()

    def deleted(self) -> None:
        self.gone = True
        self.wake.set()

    # -- persistence -------------------------------------------------------
    def _state_file(self) -> Path:
        return self.dir / "state.json"

    def _save_state(self) -> None:
        data = {
            "namespace": self.pod["metadata"]["namespace"],
            "name": self.pod["metadata"]["name"],
            "ip": self.ip,
            "init_done": self.init_done,
            "containers": [c.to_json() for c in self.inits + self.mains],
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self._state_file())

    def _load_state(self) -> None:
        """Adopt what a previous agent left running: same processes, same counts."""
        try:
            data = json.loads(self._state_file().read_text())
        except (OSError, ValueError):
            return
        by_name = {c.name: c for c in self.inits + self.mains}
        for rec in data.get("containers", []):
            if rec["name"] in by_name:
                by_name[rec["name"]].load(rec)
        self.init_done = data.get("init_done", self.init_done)
        if data.get("ip") and (self.host_network or network.sandbox_exists(self.uid)):
            self.ip = data["ip"]
            if not self.host_network:
                self.netns = network.NETNS_DIR / network.netns_name(self.uid)

    # -- main loop ---------------------------------------------------------
    def run(self) -> None:
        # A failed step (the apiserver unreachable for a while, say) is retried: the
        # pod's processes must never be left without an owner.
        while not self.stop_agent.is_set():
            try:
                self._run()
                return
            except (ApiError, requests.RequestException) as err:
                log.warning("pod %s: %s; retrying", self.pod_name, err)
            except Exception:
                log.exception("pod %s: step failed in the agent; retrying", self.pod_name)
            self.stop_agent.wait(RETRY)

    @property
    def pod_name(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    def _run(self) -> None:
        if (
            self.last_status is None
            and self.pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
            and not self.ip
        ):
            # Finished before this agent started: nothing to run, only deletion to honour.
            self.terminal = True
            self.last_status = self.pod.get("status")
        while not self.stop_agent.is_set():
            with self.lock:
                pod = self.pod
            if self.gone or pod["metadata"].get("deletionTimestamp"):
                self._delete_pod(pod)
                return
            if not self.terminal:
                self._tick(pod)
            self.wake.wait(TICK)
            self.wake.clear()

    def _tick(self, pod: dict) -> None:
        if self.failed_reason is None and self.ip is None:
            self._setup(pod)
        if self.failed_reason is None and self.ip is not None:
            self._step(pod)
        status = self._status(pod)
        if status != self.last_status:
            self.svc.patch_status(pod, status)
            self.last_status = status
            self._save_state()
        if status["phase"] in ("Succeeded", "Failed"):
            # Like the kubelet: a finished pod keeps its status, not its sandbox.
            self.terminal = True
            self._stop_probers()
            self._release_network()

    # -- set-up ------------------------------------------------------------
    def _setup(self, pod: dict) -> None:
        try:
            for c in self.inits + self.mains:
                self.svc.images.resolve(c.spec["image"])
        except ImageNotMapped as err:
            self.failed_reason = (err.reason, str(err))
            for c in self.inits + self.mains:
                c.record.waiting_reason, c.record.waiting_message = "ErrImagePull", str(err)
            self.svc.event(pod, "Warning", "Failed", str(err))
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.host_network:
            # The host's own network: the node's address, the host's port space.
            self.ip = self.svc.cfg.host_ip
        else:
            ip = self.svc.ipam.allocate(self.uid)
            self.netns = network.sandbox_up(self.svc.cfg, self.uid, ip)
            self.ip = ip
        self._write_etc(pod)
        self._save_state()

    def _write_etc(self, pod: dict) -> None:
        cfg = self.svc.cfg
        meta = pod["metadata"]
        hostname = pod["spec"].get("hostname") or meta["name"]
        fqdn = ""
        if pod["spec"].get("subdomain"):
            sub = pod["spec"]["subdomain"]
            fqdn = f"{hostname}.{sub}.{meta['namespace']}.svc.{cfg.cluster_domain}"
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 f"{self.ip}\t{fqdn + chr(9) if fqdn else ''}{hostname}"]  # fmt: skip
        for alias in pod["spec"].get("hostAliases") or []:
            lines.append(f"{alias['ip']}\t{' '.join(alias.get('hostnames', []))}")
        etc = self.dir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        ns = meta["namespace"]
        d = cfg.cluster_domain
        search = f"{ns}.svc.{d} svc.{d} {d}"
        dns = cfg.dns_ip or cfg.bridge_ip
        (etc / "resolv.conf").write_text(f"search {search}\nnameserver {dns}\noptions ndots:5\n")
        (etc / "hostname").write_text(hostname + "\n")

    def _ensure_volumes(self, pod: dict) -> bool:
        if self.vols is not None:
            volumes.refresh_tokens(pod, self.vols, self.svc.token, time.monotonic())
            return True
        try:
            self.vols = volumes.materialise(
                pod, self.dir / "volumes", self.svc.fetch, self.svc.token, self.svc.allocatable
            )
            return True
        except ConfigError as err:
            for c in self.inits + self.mains:
                if not c.running and c.record.current_done is None:
                    c.record.waiting_reason = "CreateContainerConfigError"
                    c.record.waiting_message = str(err)
            return False

    # -- running containers --------------------------------------------------
    def _step(self, pod: dict) -> None:
        if not self._ensure_volumes(pod):
            return
        policy = pod["spec"].get("restartPolicy", "Always")
        if not self.init_done:
            for c in self.inits:
                done = c.poll(self.uid)
                if c.running:
                    return
                if done is not None and done.exit_code == 0:
                    continue
                if done is not None:  # failed
                    if policy == "Never":
                        return
                    if not self._restart_due(c, done):
                        return
                self._start(pod, c)
                return
            self.init_done = True
            self._save_state()
        for c in self.mains:
            done = c.poll(self.uid)
            if c.running:
                continue
            if c.record.instance < 0:
                self._start(pod, c)
                continue
            if done is None:
                continue
            restart = policy == "Always" or (policy == "OnFailure" and done.exit_code != 0)
            if restart and self._restart_due(c, done):
                self._start(pod, c)

    def _restart_due(self, c: ContainerRun, done: Terminated) -> bool:
        rec = c.record
        now = time.time()
        if rec.next_start == 0.0:
            ran = done.finished_at - done.started_at
            if ran >= BACKOFF_RESET:
                rec.backoff = 0.0
            delay = rec.backoff
            rec.backoff = min(
                max(rec.backoff * 2, self.svc.cfg.backoff_base), self.svc.cfg.backoff_cap
            )
            rec.next_start = now + delay
            if delay > 0:
                rec.waiting_reason = "CrashLoopBackOff"
                rec.waiting_message = (
                    f"back-off {delay:g}s restarting failed container={c.name} "
                    f"pod={self.pod['metadata']['name']}"
                )
                self.svc.event(self.pod, "Warning", "BackOff", rec.waiting_message)
        return now >= rec.next_start

    def _start(self, pod: dict, c: ContainerRun) -> None:
        rec = c.record
        runtime = self.svc.images.resolve(c.spec["image"])
        view = {**pod, "status": {**pod.get("status", {}), "podIP": self.ip,
                                   "podIPs": [{"ip": self.ip}], "hostIP": self.svc.cfg.host_ip,
                                   "hostIPs": [{"ip": self.svc.cfg.host_ip}]}}  # fmt: skip
        ctx = EnvContext(view, self._text_lookup, self.svc.allocatable, self.svc.base_env(pod))
        try:
            env = container_env(ctx, c.spec, runtime.environ())
            env.setdefault("HOSTNAME", pod["spec"].get("hostname") or pod["metadata"]["name"])
            argv = command_line(c.spec, env, runtime.entrypoint, runtime.cmd)
            mounts = self._mounts(c, runtime.volumes)
        except ConfigError as err:
            rec.waiting_reason, rec.waiting_message = "CreateContainerConfigError", str(err)
            return
        if rec.instance >= 0:
            rec.last = rec.current_done
            rec.restart_count += 1
        rec.next_start = 0.0
        # Without a workingDir an image would start in its own WORKDIR; here that is a
        # folder of the container's.
        workdir = c.spec.get("workingDir")
        if not workdir:
            workdir = str(c.dir / "workdir")
            Path(workdir).mkdir(parents=True, exist_ok=True)
        c.start(
            {
                "argv": argv,
                "env": env,
                "cwd": workdir,
                "netns": str(self.netns) if self.netns else None,
                "hostname": (pod["spec"].get("hostname") or pod["metadata"]["name"])[:63],
                "mounts": mounts,
            }
        )
        self.svc.event(pod, "Normal", "Started", f"Started container {c.name}")
        self._start_probers(c)
        self._save_state()

    def _mounts(self, c: ContainerRun, image_volumes: tuple[str, ...]) -> list[dict[str, Any]]:
        assert self.vols is not None
        etc = self.dir / "etc"
        # Containers share the host's root filesystem, but not its scratch space: each
        # gets a /tmp of its own and the pod one /dev/shm (its containers share IPC), and
        # a folder of its own at each of the image's VOLUMEs, unless the pod mounts volumes
        # there itself.
        private = {"/tmp": c.dir / "tmp", "/dev/shm": self.dir / "shm"}
        for path in image_volumes:
            private[path.rstrip("/")] = c.dir / "volumes" / path.strip("/").replace("/", "-")
        taken = {vm["mountPath"].rstrip("/") for vm in c.spec.get("volumeMounts") or []}
        mounts: list[dict[str, Any]] = [
            {"src": str(etc / "hosts"), "dst": "/etc/hosts", "ro": False},
            {"src": str(etc / "resolv.conf"), "dst": "/etc/resolv.conf", "ro": False},
            {"src": str(etc / "hostname"), "dst": "/etc/hostname", "ro": False},
        ]
        for dst, src in private.items():
            if dst not in taken:
                src.mkdir(parents=True, exist_ok=True)
                src.chmod(0o1777)
                mounts.append({"src": str(src), "dst": dst, "ro": False})
        for vm in c.spec.get("volumeMounts") or []:
            if vm["name"] not in self.vols.paths:
                raise ConfigError(f"volumeMount {vm['name']!r} names no volume of the pod")
            src = self.vols.paths[vm["name"]]
            if vm.get("subPath"):
                src = src / vm["subPath"]
                if not src.exists():
                    src.mkdir(parents=True)
            mounts.append({"src": str(src), "dst": vm["mountPath"], "ro": bool(vm.get("readOnly"))})
        # A checkout (its runtimes) or node state that itself lives under a path mounted
        # over above (a private or volume /tmp, say) would vanish from the container and
        # its own wrapper: bind them back at their own paths, last.
        for needed in {REPO_ROOT.resolve(), self.svc.cfg.pods_dir.resolve()}:
            if any(needed.is_relative_to(m["dst"]) for m in mounts):
                mounts.append({"src": str(needed), "dst": str(needed), "ro": False})
        return mounts

    def _text_lookup(self, kind: str, ns: str, name: str) -> dict[str, str] | None:
        data = self.svc.fetch(kind, ns, name)
        if data is None:
            return None
        return {k: v.decode(errors="replace") for k, v in data.items()}

    # -- probes ------------------------------------------------------------
    def _probe_target(self, c: ContainerRun) -> ProbeTarget:
        """How probes and lifecycle hooks reach container `c`."""
        ports = {p["name"]: p["containerPort"] for p in c.spec.get("ports") or [] if p.get("name")}
        return ProbeTarget(
            self.ip or "127.0.0.1",
            ports,
            lambda: nsenter_prefix(pid) if (pid := c.init_pid()) else None,
            {"PATH": self.svc.images.resolve(c.spec["image"]).environ()["PATH"]},
        )

    def _start_probers(self, c: ContainerRun) -> None:
        self._stop_probers(c.name)
        if c.init:
            c.ready = False
            return
        target = self._probe_target(c)
        instance = c.record.instance
        probers = []
        startup = c.spec.get("startupProbe")

        def changed(kind: str, ok: bool, message: str) -> None:
            if c.record.instance != instance:
                return
            if kind == "startup" and ok:
                c.started = True
                for p in probers:
                    if p.kind != "startup":
                        p.start()
            elif kind == "readiness":
                c.ready = ok
                if not ok:
                    self.svc.event(
                        self.pod, "Warning", "Unhealthy", f"Readiness probe failed: {message}"
                    )
            elif not ok:  # liveness or startup failed: restart the container
                what = "Liveness" if kind == "liveness" else "Startup"
                self.svc.event(self.pod, "Warning", "Unhealthy", f"{what} probe failed: {message}")
                note = f"Container {c.name} failed {kind} probe, will be restarted"
                self.svc.event(self.pod, "Normal", "Killing", note)
                threading.Thread(
                    target=c.stop, args=(self._grace(self.pod), self.uid), daemon=True
                ).start()
            self.wake.set()

        for kind in ("readiness", "liveness"):
            spec = c.spec.get(f"{kind}Probe")
            if spec:
                probers.append(Prober(kind, spec, target, changed))
        if not c.spec.get("readinessProbe"):
            c.ready = True
        if startup:
            c.started = False
            sp = Prober("startup", startup, target, changed)
            sp.start()
            self.probers[c.name] = [sp, *probers]
            if not c.spec.get("readinessProbe"):
                c.ready = False
        else:
            c.started = True
            for p in probers:
                p.start()
            self.probers[c.name] = probers

    def _stop_probers(self, name: str | None = None) -> None:
        for key in [name] if name else list(self.probers):
            for p in self.probers.pop(key, []):
                p.stop.set()

    # -- status ------------------------------------------------------------
    def _container_status(self, c: ContainerRun) -> dict:
        rec = c.record
        image = c.spec["image"]
        st: dict[str, Any] = {
            "name": c.name,
            "image": image,
            "imageID": f"localnode://{image}",
            "restartCount": rec.restart_count,
            "ready": bool(c.running and c.ready and (c.started or not c.spec.get("startupProbe"))),
            "started": bool(c.running and c.started),
            "lastState": {"terminated": rec.last.api()} if rec.last else {},
        }
        if c.running:
            st["containerID"] = c.container_id(self.uid)
            st["state"] = {"running": {"startedAt": rfc3339(rec.started_at)}}
        elif rec.current_done is not None and not rec.waiting_reason:
            st["containerID"] = rec.current_done.container_id
            st["state"] = {"terminated": rec.current_done.api()}
        else:
            waiting = {"reason": rec.waiting_reason or "ContainerCreating"}
            if rec.waiting_message:
                waiting["message"] = rec.waiting_message
            st["state"] = {"waiting": waiting}
            if rec.current_done is not None:
                st["lastState"] = {"terminated": rec.current_done.api()}
        if c.init:
            st["ready"] = bool(
                rec.current_done and rec.current_done.exit_code == 0 and not c.running
            )
        return st

    def _phase(self, pod: dict) -> str:
        if self.failed_reason:
            return "Failed"
        policy = pod["spec"].get("restartPolicy", "Always")
        if not self.init_done:
            for c in self.inits:
                d = c.record.current_done
                if policy == "Never" and d is not None and d.exit_code != 0 and not c.running:
                    return "Failed"
            return "Pending"
        if any(c.record.instance < 0 for c in self.mains):
            return "Pending"
        if any(c.running for c in self.mains):
            return "Running"
        done = [c.record.current_done for c in self.mains]
        if policy == "Always":
            return "Running"
        if policy == "OnFailure":
            if all(d is not None and d.exit_code == 0 for d in done):
                return "Succeeded"
            return "Running"
        if all(d is not None for d in done):
            return "Succeeded" if all(d.exit_code == 0 for d in done if d) else "Failed"
        return "Running"

    def _status(self, pod: dict) -> dict:
        phase = self._phase(pod)
        mains = [self._container_status(c) for c in self.mains]
        inits = [self._container_status(c) for c in self.inits]
        ready = phase == "Running" and all(s["ready"] for s in mains)
        start = pod.get("status", {}).get("startTime") or self.start_time

        def cond(kind: str, ok: bool, reason: str = "") -> dict:
            value = "True" if ok else "False"
            # Controllers read it (a Deployment's minReadySeconds counts from it).
            seen = self.transitions.get(kind)
            if seen is None or seen[0] != value:
                self.transitions[kind] = seen = (value, rfc3339(time.time()))
            out = {"type": kind, "status": value, "lastTransitionTime": seen[1]}
            if reason and not ok:
                out["reason"] = reason
            return out

        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": self.svc.cfg.host_ip,
            "hostIPs": [{"ip": self.svc.cfg.host_ip}],
            "startTime": start,
            "qosClass": pod.get("status", {}).get("qosClass", "BestEffort"),
            "conditions": [
                cond("PodReadyToStartContainers", self.ip is not None),
                cond("Initialized", self.init_done, "ContainersNotInitialized"),
                cond("Ready", ready, "ContainersNotReady"),
                cond("ContainersReady", ready, "ContainersNotReady"),
                cond("PodScheduled", True),
            ],
            "containerStatuses": mains,
        }
        if inits:
            status["initContainerStatuses"] = inits
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        if self.failed_reason:
            status["reason"], status["message"] = self.failed_reason
        return status

    # -- stopping ----------------------------------------------------------
    def _grace(self, pod: dict) -> float:
        meta = pod["metadata"]
        if meta.get("deletionGracePeriodSeconds") is not None:
            return float(meta["deletionGracePeriodSeconds"])
        return float(pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE))

    def kill_all(self, grace: float) -> None:
        """The running containers' preStop hooks, then SIGTERM, then SIGKILL for what is left
        when `grace` seconds have passed: the hooks' time counts in the grace period, as with
        the kubelet."""
        self._stop_probers()
        running = [c for c in self.inits + self.mains if c.running]
        deadline = time.monotonic() + grace
        hooks = [threading.Thread(target=self._pre_stop, args=(c, deadline), daemon=True)
                 for c in running if not c.init]  # fmt: skip
        for t in hooks:
            t.start()
        for t in hooks:
            t.join(max(0.0, deadline - time.monotonic()))
        grace = max(0.0, deadline - time.monotonic())
        for c in running:
            c.signal(signal.SIGTERM)
        threads = [threading.Thread(target=c.stop, args=(grace, self.uid)) for c in running]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _pre_stop(self, c: ContainerRun, deadline: float) -> None:
        """Container `c`'s preStop hook (sleep, exec or httpGet), cut short at `deadline`. An
        engine's sleep, say, lets routers drop the pod before its server stops listening."""
        hook = (c.spec.get("lifecycle") or {}).get("preStop")
        if not hook:
            return
        left = max(0.0, deadline - time.monotonic())
        if "sleep" in hook:
            time.sleep(min(float(hook["sleep"].get("seconds", 0)), left))
            return
        ok, message = run_once({**hook, "timeoutSeconds": left}, self._probe_target(c))
        if not ok:
            note = f"PreStopHook failed for container {c.name}: {message}"
            self.svc.event(self.pod, "Warning", "FailedPreStopHook", note)

    def _delete_pod(self, pod: dict) -> None:
        grace = self._grace(pod)
        if any(c.running for c in self.inits + self.mains):
            self.svc.event(pod, "Normal", "Killing", f"Stopping containers (grace {grace:g}s)")
        self.kill_all(grace)
        self._teardown(final=not self.gone)

    def _release_network(self) -> None:
        network.sandbox_down(self.svc.cfg, self.uid)
        self.svc.ipam.release(self.uid)

    def mount_points(self) -> set[str]:
        specs = [c.spec for c in self.inits + self.mains]
        return {m["mountPath"] for s in specs for m in s.get("volumeMounts") or []}

    def _teardown(self, final: bool) -> None:
        self.svc.release_mounts(self.uid, mountpoints.created_by(self.dir))
        network.sandbox_down(self.svc.cfg, self.uid)
        self.svc.ipam.release(self.uid)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.svc.finalize(self.pod, final)
