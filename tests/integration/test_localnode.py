"""The local node runs pods as real processes: env, volumes, networking, restarts,
probes, deletion, logs and clear failures, against a local-profile control plane."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from arenastack_cluster.cluster import REPO_ROOT, LocalCluster
from arenastack_cluster.localnode.profile import GPUS_ENV
from arenastack_cluster.processes import free_port

pytestmark = pytest.mark.integration

PYTHON_IMAGE = "python:3.11-slim"


@pytest.fixture
def ns(process_cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"ln-{request.node.name.replace('_', '-')[5:30].strip('-')}"
    process_cluster.kubectl("create", "namespace", name)
    # Pods cannot be created before the namespace's default ServiceAccount exists.
    wait(lambda: process_cluster.kubectl("get", "sa", "default", "-n", name, check=False)
         .returncode == 0, 30, "default ServiceAccount")  # fmt: skip
    yield name
    process_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def wait(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def apply(cl: LocalCluster, ns: str, *objs: dict) -> None:
    cl.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(objs))


def get_pod(cl: LocalCluster, ns: str, name: str) -> dict | None:
    out = cl.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def wait_pod(
    cl: LocalCluster,
    ns: str,
    name: str,
    pred: Callable[[dict], bool],
    timeout: float = 30,
    what: str = "",
) -> dict:
    def check() -> dict | None:
        pod = get_pod(cl, ns, name)
        return pod if pod and pred(pod) else None

    try:
        return wait(check, timeout, what or f"pod {name}")  # type: ignore[return-value]
    except AssertionError:
        status = json.dumps((get_pod(cl, ns, name) or {}).get("status"), indent=1)
        raise AssertionError(f"timed out waiting for {what or name}: {status}") from None


def ready(pod: dict) -> bool:
    conds = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def finished(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def phase(value: str) -> Callable[[dict], bool]:
    return lambda pod: pod.get("status", {}).get("phase") == value


def pod(name: str, command: list[str], **spec: object) -> dict:
    container = {"name": "main", "image": PYTHON_IMAGE, "command": command}
    container.update(spec.pop("container", {}))  # type: ignore[arg-type]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [container], **spec},
    }


def http_server(name: str, port: int = 8000, **spec: object) -> dict:
    """A pod that writes what it sees into /data and serves /data over HTTP."""
    script = (
        "env > /data/env.txt; echo $HOSTNAME > /data/index.html; "
        f"exec python -m http.server {port} --directory /data"
    )
    # Ready once it listens, so tests may fetch from it as soon as the pod is Ready.
    probe = {"tcpSocket": {"port": port}, "periodSeconds": 1}
    spec["container"] = {"readinessProbe": probe, **spec.get("container", {})}  # type: ignore[dict-item]
    p = pod(name, ["sh", "-c", script], volumes=[{"name": "data", "emptyDir": {}}], **spec)
    p["spec"]["containers"][0].setdefault("volumeMounts", []).append(
        {"name": "data", "mountPath": "/data"}
    )
    return p


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def test_node_registers_with_capacity_and_gpus(process_cluster):
    node = json.loads(process_cluster.kubectl("get", "node", "localnode", "-o", "json").stdout)
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == os.environ[GPUS_ENV]
    assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    lease = json.loads(process_cluster.kubectl(
        "get", "lease", "localnode", "-n", "kube-node-lease", "-o", "json").stdout)  # fmt: skip
    assert lease["spec"]["holderIdentity"] == "localnode"


def test_pod_runs_process_with_env_volumes_and_token(process_cluster, ns):
    cl = process_cluster
    podinfo_existed = Path("/etc/podinfo").exists()
    apply(
        cl, ns,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
         "data": {"greeting": "hello", "mode": "fast"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
         "stringData": {"password": "s3cret"}},
    )  # fmt: skip
    rbac = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "pod-reader"},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "pod-reader"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "pod-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}]},
    ]  # fmt: skip
    apply(cl, ns, *rbac)
    check_api = "\n".join([
        "import os, ssl, urllib.request as u",
        "d = '/var/run/secrets/kubernetes.io/serviceaccount/'",
        "c = ssl.create_default_context(cafile=d + 'ca.crt')",
        "env = os.environ",
        "h = f\"https://{env['KUBERNETES_SERVICE_HOST']}:{env['KUBERNETES_SERVICE_PORT']}\"",
        "t = open(d + 'token').read()",
        "def get(p):",
        "    req = u.Request(h + p, headers={'Authorization': 'Bearer ' + t})",
        "    try: return u.urlopen(req, context=c).status",
        "    except u.HTTPError as e: return e.code",
        "ns = open(d + 'namespace').read()",
        "codes = [get(f'/api/v1/namespaces/{ns}/pods'), get(f'/api/v1/namespaces/{ns}/secrets')]",
        "open('/data/api.txt', 'w').write(' '.join(map(str, codes)))",
    ])  # fmt: skip
    p = http_server("web")
    main = p["spec"]["containers"][0]
    main["command"][2] = (
        'python -c "$CHECK" && cat /etc/cfg/greeting > /data/cfg.txt && '
        "cat /etc/podinfo/labels > /data/labels.txt && " + main["command"][2]
    )
    main["env"] = [
        {"name": "CHECK", "value": check_api},
        {"name": "A", "value": "one"},
        {"name": "B", "value": "$(A)-two $$(A) $(UNDEFINED)"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                               "divisor": "1Mi"}}},
    ]  # fmt: skip
    main["envFrom"] = [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]
    main["resources"] = {"limits": {"memory": "256Mi", "cpu": "500m"}}
    main["volumeMounts"] += [
        {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
        {"name": "info", "mountPath": "/etc/podinfo"},
    ]
    p["spec"]["volumes"] += [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
    ]  # fmt: skip
    init = ["sh", "-c", "echo init > /data/init.txt"]
    p["spec"]["initContainers"] = [
        {"name": "init", "image": PYTHON_IMAGE, "command": init,
         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
    ]  # fmt: skip
    apply(cl, ns, p)
    running = wait_pod(cl, ns, "web", ready, 40, "web Ready")
    ip = running["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(cl.pod_cidr)
    env = dict(
        line.split("=", 1)
        for line in fetch(f"http://{ip}:8000/env.txt").splitlines()
        if "=" in line
    )
    assert env["B"] == "one-two $(A) $(UNDEFINED)"
    assert (env["POD_NAME"], env["POD_NS"], env["POD_IP"], env["APP"]) == ("web", ns, ip, "web")
    assert (env["GREETING"], env["PASSWORD"], env["MEM_MI"]) == ("hello", "s3cret", "256")
    assert (env["CFG_greeting"], env["CFG_mode"]) == ("hello", "fast")
    assert env["KUBERNETES_SERVICE_HOST"] and env["KUBERNETES_SERVICE_PORT"]
    assert fetch(f"http://{ip}:8000/init.txt").strip() == "init"
    assert fetch(f"http://{ip}:8000/cfg.txt").strip() == "hello"
    assert fetch(f"http://{ip}:8000/labels.txt").strip() == 'app="web"'
    # The projected token authenticates as the pod's ServiceAccount: pods may be listed
    # (its Role), secrets may not.
    assert fetch(f"http://{ip}:8000/api.txt").split() == ["200", "403"]
    statuses = running["status"]
    assert statuses["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert statuses["containerStatuses"][0]["state"]["running"]
    # Logs through the apiserver and the node's kubelet port.
    wait(lambda: "GET /env.txt" in cl.kubectl("logs", "web", "-n", ns).stdout, 10, "logs")
    # Mount points the pod needed on the host go with it (unless they were there before).
    cl.kubectl("delete", "pod", "web", "-n", ns, "--wait=true", timeout=60)
    assert podinfo_existed or not Path("/etc/podinfo").exists()


def test_same_port_on_two_pods_and_pod_to_pod(process_cluster, ns):
    cl = process_cluster
    apply(cl, ns, http_server("a", 8080), http_server("b", 8080))
    ips = [wait_pod(cl, ns, n, ready, 30)["status"]["podIP"] for n in ("a", "b")]
    assert ips[0] != ips[1]
    assert [fetch(f"http://{ip}:8080/").strip() for ip in ips] == ["a", "b"]
    script = (
        "import sys,urllib.request as u;"
        "print(' '.join(u.urlopen(f'http://{ip}:8080/',timeout=5).read().decode().strip()"
        " for ip in sys.argv[1:]))"
    )
    apply(cl, ns, pod("client", ["python", "-c", script, *ips], restartPolicy="Never"))
    done = wait_pod(cl, ns, "client", phase("Succeeded"), 30, "client Succeeded")
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert cl.kubectl("logs", "client", "-n", ns).stdout.strip() == "a b"


def test_host_network_pod_uses_the_node_address(process_cluster, ns):
    cl = process_cluster
    port = free_port()
    apply(cl, ns, http_server("hostnet", port, hostNetwork=True))
    running = wait_pod(cl, ns, "hostnet", ready, 30, "hostnet Ready")
    node = json.loads(cl.kubectl("get", "node", "localnode", "-o", "json").stdout)
    node_ip = node["status"]["addresses"][0]["address"]
    assert running["status"]["podIP"] == running["status"]["hostIP"] == node_ip
    assert fetch(f"http://{node_ip}:{port}/").strip() == "hostnet"


def _terminated(pod: dict) -> dict:
    return pod["status"]["containerStatuses"][0]["state"].get("terminated") or {}


def test_restart_policies(process_cluster, ns):
    cl = process_cluster
    fail = ["sh", "-c", "echo attempt; exit 3"]
    apply(
        cl, ns,
        pod("always", fail),
        pod("never", fail, restartPolicy="Never"),
        pod("ok", ["sh", "-c", "exit 0"], restartPolicy="OnFailure"),
    )  # fmt: skip
    never = wait_pod(cl, ns, "never", phase("Failed"), 30)
    assert _terminated(never)["exitCode"] == 3 and _terminated(never)["reason"] == "Error"
    assert never["status"]["containerStatuses"][0]["restartCount"] == 0
    wait_pod(cl, ns, "ok", phase("Succeeded"), 30)
    restarted = wait_pod(
        cl, ns, "always",
        lambda p: p["status"].get("containerStatuses", [{}])[0].get("restartCount", 0) >= 1,
        30, "a restart",
    )  # fmt: skip
    last = restarted["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 3
    assert cl.kubectl("logs", "always", "-n", ns, "--previous").stdout.strip() == "attempt"
    # The second failure waits out the back-off (10 s) instead of spinning.
    backoff = wait_pod(
        cl, ns, "always",
        lambda p: p["status"]["containerStatuses"][0]["state"].get("waiting", {}).get("reason")
        == "CrashLoopBackOff",
        30, "CrashLoopBackOff",
    )  # fmt: skip
    assert backoff["status"]["phase"] == "Running"


def test_probes_drive_ready_and_restarts(process_cluster, ns):
    cl = process_cluster
    # Readiness by exec: /data exists only inside the pod's mount namespace, so this
    # passes only if the probe runs inside the container, and only once the file is there.
    slow = http_server(
        "slow",
        container={
            "readinessProbe": {"exec": {"command": ["test", "-f", "/data/ready.txt"]},
                               "periodSeconds": 1},
            # Generous: a loaded machine may take seconds to start the server.
            "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1,
                              "failureThreshold": 15},
            "ports": [{"name": "http", "containerPort": 8000}],
        },
    )  # fmt: skip
    slow["spec"]["containers"][0]["command"][2] = (
        "(sleep 4; echo ok > /data/ready.txt) & " + slow["spec"]["containers"][0]["command"][2]
    )
    sick = pod(
        "sick",
        ["sleep", "1000"],
        container={"livenessProbe": {"tcpSocket": {"port": 9}, "periodSeconds": 1,
                                     "failureThreshold": 2}},
    )  # fmt: skip
    apply(cl, ns, slow, sick)
    running = wait_pod(cl, ns, "slow", phase("Running"), 30)
    assert not ready(running), "Ready before the readiness probe passed"
    became_ready = wait_pod(cl, ns, "slow", ready, 30, "slow Ready")
    assert became_ready["status"]["containerStatuses"][0]["restartCount"] == 0
    wait_pod(
        cl, ns, "sick",
        lambda p: p["status"].get("containerStatuses", [{}])[0].get("restartCount", 0) >= 1,
        30, "a liveness restart",
    )  # fmt: skip
    events = cl.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    assert "Liveness probe failed" in events
    assert get_pod(cl, ns, "slow")["status"]["containerStatuses"][0]["restartCount"] == 0


def _pids_with(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_deletion_honours_grace_and_kills_the_tree(process_cluster, ns):
    cl = process_cluster
    marker = "sleep 987654"
    # The shell ignores SIGTERM and so does a grandchild: only SIGKILL after the grace ends them.
    script = f"trap '' TERM; (trap '' TERM; {marker}) & {marker} & wait"
    apply(cl, ns, pod("tree", ["sh", "-c", script], terminationGracePeriodSeconds=3))
    wait_pod(cl, ns, "tree", phase("Running"), 30)
    wait(lambda: len(_pids_with(marker)) >= 2, 10, "the process tree")
    started = time.monotonic()
    cl.kubectl("delete", "pod", "tree", "-n", ns, "--wait=true", timeout=60)
    took = time.monotonic() - started
    assert _pids_with(marker) == []
    assert took >= 2.5, f"deleted in {took:.1f} s, before the 3 s grace period"


def test_deletion_runs_prestop_hooks_before_sigterm(process_cluster, ns, tmp_path):
    """As the kubelet does: a deleted pod's preStop hooks run first (a sleep, an exec in the
    container), and only then does each container get SIGTERM, all within the grace period."""
    cl = process_cluster
    out = tmp_path / "out"
    out.mkdir()

    def stamped(name: str, hook: dict) -> dict:
        # Notes the time of its SIGTERM, then exits.
        script = (f"trap 'date +%s.%N > /out/{name}-term; exit 0' TERM; "
                  "while true; do sleep 0.1; done")  # fmt: skip
        return {"name": name, "image": PYTHON_IMAGE, "command": ["sh", "-c", script],
                "lifecycle": {"preStop": hook},
                "volumeMounts": [{"name": "out", "mountPath": "/out"}]}  # fmt: skip

    hook_cmd = "date +%s.%N > /out/exec-hook; sleep 1"
    body = pod("hooked", ["true"], terminationGracePeriodSeconds=20,
               volumes=[{"name": "out", "hostPath": {"path": str(out)}}])  # fmt: skip
    body["spec"]["containers"] = [
        stamped("sleeper", {"sleep": {"seconds": 2}}),
        stamped("exec", {"exec": {"command": ["sh", "-c", hook_cmd]}}),
    ]
    apply(cl, ns, body)
    wait_pod(cl, ns, "hooked", phase("Running"), 30)
    deleted = time.time()
    cl.kubectl("delete", "pod", "hooked", "-n", ns, "--wait=true", timeout=60)

    def stamp(name: str) -> float:
        return float((out / name).read_text())

    assert stamp("sleeper-term") - deleted >= 1.8, "SIGTERM came before the 2 s preStop sleep"
    assert stamp("exec-hook") >= deleted
    assert stamp("exec-term") - stamp("exec-hook") >= 0.9, "SIGTERM came before the exec hook ended"
    assert stamp("sleeper-term") - deleted < 20


def test_unmapped_image_fails_naming_the_config(process_cluster, ns):
    cl = process_cluster
    p = pod("nginx", ["nginx"])
    p["spec"]["containers"][0]["image"] = "nginx:1.27"
    apply(cl, ns, p)
    failed = wait_pod(cl, ns, "nginx", phase("Failed"), 30)
    assert failed["status"]["reason"] == "ImageNotMapped"
    assert "localnode-images.yaml" in failed["status"]["message"]
    events = json.loads(cl.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    assert any("localnode-images.yaml" in e["message"] for e in events)
    # A failed pod still goes when deleted: the agent finalises it.
    cl.kubectl("delete", "pod", "nginx", "-n", ns, "--wait=true", timeout=30)


def test_agent_restart_adopts_running_pods(process_cluster, ns):
    cl = process_cluster
    marker = "sleep 876543"
    # exec: one process with one pid from the start, so `before` cannot catch the shell alone
    # before it forks the sleep (the flake CI hit).
    apply(cl, ns, pod("steady", ["sh", "-c", f"exec {marker}"]))
    wait_pod(cl, ns, "steady", phase("Running"), 30)
    before = wait(lambda: _pids_with(marker), 10, "the container process")
    agent = cl.procs["localnode"]
    argv = open(f"/proc/{agent.pid}/cmdline").read().split("\0")[:-1]
    os.kill(agent.pid, signal.SIGKILL)
    time.sleep(0.5)
    agent.start(argv)
    time.sleep(3)
    assert _pids_with(marker) == before
    steady = wait_pod(cl, ns, "steady", phase("Running"), 10)
    assert steady["status"]["containerStatuses"][0]["restartCount"] == 0
    cl.kubectl("delete", "pod", "steady", "-n", ns, "--wait=true", timeout=60)
    assert _pids_with(marker) == []


def test_service_dns_and_cluster_ip(process_cluster, ns):
    cl = process_cluster
    backends = [http_server(n) for n in ("web-a", "web-b")]
    for b in backends:
        b["metadata"]["labels"]["tier"] = "web"
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"tier": "web"}, "ports": [{"port": 80, "targetPort": 8000}]},
    }
    headless = {**svc, "metadata": {"name": "web-headless"},
                "spec": {**svc["spec"], "clusterIP": "None"}}  # fmt: skip
    apply(cl, ns, *backends, svc, headless)
    pod_ips = sorted(wait_pod(cl, ns, b["metadata"]["name"], ready, 30)["status"]["podIP"]
                     for b in backends)  # fmt: skip
    cluster_ip = json.loads(cl.kubectl("get", "svc", "web", "-n", ns, "-o", "json").stdout)["spec"][
        "clusterIP"
    ]
    script = "\n".join([
        "import json, socket, sys, urllib.request as u",
        "import time",
        # Services and endpoints reach DNS and kube-proxy's rules within seconds, not at
        # once: retry the way a client would.
        "def retry(f):",
        "    for _ in range(60):",
        "        try: return f()",
        "        except OSError: time.sleep(0.5)",
        "    return f()",
        "def lookup(name):",
        "    return sorted({a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET)})",
        "def ips(name, n=1):",
        "    for _ in range(60):",
        "        found = retry(lambda: lookup(name))",
        "        if len(found) >= n: return found",
        "        time.sleep(0.5)",
        "    return found",
        "def get(): return u.urlopen('http://web/', timeout=5).read().decode().strip()",
        "seen = set()",
        "for _ in range(60):",
        "    seen.add(retry(get))",
        "    if len(seen) == 2: break",
        f"out = {{'short': ips('web'), 'fqdn': ips('web.{ns}.svc.cluster.local'),",
        "       'headless': ips('web-headless', 2), 'via_service': sorted(seen)}",
        "try: socket.getaddrinfo('example.com', 80); out['outside'] = 'resolved'",
        "except OSError: out['outside'] = 'unresolved'",
        "print(json.dumps(out))",
    ])  # fmt: skip
    apply(cl, ns, pod("dig", ["python", "-c", script], restartPolicy="Never"))
    done = wait_pod(cl, ns, "dig", finished, 90, "dig to finish")
    logs = cl.kubectl("logs", "dig", "-n", ns).stdout
    assert done["status"]["phase"] == "Succeeded", logs
    out = json.loads(logs)
    assert out["short"] == out["fqdn"] == [cluster_ip]
    assert out["headless"] == pod_ips
    # kube-proxy spreads ClusterIP connections over both ready endpoints.
    assert out["via_service"] == ["web-a", "web-b"]
    assert out["outside"] == "unresolved"


def test_chart_operator_runs_as_a_pod_under_its_service_account(process_cluster, ns):
    """Installed as a user would: the chart's Deployment runs the operator on the local
    node, in-cluster, with the chart's ServiceAccount."""
    cl = process_cluster
    cl.helm("upgrade", "--install", "arenastack", str(REPO_ROOT / "charts" / "arenastack"),
            "-n", ns, "--wait", "--timeout", "120s")  # fmt: skip
    pods = json.loads(cl.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]
    assert len(pods) == 1 and ready(pods[0])
    assert pods[0]["spec"]["serviceAccountName"] == "arenastack-operator"
    name = pods[0]["metadata"]["name"]
    wait(lambda: "Leading" in cl.kubectl("logs", name, "-n", ns).stdout, 30, "leadership")


RAY_IMAGE = "rayproject/ray:2.60.0"
RAY_RUNTIME = REPO_ROOT / ".state" / "runtimes" / "ray"


@pytest.mark.skipif(
    not (RAY_RUNTIME / "bin" / "ray").exists(),
    reason="the ray runtime is missing: run `hack/localnode-runtimes.sh ray` (34 s, 380 MB)",
)
def test_ray_head_and_worker_run_a_job_from_another_pod(process_cluster, ns):
    """Real Ray on the local node: head and worker pods on their standard ports, the
    worker finding the head through cluster DNS, a job submitted from a third pod."""
    cl = process_cluster
    head_svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "ray-head"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                 "selector": {"role": "head"},
                 "ports": [{"name": "gcs", "port": 6379}, {"name": "dashboard", "port": 8265}]},
    }  # fmt: skip
    start = "ray start --block --disable-usage-stats"
    head = pod(
        "head",
        ["bash", "-c", f"{start} --head --port=6379 --dashboard-host=0.0.0.0 --num-cpus=0"],
        container={
            "image": RAY_IMAGE,
            "readinessProbe": {
                "httpGet": {"path": "/api/gcs_healthz", "port": 8265},
                "periodSeconds": 2,
            },
        },
    )
    worker = pod("worker", ["bash", "-c", "until ray health-check --address ray-head:6379; do "
                                          f"sleep 2; done; {start} --address=ray-head:6379 "
                                          "--num-cpus=1"],
                 container={"image": RAY_IMAGE})  # fmt: skip
    head["metadata"]["labels"]["role"] = "head"
    job = (
        "mkdir -p /tmp/job && cat > /tmp/job/job.py <<'EOF'\n"
        "import ray, socket\n"
        "ray.init()\n"
        "@ray.remote\n"
        "def sq(x): return x * x, socket.gethostname()\n"
        "out = ray.get([sq.remote(i) for i in range(10)])\n"
        "print('result', sum(v for v, _ in out), sorted({h for _, h in out}))\n"
        "EOF\n"
        "ray job submit --address http://ray-head:8265 --working-dir /tmp/job -- python job.py"
    )
    apply(cl, ns, head_svc, head, worker)
    wait_pod(cl, ns, "head", ready, 120, "Ray head Ready")
    apply(cl, ns, pod("submit", ["bash", "-c", job], restartPolicy="Never",
                      container={"image": RAY_IMAGE}))  # fmt: skip
    wait_pod(cl, ns, "submit", phase("Succeeded"), 180, "the Ray job")
    # The head has no CPUs: the tasks ran on the worker pod (its hostname is its name).
    assert "result 285 ['worker']" in cl.kubectl("logs", "submit", "-n", ns).stdout


def test_agent_logged_no_failures(process_cluster):
    """Last in the module: whatever the tests above did, no pod's handling crashed."""
    log = process_cluster.procs["localnode"].log
    with log.open("rb") as f:
        f.seek(process_cluster.agent_log_start)
        text = f.read().decode(errors="replace")
    assert "Traceback" not in text, text[text.index("Traceback") - 200 :][:3000]
