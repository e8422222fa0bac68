"""The real local node: the upstream kubelet with containerd and runc runs the project's own
images (built by `make images`), the chart installs the operator and the arena on it under
the chart's RBAC, and what the chart promises about security is checked inside the running
containers. `down` leaves nothing of the node behind on the host."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from openai import OpenAI
from vllm_processes import FAST_FLAGS, SERVED

from arenastack_cluster import modelclaim
from arenastack_cluster.cluster import CHART_DIR
from arenastack_cluster.demo_serving import ADMIN_SECRET, JUDGE_SECRET, arena_values
from arenastack_cluster.modelclaim import model_source
from arenastack_cluster.node import settings
from arenastack_cluster.processes import ClusterError
from arenastack_operator import constants
from arenastack_operator.inferencedeployment import names as id_names
from arenastack_operator.inferencedeployment.spec import DEFAULT_ROUTER_IMAGE

pytestmark = pytest.mark.e2e

NAMESPACE = "arenastack-system"
RELEASE = "as"
COMPONENTS = ("operator", "arena")
ENGINE_READY_TIMEOUT_S = 420  # the image's first start on this node imports torch and vLLM


def get(cl, kind: str, namespace: str, name: str | None = None, selector: str | None = None):
    """One object (by name) or a list of items; None when there is none."""
    args = ["get", kind, *([name] if name else []), "-n", namespace, "-o", "json"]
    proc = cl.kubectl(*args, *(["-l", selector] if selector else []), check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout)
    return data if name else data["items"]


def test_the_node_is_the_upstream_kubelet_on_containerd(local_cluster):
    node = json.loads(local_cluster.kubectl("get", "node", "localnode", "-o", "json").stdout)
    info = node["status"]["nodeInfo"]
    control_plane = json.loads(local_cluster.kubectl("version", "-o", "json").stdout)
    assert info["kubeletVersion"] == control_plane["serverVersion"]["gitVersion"]
    assert info["containerRuntimeVersion"].startswith("containerd://1.")
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert ready["Ready"] == "True"
    # GPU capacity for scheduling tests, advertised as an extended resource by a status patch.
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "2"
    address = {a["type"]: a["address"] for a in node["status"]["addresses"]}["InternalIP"]
    assert not address.startswith("127."), "the node proxy refuses loopback addresses"


def test_the_node_has_its_own_identity_under_node_restriction(local_cluster, tmp_path):
    """The kubelet's credentials are system:node:localnode: the node authorizer lets it read
    its own Node but not Secrets its pods do not use, and NodeRestriction refuses it another
    node's object."""
    cl = local_cluster
    node_kc = str(cl.state / "node.kubeconfig")
    as_node = ["--kubeconfig", node_kc]
    assert cl.kubectl(*as_node, "get", "node", "localnode", check=False).returncode == 0
    cl.kubectl("create", "secret", "generic", "not-for-nodes", "--from-literal=k=v")
    secret = cl.kubectl(*as_node, "get", "secret", "not-for-nodes", check=False)
    assert secret.returncode != 0 and "forbidden" in secret.stderr.lower()
    other = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "someone-else"}}
    cl.kubectl("apply", "-f", "-", input=json.dumps(other))
    try:
        label = cl.kubectl(*as_node, "label", "node", "someone-else", "x=y", check=False)
        assert label.returncode != 0 and "forbidden" in label.stderr.lower()
    finally:
        cl.kubectl("delete", "node", "someone-else", "--wait=false", check=False)


@pytest.fixture(scope="module")
def chart_installed(local_cluster, tmp_path_factory):
    """The chart's operator and arena from the project's images, on the real node."""
    cl = local_cluster
    cl.kubectl("create", "namespace", NAMESPACE, check=False)  # earlier modules made it
    for secret in (ADMIN_SECRET, JUDGE_SECRET):
        cl.kubectl("create", "secret", "generic", secret, "-n", NAMESPACE,
                   f"--from-literal=token={secret}-value")  # fmt: skip
    values = tmp_path_factory.mktemp("chart") / "values.yaml"
    model = {"name": "m1", "endpoint": "http://m1-router.x.svc:8000/v1"}
    chart_values = arena_values([model])
    # The real node has this machine's 2 cores, and the KubeRay sample below asks for both:
    # the operator and the arena request none (their limits stay).
    no_cpu = {"resources": {"requests": {"cpu": "0", "memory": "256Mi"}}}
    chart_values["operator"] = no_cpu
    chart_values["arena"].update(no_cpu)
    values.write_text(yaml.safe_dump(chart_values))
    try:
        cl.helm("install", RELEASE, str(CHART_DIR), "-n", NAMESPACE, "-f", str(values),
                "--wait", "--timeout", "240s")  # fmt: skip
    except ClusterError:
        pods = cl.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide", check=False).stdout
        logs = cl.kubectl("logs", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=arenastack",
                          "--tail=20", "--all-containers", check=False).stdout  # fmt: skip
        raise AssertionError(f"the chart never became ready:\n{pods}\n{logs}") from None
    yield cl
    cl.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)


def _pod(cl, component: str) -> str:
    (pod,) = get(cl, "pods", NAMESPACE, selector=f"app.kubernetes.io/component={component}")
    return pod["metadata"]["name"]


def assert_confined(cl, namespace: str, pod: str, image: str) -> None:
    """Checked inside the running container, not in the manifest: the uid and gid, a write to
    `/`, the effective capabilities of its first process, and which image it runs."""
    script = ("id -u; id -g; if touch /probe 2>/dev/null; then echo writable; "
              "else echo read-only; fi; grep CapEff /proc/1/status")  # fmt: skip
    out = cl.kubectl("exec", "-n", namespace, pod, "--", "sh", "-c", script).stdout.split("\n")
    assert out[0] == "65532" and out[1] == "65532"
    assert out[2] == "read-only"
    assert out[3].split() == ["CapEff:", "0000000000000000"]
    status = get(cl, "pods", namespace, pod)["status"]["containerStatuses"][0]
    assert status["image"].startswith(image), status["image"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_chart_pods_run_non_root_read_only_without_capabilities(chart_installed, component):
    assert_confined(chart_installed, NAMESPACE, _pod(chart_installed, component),
                    f"ghcr.io/arenastack/{component}:")  # fmt: skip


@pytest.mark.parametrize("component", COMPONENTS)
def test_product_images_carry_neither_the_dev_cluster_nor_test_tools(chart_installed, component):
    cl = chart_installed
    code = ("import importlib.metadata as m, importlib.util as u; "
            "names = {d.metadata['Name'].lower() for d in m.distributions()}; "
            "print(sorted(names & {'pytest', 'ruff', 'playwright', 'fschat', 'pandas', "
            "'scikit-learn', 'schemathesis', 'vllm-router', 'cryptography'})); "
            "print(u.find_spec('arenastack_cluster') is None)")  # fmt: skip
    out = cl.kubectl("exec", "-n", NAMESPACE, _pod(cl, component), "--", "python", "-c", code)
    assert out.stdout.split("\n")[:2] == ["[]", "True"]


def test_logs_and_port_forward_reach_the_pods(chart_installed):
    cl = chart_installed
    # Leadership may wait out a lease an earlier module's operator still held when its
    # release (and with it the RBAC to release the lease) was uninstalled.
    deadline = time.monotonic() + constants.DEFAULT_LEASE_DURATION_S + 60
    while "Acquired the lease" not in (
        logs := cl.kubectl("logs", "-n", NAMESPACE, _pod(cl, "operator")).stdout
    ):
        assert time.monotonic() < deadline, logs[-2000:]
        time.sleep(2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    forward = subprocess.Popen(
        [str(cl.bin / "kubectl"), "--kubeconfig", str(cl.kubeconfig), "port-forward", "-n",
         NAMESPACE, f"pod/{_pod(cl, 'arena')}", f"{port}:8080"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
                    assert r.read() == b"ok"
                    break
            except OSError:
                if time.monotonic() > deadline or forward.poll() is not None:
                    raise
                time.sleep(0.5)
    finally:
        forward.terminate()
        forward.wait(10)


def test_an_evaluation_runner_in_the_arena_image_reports_why_it_failed(chart_installed):
    """The chart's operator (its own image, the chart's RBAC) starts the runner Job in the
    arena image; the runner reaches the arena through cluster DNS, is refused for a wrong
    judge token, and the kubelet's termination message carries the reason to the status."""
    cl = chart_installed
    cl.kubectl("create", "secret", "generic", "wrong-judge-token", "-n", "default",
               "--from-literal=token=not-the-token")  # fmt: skip
    endpoint = {"baseURL": "http://contestant.default.svc:8000/v1"}
    evaluation = {
        "apiVersion": "arenastack.io/v1alpha1",
        "kind": "ArenaEvaluation",
        "metadata": {"name": "refused", "namespace": "default"},
        "spec": {
            "contestants": [{"name": n, "endpoint": {**endpoint, "model": n}} for n in "ab"],
            "prompts": {"inline": [{"text": "Name a prime."}]},
            "judge": {"endpoint": {**endpoint, "model": "judge"}},
            "arena": {"tokenSecretRef": {"name": "wrong-judge-token", "key": "token"}},
            "job": {"backoffLimit": 0},
        },
    }
    cl.kubectl("apply", "-f", "-", input=json.dumps(evaluation))
    deadline = time.monotonic() + 120
    while True:
        status = (get(cl, "arenaevaluations", "default", "refused") or {}).get("status", {})
        if status.get("phase") == "Failed":
            break
        assert time.monotonic() < deadline, f"the run never failed: {status}"
        time.sleep(1)
    assert "refused the judge token" in status["message"]
    (pod,) = get(cl, "pods", "default", selector="job-name=refused-run-1")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] != 0 and "refused the judge token" in terminated["message"]
    assert pod["spec"]["containers"][0]["image"].startswith("ghcr.io/arenastack/arena:")
    cl.kubectl("delete", "arenaevaluation", "refused", "-n", "default", "--wait=false")


def running_pod(cl, namespace: str, selector: str, what: str, check=None) -> str:
    """The name of the first pod of `selector` that runs, within 120 s; `check` may fail early."""
    deadline = time.monotonic() + 120
    while True:
        pods = get(cl, "pods", namespace, selector=selector) or []
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        if running:
            return running[0]["metadata"]["name"]
        if check is not None:
            check()
        assert time.monotonic() < deadline, f"{what} never ran: {pods}"
        time.sleep(1)


# Accepts connections and never answers: the runner waits on it (contestant requests have no
# timeout), so there is time to look inside the running runner.
SILENT_SERVER = ("import socket, time; s = socket.socket(); s.bind(('', 8000)); s.listen(64); "
                 "time.sleep(3600)")  # fmt: skip


def test_an_evaluation_runner_runs_non_root_read_only_without_capabilities(chart_installed):
    """The runner Job the operator builds, looked at while it runs: the arena accepted its
    judge token, and it waits for contestants that never answer."""
    cl = chart_installed
    ns = "runner-inside"
    cl.kubectl("create", "namespace", ns)
    cl.kubectl("create", "secret", "generic", JUDGE_SECRET, "-n", ns,
               f"--from-literal=token={JUDGE_SECRET}-value")  # fmt: skip
    confined = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    silent = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "silent", "namespace": ns, "labels": {"app": "silent"}},
        "spec": {"containers": [{
            "name": "silent", "image": "ghcr.io/arenastack/arena:0.1.0",
            "command": ["python", "-c", SILENT_SERVER], "securityContext": confined,
            "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1},
        }]},
    }  # fmt: skip
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "silent", "namespace": ns},
        "spec": {"selector": {"app": "silent"}, "ports": [{"port": 8000}]},
    }
    endpoint = {"baseURL": f"http://silent.{ns}.svc:8000/v1"}
    evaluation = {
        "apiVersion": "arenastack.io/v1alpha1",
        "kind": "ArenaEvaluation",
        "metadata": {"name": "inside", "namespace": ns},
        "spec": {
            "contestants": [{"name": n, "endpoint": {**endpoint, "model": n}} for n in "ab"],
            "prompts": {"inline": [{"text": "Name a prime."}]},
            "judge": {"endpoint": {**endpoint, "model": "judge"}},
            "arena": {"tokenSecretRef": {"name": JUDGE_SECRET, "key": "token"}},
        },
    }
    try:
        for obj in (silent, service):
            cl.kubectl("apply", "-f", "-", input=json.dumps(obj))
        cl.kubectl("wait", "-n", ns, "pod/silent", "--for=condition=Ready", "--timeout=60s")
        cl.kubectl("apply", "-f", "-", input=json.dumps(evaluation))

        def failed() -> None:
            status = (get(cl, "arenaevaluations", ns, "inside") or {}).get("status", {})
            assert status.get("phase") != "Failed", status

        runner = running_pod(cl, ns, "job-name=inside-run-1", "the runner", failed)
        # Still running a few seconds on: it got past the arena's token check.
        time.sleep(5)
        assert get(cl, "pods", ns, runner)["status"]["phase"] == "Running"
        assert_confined(cl, ns, runner, "ghcr.io/arenastack/arena:")
        status = get(cl, "arenaevaluations", ns, "inside")["status"]
        assert status["phase"] == "Running", status
    finally:
        cl.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s", check=False)


def test_an_inference_deployment_serves_from_the_vllm_image(chart_installed, model_dir):
    """An InferenceDeployment on the real node: the engine in the vLLM image (the CPU build
    under vllm/vllm-openai's tag) loads weights from a claim, the router in the vllm-router
    image finds it, and an answer comes back through the router. Inside the running pods: the
    router non-root, read-only, without capabilities; the engine keeps the image's user (root,
    as vLLM's official image) but has no capabilities and may not gain any."""
    cl = chart_installed
    ns = "serving-inside"
    cl.kubectl("create", "namespace", ns)
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": "InferenceDeployment",
        "metadata": {"name": "served", "namespace": ns},
        "spec": {
            "model": {**model_source(cl, ns, model_dir), "servedModelName": SERVED,
                      "dtype": "float32"},
            "gpusPerReplica": 0,
            "engine": {"maxModelLen": 512, "extraArgs": FAST_FLAGS},
        },
    }  # fmt: skip

    def of(component: str) -> str:
        return (f"{id_names.LABEL_DEPLOYMENT}=served,"
                f"{constants.LABEL_COMPONENT}={component}")  # fmt: skip

    def ready() -> bool:
        status = (get(cl, "inferencedeployments", ns, "served") or {}).get("status") or {}
        return status.get("readyReplicas") == 1

    try:
        cl.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
        deadline = time.monotonic() + ENGINE_READY_TIMEOUT_S
        while not ready():
            if time.monotonic() > deadline:
                logs = cl.kubectl("logs", "-n", ns, "-l", of(id_names.COMPONENT_ENGINE),
                                  "--tail=40", check=False)  # fmt: skip
                pods = cl.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False)
                raise AssertionError(f"never ready:\n{pods.stdout}\n{logs.stdout}{logs.stderr}")
            time.sleep(2)
        (engine_pod,) = get(cl, "pods", ns, selector=of(id_names.COMPONENT_ENGINE))
        image = engine_pod["status"]["containerStatuses"][0]["image"]
        assert image.startswith("docker.io/vllm/vllm-openai:"), image
        script = "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/1/status"
        out = cl.kubectl("exec", "-n", ns, engine_pod["metadata"]["name"], "--", "sh", "-c",
                         script).stdout.split("\n")  # fmt: skip
        assert out[0] == "0"
        flags = dict(line.split() for line in out[1:3])
        assert flags == {"CapEff:": "0000000000000000", "NoNewPrivs:": "1"}
        router = running_pod(cl, ns, of(id_names.COMPONENT_ROUTER), "the router")
        assert_confined(cl, ns, router, DEFAULT_ROUTER_IMAGE)
        router_ip = get(cl, "pods", ns, router)["status"]["podIP"]
        client = OpenAI(base_url=f"http://{router_ip}:{id_names.ROUTER_PORT}/v1",
                        api_key="none", max_retries=0)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:  # the router finds the replica on its next look at the pods
            try:
                chat = client.chat.completions.create(
                    model=SERVED, messages=[{"role": "user", "content": "Say something."}],
                    max_tokens=8, temperature=0)  # fmt: skip
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        assert chat.choices[0].message.content
        assert chat.usage.completion_tokens > 0
    finally:
        cl.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s", check=False)
        modelclaim.release(cl, ns)


def _host_traces(cl) -> dict[str, object]:
    node_dir = cl.state / "localnode"
    paths = settings.Paths(node_dir)
    cgroups = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/arenastack-*"
                     + "246x" + cl.pod_cidr.split(".")[2]))  # fmt: skip
    logs = settings.CONTAINER_LOGS_DIR
    links = [p for p in logs.iterdir() if str(p.resolve()).startswith(str(paths.pod_logs))] \
        if logs.exists() else []  # fmt: skip
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(cl.state) in line or str(paths.run) in line]  # fmt: skip
    shims = subprocess.run(["pgrep", "-f", str(paths.containerd_socket)],
                           capture_output=True, text=True).stdout.split()  # fmt: skip
    return {
        "cgroups": cgroups,
        "log links": links,
        "mounts": mounts,
        "processes": shims,
        "run folder": paths.run.exists(),
        "shim sockets": settings.SHIM_SOCKETS_DIR.exists(),
        "node netns": Path(f"/run/netns/asnode-246x{cl.pod_cidr.split('.')[2]}").exists(),
    }


def test_down_leaves_nothing_behind_on_the_host(local_cluster):
    """Last in this module: the session's node is stopped here, every host path, mount,
    cgroup, process and sysctl it touched is as it was before, and the node is started again
    for the modules after this one."""
    cl = local_cluster
    saved = json.loads(settings.Paths(cl.state / "localnode").saved_tunables.read_text())
    assert _host_traces(cl)["cgroups"], "the running node should have its cgroup folders"
    cl.down(quiet=True)
    try:
        assert _host_traces(cl) == {
            "cgroups": [], "log links": [], "mounts": [], "processes": [], "run folder": False,
            "shim sockets": False, "node netns": False,
        }  # fmt: skip
        for key, value in saved.items():
            assert Path("/proc/sys", key).read_text().strip() == value, key
    finally:
        cl.up(log=lambda line: print(line, flush=True))
