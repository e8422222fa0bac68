"""RayCluster builders, planner and status, without a cluster.

Golden files: for each KubeRay sample manifest of the compat corpus (tests/compat_data.py),
the objects the operator would create are compared exactly with
tests/unit/golden/raycluster/<sample>.yaml.
After an intended change of the builders, regenerate them and review the diff:

    ARENASTACK_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_raycluster_builders.py
"""

from __future__ import annotations

import asyncio
import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from compat_data import compat_manifests, require_sample

from arenastack_operator.raycluster import auth, names, podstate
from arenastack_operator.raycluster.model import Cluster, InvalidSpec, validate
from arenastack_operator.raycluster.plan import (
    REASON_FAILED,
    REASON_OUTDATED,
    REASON_SCALE_DOWN,
    REASON_SUSPENDED,
    REASON_WORKERS_TO_DELETE,
    make_plan,
)
from arenastack_operator.raycluster.pods import build_head_pod, build_worker_pod
from arenastack_operator.raycluster.render import dump, rayclusters, render
from arenastack_operator.raycluster.service import build_head_service, build_headless_service
from arenastack_operator.raycluster.spec import RayClusterStatus
from arenastack_operator.raycluster.status import Failure, build_status, changed
from arenastack_operator.workqueue import WorkQueue

GOLDEN = Path(__file__).parent / "golden" / "raycluster"
SAMPLES = compat_manifests()
UPDATE = os.environ.get("ARENASTACK_UPDATE_GOLDEN") == "1"
NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:01:00Z"


def _golden_text(sample: Path) -> str:
    out = []
    for body in rayclusters(sample.read_text()):
        try:
            out.append(dump(render(body)))
        except InvalidSpec as e:
            out.append(yaml.safe_dump({"invalidSpec": str(e)}, width=100))
    return "".join(out)


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_golden(sample: Path) -> None:
    golden = GOLDEN / sample.name
    text = _golden_text(require_sample(sample))
    if UPDATE:
        golden.write_text(text)
    assert golden.exists(), f"missing {golden}; regenerate (see the module docstring)"
    assert text == golden.read_text(), f"{sample.name} differs from {golden}"


def test_every_golden_file_has_a_sample() -> None:
    assert {p.name for p in GOLDEN.glob("*.yaml")} == {s.name for s in SAMPLES}


# -- builders ---------------------------------------------------------------------------------


def _body(**spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "rayVersion": "2.60.0",
        "headGroupSpec": {
            "rayStartParams": {},
            "template": {
                "metadata": {"labels": {"team": "a"}, "annotations": {"note": "kept"}},
                "spec": {
                    "serviceAccountName": "",
                    "nodeSelector": {"pool": "ray"},
                    "tolerations": [{"key": "k", "operator": "Exists"}],
                    "containers": [{
                        "name": "ray-head", "image": "rayproject/ray:2.60.0",
                        "env": [{"name": "RAY_PORT", "value": "users"},
                                {"name": "MINE", "value": "1"}],
                        "resources": {"limits": {"cpu": "2500m", "memory": "4Gi"}},
                    }, {"name": "sidecar", "image": "busybox"}],
                },
            },
        },
        "workerGroupSpecs": [{
            "groupName": "gpu", "replicas": 2, "minReplicas": 0, "maxReplicas": 3,
            "rayStartParams": {"num-cpus": "8", "object-store-memory": "100", "verbose": "true",
                               "include-dashboard": "false"},
            "template": {"spec": {"containers": [{
                "name": "w", "image": "rayproject/ray:2.60.0",
                "resources": {"limits": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "2"},
                              "requests": {"cpu": "4", "memory": "8Gi"}},
                "volumeMounts": [{"name": "certs", "mountPath": "/certs"}],
            }], "volumes": [{"name": "certs", "secret": {"secretName": "c"}}]}},
        }],
    }  # fmt: skip
    spec.update(spec_overrides)
    return {
        "metadata": {"name": "rc", "namespace": "ns", "uid": "u-1", "generation": 3},
        "spec": spec,
    }


def _cluster(**spec_overrides: Any) -> Cluster:
    return Cluster.from_body(_body(**spec_overrides))


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_head_pod_keeps_the_users_template_and_adds_what_ray_needs() -> None:
    pod = build_head_pod(_cluster())
    spec = pod["spec"]
    ray, sidecar = spec["containers"]
    assert sidecar == {"name": "sidecar", "image": "busybox"}
    assert spec["nodeSelector"] == {"pool": "ray"} and spec["tolerations"][0]["key"] == "k"
    assert pod["metadata"]["labels"]["team"] == "a"
    assert pod["metadata"]["annotations"]["note"] == "kept"
    assert pod["metadata"]["labels"][names.LABEL_GROUP] == "headgroup"
    assert pod["metadata"]["generateName"] == "rc-head-"
    env = _env(ray)
    assert env["RAY_PORT"] == "users"  # the user's value wins
    assert env["MINE"] == "1" and env["RAY_ADDRESS"] == "127.0.0.1:6379"
    assert env["RAY_CLOUD_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert ray["command"] == ["/bin/bash", "-c", "--"]
    assert ray["args"] == [
        "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; ray start --head --block "
        "--dashboard-agent-listen-port=52365 --dashboard-host=0.0.0.0 --memory=4294967296 "
        "--metrics-export-port=8080 --num-cpus=3"
    ]
    assert ray["readinessProbe"]["httpGet"] == {"path": "/api/healthz", "port": 52365}
    assert ray["livenessProbe"]["failureThreshold"] == 120
    shm = next(v for v in spec["volumes"] if v["name"] == names.SHM_VOLUME)
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    assert "restartPolicy" not in spec


def test_worker_pod_flags_sizes_gpus_and_init_container() -> None:
    cluster = _cluster()
    pod = build_worker_pod(cluster, cluster.worker_groups[0])
    ray = pod["spec"]["containers"][0]
    start = _env(ray)["KUBERAY_GEN_RAY_START_CMD"]
    assert start == (
        "ray start --address=rc-head-svc.ns.svc.cluster.local:6379 --block "
        "--dashboard-agent-listen-port=52365 --memory=8589934592 --metrics-export-port=8080 "
        "--num-cpus=8 --num-gpus=2 --object-store-memory=100 --verbose"
    )
    (init,) = pod["spec"]["initContainers"]
    assert init["name"] == "wait-gcs-ready"
    assert "ray health-check --address rc-head-svc.ns.svc.cluster.local:6379" in init["args"][0]
    assert init["volumeMounts"] == [{"name": "certs", "mountPath": "/certs"}]
    assert _env(ray)["FQ_RAY_IP"] == "rc-head-svc.ns.svc.cluster.local"
    assert pod["metadata"]["generateName"] == "rc-gpu-worker-"


def test_user_command_runs_before_ray_start_unless_it_starts_ray_itself() -> None:
    body = _body()
    head = body["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["command"], head["args"] = ["echo 123"], ["456"]
    ray = build_head_pod(Cluster.from_body(body))["spec"]["containers"][0]
    assert ray["args"][0].startswith(
        "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; echo 123 456 && ray start --head "
    )
    head["command"], head["args"] = ["sh", "-c"], ["ray start --head --block"]
    ray = build_head_pod(Cluster.from_body(body))["spec"]["containers"][0]
    assert (ray["command"], ray["args"]) == (["sh", "-c"], ["ray start --head --block"])


def test_overwrite_container_cmd_keeps_the_users_command_as_written() -> None:
    body = _body()
    body["metadata"]["annotations"] = {"ray.io/overwrite-container-cmd": "true"}
    head = body["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["command"], head["args"] = ["/bin/bash", "-c", "--"], ["$KUBERAY_GEN_RAY_START_CMD"]
    cluster = Cluster.from_body(body)
    pod = build_head_pod(cluster)
    ray = pod["spec"]["containers"][0]
    assert ray["args"] == ["$KUBERAY_GEN_RAY_START_CMD"]
    assert _env(ray)["KUBERAY_GEN_RAY_START_CMD"].startswith("ray start --head ")
    assert pod["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    worker = build_worker_pod(cluster, cluster.worker_groups[0])["spec"]["containers"][0]
    assert "command" not in worker and "args" not in worker  # the image's own entrypoint
    # The annotation on one group's template alone: that group only.
    del body["metadata"]["annotations"]
    body["spec"]["headGroupSpec"]["template"]["metadata"]["annotations"] = {
        "ray.io/overwrite-container-cmd": "TRUE"}  # fmt: skip
    cluster = Cluster.from_body(body)
    assert build_head_pod(cluster)["spec"]["containers"][0]["args"] == [
        "$KUBERAY_GEN_RAY_START_CMD"]  # fmt: skip
    worker = build_worker_pod(cluster, cluster.worker_groups[0])["spec"]["containers"][0]
    assert worker["args"][0].startswith("ulimit -n")


def test_old_ray_gets_exec_probes_and_user_probes_are_kept() -> None:
    body = _body(rayVersion="2.52.0")
    head = body["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["livenessProbe"] = {"tcpSocket": {"port": 6379}}
    ray = build_head_pod(Cluster.from_body(body))["spec"]["containers"][0]
    assert ray["livenessProbe"] == {"tcpSocket": {"port": 6379}}
    assert "api/gcs_healthz" in ray["readinessProbe"]["exec"]["command"][2]


def test_autoscaler_v2_sidecar_options_and_restart_policy() -> None:
    cluster = _cluster(
        enableInTreeAutoscaling=True,
        autoscalerOptions={"version": "v2", "image": "my/autoscaler:1",
                           "env": [{"name": "KUBERAY_CRD_VER", "value": "x"}],
                           "envFrom": [{"configMapRef": {"name": "cm"}}],
                           "securityContext": {"runAsUser": 1000},
                           "resources": {"limits": {"cpu": "1"}}},
    )  # fmt: skip
    pod = build_head_pod(cluster)
    ray, _, sidecar = pod["spec"]["containers"]
    assert sidecar["name"] == "autoscaler" and sidecar["image"] == "my/autoscaler:1"
    assert _env(sidecar)["KUBERAY_CRD_VER"] == "x"
    assert _env(sidecar)["RAY_HEAD_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert sidecar["envFrom"] == [{"configMapRef": {"name": "cm"}}]
    assert sidecar["securityContext"] == {"runAsUser": 1000}
    assert sidecar["resources"] == {"limits": {"cpu": "1"}}
    assert _env(ray)["RAY_enable_autoscaler_v2"] == "true"
    assert "--no-monitor" in ray["args"][0]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["serviceAccountName"] == "rc"
    worker = build_worker_pod(cluster, cluster.worker_groups[0])
    assert worker["spec"]["restartPolicy"] == "Never"


def test_autoscaler_start_command_is_in_its_env_for_users_args() -> None:
    start = ("ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) "
             "--cluster-namespace $(RAY_CLUSTER_NAMESPACE)")  # fmt: skip
    sidecar = build_head_pod(_cluster(enableInTreeAutoscaling=True))["spec"]["containers"][-1]
    assert (sidecar["command"], sidecar["args"]) == (["/bin/bash", "-c", "--"], [start])
    assert _env(sidecar)["KUBERAY_GEN_AUTOSCALER_START_CMD"] == start
    # The env var is defined after RAY_CLUSTER_NAME, so Kubernetes expands $(...) in it.
    env_names = [e["name"] for e in sidecar["env"]]
    assert env_names.index("RAY_CLUSTER_NAME") < env_names.index("KUBERAY_GEN_AUTOSCALER_START_CMD")
    wrapped = {"command": ["/bin/bash", "-lc", "--"],
               "args": ["ulimit -n 65536; $KUBERAY_GEN_AUTOSCALER_START_CMD"]}  # fmt: skip
    cluster = _cluster(enableInTreeAutoscaling=True, autoscalerOptions=wrapped)
    sidecar = build_head_pod(cluster)["spec"]["containers"][-1]
    assert (sidecar["command"], sidecar["args"]) == (wrapped["command"], wrapped["args"])
    assert _env(sidecar)["KUBERAY_GEN_AUTOSCALER_START_CMD"] == start
    mine = {"env": [{"name": "KUBERAY_GEN_AUTOSCALER_START_CMD", "value": "true"}]}
    with pytest.raises(InvalidSpec, match="autoscalerOptions.env must not set KUBERAY_GEN_"):
        validate(_cluster(enableInTreeAutoscaling=True, autoscalerOptions=mine))


@pytest.mark.parametrize(
    ("options", "head_env"),
    [({"version": "v1"}, "false"), ({"version": "v2"}, "true"), ({}, None), (None, None)],
)
def test_autoscaler_version_is_told_to_ray(
    options: dict[str, Any] | None, head_env: str | None
) -> None:
    """Ray on KubeRay-made pods starts v2 unless told otherwise: an explicit v1 says so,
    an unset version leaves the choice to Ray."""
    extra: dict[str, Any] = {"enableInTreeAutoscaling": True}
    if options is not None:
        extra["autoscalerOptions"] = options
    cluster = _cluster(**extra)
    head = build_head_pod(cluster)
    assert _env(head["spec"]["containers"][0]).get("RAY_enable_autoscaler_v2") == head_env
    worker = build_worker_pod(cluster, cluster.worker_groups[0])
    assert "RAY_enable_autoscaler_v2" not in _env(worker["spec"]["containers"][0])


def test_logical_resources_and_labels_override_start_params() -> None:
    body = _body()
    group = body["spec"]["workerGroupSpecs"][0]
    group["resources"] = {"CPU": "16", "TPU": "4", "accel": "0.5"}
    group["labels"] = {"zone": "a", "kind": "big"}
    cluster = Cluster.from_body(body)
    pod = build_worker_pod(cluster, cluster.worker_groups[0])
    start = _env(pod["spec"]["containers"][0])["KUBERAY_GEN_RAY_START_CMD"]
    assert "--num-cpus=16" in start
    assert """--resources='{"TPU":4,"accel":0.5}'""" in start
    assert "--labels=kind=big,zone=a" in start
    assert pod["metadata"]["labels"]["zone"] == "a"


def test_gcs_fault_tolerance_env() -> None:
    cluster = _cluster(gcsFaultToleranceOptions={
        "redisAddress": "redis:6379",
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "p"}}},
    })  # fmt: skip
    head = build_head_pod(cluster)
    env = _env(head["spec"]["containers"][0])
    assert env["RAY_REDIS_ADDRESS"] == "redis:6379"
    assert env["REDIS_PASSWORD"] == {"secretKeyRef": {"name": "s", "key": "p"}}
    assert env["RAY_external_storage_namespace"] == "u-1"
    assert "--redis-password=$REDIS_PASSWORD" in env["KUBERAY_GEN_RAY_START_CMD"]
    assert head["metadata"]["annotations"][names.ANNOTATION_FT_ENABLED] == "true"
    worker = build_worker_pod(cluster, cluster.worker_groups[0])
    assert _env(worker["spec"]["containers"][0])["RAY_gcs_rpc_server_reconnect_timeout_s"] == "600"


def _with_redis_env(body: dict[str, Any]) -> dict[str, Any]:
    head = body["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["env"].append({"name": "RAY_REDIS_ADDRESS", "value": "redis:6379"})
    return body


def test_gcs_fault_tolerance_by_the_older_annotation() -> None:
    body = _with_redis_env(_body())
    body["metadata"]["annotations"] = {names.ANNOTATION_FT_ENABLED: "true",
                                       names.ANNOTATION_STORAGE_NAMESPACE: "mine"}  # fmt: skip
    cluster = Cluster.from_body(body)
    validate(cluster)
    assert cluster.ft_enabled and cluster.redis_ft  # so the Redis cleanup finalizer is added
    head = build_head_pod(cluster)
    env = _env(head["spec"]["containers"][0])
    assert (
        env["RAY_REDIS_ADDRESS"] == "redis:6379" and env["RAY_external_storage_namespace"] == "mine"
    )
    assert head["metadata"]["annotations"][names.ANNOTATION_FT_ENABLED] == "true"
    assert head["metadata"]["annotations"][names.ANNOTATION_STORAGE_NAMESPACE] == "mine"
    worker = build_worker_pod(cluster, cluster.worker_groups[0])
    assert _env(worker["spec"]["containers"][0])["RAY_gcs_rpc_server_reconnect_timeout_s"] == "600"
    # "false" is no fault tolerance; then a Redis address in the env alone is refused.
    body["metadata"]["annotations"][names.ANNOTATION_FT_ENABLED] = "false"
    with pytest.raises(InvalidSpec, match="RAY_REDIS_ADDRESS on the head's Ray container turns"):
        validate(Cluster.from_body(body))
    no_redis = _body()
    no_redis["metadata"]["annotations"] = {names.ANNOTATION_FT_ENABLED: "true"}
    with pytest.raises(InvalidSpec, match='ray.io/ft-enabled: "true" needs RAY_REDIS_ADDRESS'):
        validate(Cluster.from_body(no_redis))
    both = _body(gcsFaultToleranceOptions={"redisAddress": "redis:6379"})
    both["metadata"]["annotations"] = {names.ANNOTATION_FT_ENABLED: "true"}
    with pytest.raises(InvalidSpec, match="cannot both be set; keep gcsFaultToleranceOptions"):
        validate(Cluster.from_body(both))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "redis"}, "redisAddress is required"),
        ({"backend": "rocksdb"}, "rocksdb"),
    ],
)
def test_invalid_specs_name_the_field(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        validate(_cluster(gcsFaultToleranceOptions=options))
    body = _body(autoscalerOptions={"version": "v1"})
    head = body["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["env"].append({"name": "RAY_enable_autoscaler_v2", "value": "true"})
    with pytest.raises(InvalidSpec, match="cannot both be set"):
        validate(Cluster.from_body(body))
    with pytest.raises(InvalidSpec, match=r"workerGroupSpecs\[0\].rayStartParams.num-cpus"):
        body = _body()
        body["spec"]["workerGroupSpecs"][0]["rayStartParams"]["num-cpus"] = "lots"
        validate(Cluster.from_body(body))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"authOptions": {"mode": "token", "enableK8sTokenAuth": True}},
            r"spec.authOptions.enableK8sTokenAuth .* not supported yet",
        ),
        ({"tlsOptions": {"enabled": True}}, r"spec.tlsOptions .* not supported yet"),
        ({"networkPolicy": {"mode": "DenyAll"}}, r"spec.networkPolicy .* not supported yet"),
        ({"historyServerOptions": {}}, r"spec.historyServerOptions .* not supported yet"),
    ],
)
def test_what_is_not_supported_yet_is_refused_by_name(
    overrides: dict[str, Any], message: str
) -> None:
    """Never a cluster that reports ready without the security the manifest asked for."""
    with pytest.raises(InvalidSpec, match=message):
        validate(_cluster(**overrides))


def test_ingress_is_refused_as_not_supported_yet() -> None:
    body = _body()
    body["spec"]["headGroupSpec"]["enableIngress"] = True
    with pytest.raises(InvalidSpec, match=r"spec.headGroupSpec.enableIngress .* not supported yet"):
        validate(Cluster.from_body(body))


def test_a_head_service_of_another_name_is_the_one_every_pod_is_told() -> None:
    body = _body()
    body["spec"]["headGroupSpec"]["headService"] = {"metadata": {"name": "mine"}}
    cluster = Cluster.from_body(body)
    validate(cluster)
    assert build_head_service(cluster)["metadata"]["name"] == "mine"
    worker = build_worker_pod(cluster, cluster.worker_groups[0])
    env = _env(worker["spec"]["containers"][0])
    assert (env["FQ_RAY_IP"], env["RAY_IP"]) == ("mine.ns.svc.cluster.local", "mine")
    assert "--address=mine.ns.svc.cluster.local:6379" in env["KUBERAY_GEN_RAY_START_CMD"]
    assert "mine.ns.svc.cluster.local:6379" in worker["spec"]["initContainers"][0]["args"][0]


def test_token_auth_reaches_every_ray_process_by_reference_to_the_secret() -> None:
    cluster = _cluster(authOptions={"mode": "token"}, enableInTreeAutoscaling=True)
    validate(cluster)
    token = {"secretKeyRef": {"name": "rc", "key": "auth_token"}}
    head = build_head_pod(cluster)
    worker = build_worker_pod(cluster, cluster.worker_groups[0])
    ray_processes = (
        head["spec"]["containers"][0],
        head["spec"]["containers"][-1],
        worker["spec"]["containers"][0],
        worker["spec"]["initContainers"][0],
    )
    for container in ray_processes:
        env = _env(container)
        assert (env["RAY_AUTH_MODE"], env["RAY_AUTH_TOKEN"]) == ("token", token), container["name"]
    named = _cluster(authOptions={"secretName": "mine"})  # mode defaults to token
    assert named.token_auth and not named.auth_secret_generated
    assert _env(build_head_pod(named)["spec"]["containers"][0])["RAY_AUTH_TOKEN"] == {
        "secretKeyRef": {"name": "mine", "key": "auth_token"}}  # fmt: skip
    secret = auth.build_secret(cluster, "t0k3n")
    assert secret["metadata"]["name"] == "rc" and secret["stringData"] == {"auth_token": "t0k3n"}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert auth.token_of({"data": {"auth_token": "dDBrM24="}}) == "t0k3n"
    assert auth.token_of({"data": {}}) is None and len(auth.new_token()) == 44
    disabled = _cluster(authOptions={"mode": "disabled"})
    assert "RAY_AUTH_MODE" not in _env(build_head_pod(disabled)["spec"]["containers"][0])


def test_what_asks_for_nothing_more_is_not_refused() -> None:
    validate(_cluster(authOptions={"mode": "disabled"}, tlsOptions={"enabled": False}))
    # KubeRay's spelling of the token-auth switch is the one the schema takes.
    spec = _cluster(authOptions={"mode": "disabled", "enableK8sTokenAuth": False}).spec
    assert spec.auth_options.enable_k8s_token_auth is False


def test_service_headless_by_default_and_typed_when_asked() -> None:
    svc = build_head_service(_cluster())
    assert svc["metadata"]["name"] == "rc-head-svc"
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"]
    assert [p["name"] for p in svc["spec"]["ports"]] == [
        "client", "gcs-server", "dashboard", "metrics", "serve"]  # fmt: skip
    body = _body()
    body["spec"]["headGroupSpec"]["serviceType"] = "NodePort"
    body["spec"]["headServiceAnnotations"] = {"a": "b"}
    svc = build_head_service(Cluster.from_body(body))
    assert svc["spec"]["type"] == "NodePort" and "clusterIP" not in svc["spec"]
    assert svc["metadata"]["annotations"] == {"a": "b"}


def _tpu_group(hosts: int, **start_params: str) -> dict[str, Any]:
    return {
        "groupName": "tpu", "replicas": 1, "numOfHosts": hosts, "rayStartParams": start_params,
        "template": {"spec": {"containers": [{
            "name": "w", "image": "rayproject/ray:2.60.0",
            "resources": {"limits": {"cpu": "1", "google.com/tpu": "4"}},
        }]}},
    }  # fmt: skip


def _start_flags(pod: dict[str, Any]) -> str:
    return _env(pod["spec"]["containers"][0])["KUBERAY_GEN_RAY_START_CMD"]


def test_tpu_limits_become_a_ray_resource_unless_one_is_named() -> None:
    cluster = _cluster(workerGroupSpecs=[_tpu_group(1)])
    assert """--resources='{"TPU":4}'""" in _start_flags(
        build_worker_pod(cluster, cluster.worker_groups[0]))  # fmt: skip
    # Added to the user's own resources, kept when they already say how many TPUs.
    cluster = _cluster(workerGroupSpecs=[_tpu_group(1, resources="'{\"disk\": 1}'")])
    assert """--resources='{"TPU":4,"disk":1}'""" in _start_flags(
        build_worker_pod(cluster, cluster.worker_groups[0]))  # fmt: skip
    cluster = _cluster(workerGroupSpecs=[_tpu_group(1, resources="'{\"TPU\": 2}'")])
    assert """--resources='{"TPU": 2}'""" in _start_flags(
        build_worker_pod(cluster, cluster.worker_groups[0]))  # fmt: skip
    # GPUs are Ray's own: --num-gpus, no --resources.
    plain = _cluster()
    flags = _start_flags(build_worker_pod(plain, plain.worker_groups[0]))
    assert "--num-gpus=2" in flags and "--resources" not in flags


def test_multi_host_groups_get_a_headless_service_of_every_worker() -> None:
    assert build_headless_service(_cluster()) is None
    assert build_headless_service(_cluster(workerGroupSpecs=[_tpu_group(1)])) is None
    svc = build_headless_service(_cluster(workerGroupSpecs=[_tpu_group(2)]))
    assert svc is not None
    assert svc["metadata"]["name"] == "rc-headless"
    assert svc["metadata"]["labels"] == {"ray.io/headless-worker-svc": "rc"}
    assert svc["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert svc["spec"] == {
        "clusterIP": "None", "type": "ClusterIP", "publishNotReadyAddresses": True,
        "selector": {"ray.io/cluster": "rc", "ray.io/node-type": "worker"},
    }  # fmt: skip


# -- planner ----------------------------------------------------------------------------------


def _observed(pod: dict[str, Any], name: str, *, ready: bool = True, created: str = NOW,
              **status: Any) -> dict[str, Any]:  # fmt: skip
    pod = copy.deepcopy(pod)
    pod["metadata"].update(name=name, creationTimestamp=created)
    pod["status"] = {
        "phase": "Running",
        "podIP": "10.0.0.1",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        **status,
    }
    return pod


def _running(cluster: Cluster, workers: int) -> list[dict[str, Any]]:
    group = cluster.worker_groups[0]
    pods = [_observed(build_head_pod(cluster), "rc-head-a")]
    template = build_worker_pod(cluster, group)
    pods += [_observed(template, f"rc-gpu-worker-{i}", created=f"2026-01-01T00:0{i}:00Z")
             for i in range(workers)]  # fmt: skip
    return pods


def test_plan_creates_head_and_workers_then_is_idle() -> None:
    cluster = _cluster()
    plan = make_plan(cluster, [])
    assert [(c.group, c.count) for c in plan.create] == [("headgroup", 1), ("gpu", 2)]
    assert make_plan(cluster, _running(cluster, 2)).idle


def test_plan_scale_down_without_autoscaler_prefers_unready_then_newest() -> None:
    cluster = _cluster()
    pods = _running(cluster, 4)
    pods[1]["status"]["conditions"][0]["status"] = "False"  # rc-gpu-worker-0, the oldest
    plan = make_plan(cluster, pods)
    assert [(d.pod, d.reason) for d in plan.delete] == [
        ("rc-gpu-worker-0", REASON_SCALE_DOWN), ("rc-gpu-worker-3", REASON_SCALE_DOWN)]  # fmt: skip


def test_plan_with_autoscaler_deletes_exactly_workers_to_delete() -> None:
    body = _body(enableInTreeAutoscaling=True)
    body["spec"]["workerGroupSpecs"][0]["replicas"] = 1
    cluster = Cluster.from_body(body)
    pods = _running(cluster, 3)
    assert make_plan(cluster, pods).idle  # a surplus waits for the autoscaler's choice
    body["spec"]["workerGroupSpecs"][0]["scaleStrategy"] = {
        "workersToDelete": ["rc-gpu-worker-0", "gone"]
    }
    plan = make_plan(Cluster.from_body(body), pods)
    assert [(d.pod, d.reason) for d in plan.delete] == [
        ("rc-gpu-worker-0", REASON_WORKERS_TO_DELETE)
    ]
    assert not plan.create


def test_plan_replaces_failed_workers_and_a_missing_head() -> None:
    cluster = _cluster(enableInTreeAutoscaling=True, autoscalerOptions={"version": "v2"})
    pods = _running(cluster, 2)[1:]  # the head is gone
    pods[0]["status"]["containerStatuses"] = [
        {"name": "w", "state": {"terminated": {"exitCode": 1}}}
    ]
    plan = make_plan(cluster, pods)
    assert [(d.pod, d.reason) for d in plan.delete] == [("rc-gpu-worker-0", REASON_FAILED)]
    assert [(c.group, c.count) for c in plan.create] == [("headgroup", 1), ("gpu", 1)]


def test_plan_ignores_terminating_pods_and_suspends_everything() -> None:
    cluster = _cluster()
    pods = _running(cluster, 2)
    pods[2]["metadata"]["deletionTimestamp"] = NOW
    assert [(c.group, c.count) for c in make_plan(cluster, pods).create] == [("gpu", 1)]
    plan = make_plan(_cluster(suspend=True), pods)
    assert {d.reason for d in plan.delete} == {REASON_SUSPENDED} and len(plan.delete) == 2


def test_plan_recreate_replaces_outdated_pods_only_under_recreate() -> None:
    cluster = _cluster()
    pods = _running(cluster, 2)
    body = _body()
    body["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"] = "new"
    assert make_plan(Cluster.from_body(body), pods).idle
    body["spec"]["upgradeStrategy"] = {"type": "Recreate"}
    plan = make_plan(Cluster.from_body(body), pods)
    assert {(d.pod, d.reason) for d in plan.delete} == {
        ("rc-gpu-worker-0", REASON_OUTDATED), ("rc-gpu-worker-1", REASON_OUTDATED)}  # fmt: skip


# -- status -----------------------------------------------------------------------------------


def test_status_ready_with_kuberay_fields_and_quiet_when_unchanged() -> None:
    cluster = _cluster()
    pods = _running(cluster, 2)
    service = build_head_service(cluster)
    status = build_status(cluster, 3, pods, service, {}, failure=None, now=NOW)
    assert status["state"] == "ready" and status["observedGeneration"] == 3
    assert status["desiredWorkerReplicas"] == 2 and status["readyWorkerReplicas"] == 2
    assert status["maxWorkerReplicas"] == 3 and status["minWorkerReplicas"] == 0
    assert status["desiredCPU"] == "10500m"  # 2500m head + 2 x 4 workers
    assert status["desiredMemory"] == "20Gi" and status["desiredGPU"] == "4"
    assert status["head"] == {"podName": "rc-head-a", "podIP": "10.0.0.1",
                              "serviceName": "rc-head-svc", "serviceIP": "10.0.0.1"}  # fmt: skip
    assert status["endpoints"]["dashboard"] == "8265"
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {"HeadPodReady": "True", "RayClusterProvisioned": "True",
                     "RayClusterSuspending": "False", "RayClusterSuspended": "False"}  # fmt: skip
    assert status["head"]["podIP"] == "10.0.0.1"  # KubeRay's spelling, kept by the schema
    again = build_status(cluster, 3, pods, service, status, failure=None, now=LATER)
    assert not changed(status, again) and again["lastUpdateTime"] == NOW


def test_endpoints_are_node_ports_where_the_service_has_them() -> None:
    cluster = _cluster()
    service = build_head_service(cluster)
    service["spec"]["type"] = "NodePort"
    for i, port in enumerate(service["spec"]["ports"]):  # as the apiserver fills them in
        port.update(targetPort=port["port"], nodePort=30000 + i)
    service["spec"]["ports"].append({"port": 9999, "targetPort": 9999})  # unnamed: left out
    status = build_status(cluster, 3, _running(cluster, 2), service, {}, failure=None, now=NOW)
    assert status["endpoints"] == {
        "client": "30000", "gcs-server": "30001", "dashboard": "30002", "metrics": "30003",
        "serve": "30004"}  # fmt: skip
    service["spec"]["ports"][0] = {"name": "client", "port": 80, "targetPort": "client"}
    status = build_status(cluster, 3, _running(cluster, 2), service, {}, failure=None, now=NOW)
    assert status["endpoints"]["client"] == "client"  # a named target port, as KubeRay says it


def test_status_reports_failures_and_suspension() -> None:
    cluster = _cluster()
    failed = build_status(
        cluster, 3, [], None, {}, failure=Failure("FailedCreateHeadPod", "boom"), now=NOW
    )
    condition = next(c for c in failed["conditions"] if c["type"] == "ReplicaFailure")
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "True",
        "FailedCreateHeadPod",
        "boom",
    )
    invalid = build_status(
        None, 4, [], None, failed, failure=Failure("InvalidRayClusterSpec", "bad x"), now=LATER
    )
    assert invalid["state"] == "failed" and invalid["reason"] == "bad x"
    suspended = _cluster(suspend=True)
    pods = _running(cluster, 1)
    going = build_status(suspended, 5, pods, None, invalid, failure=None, now=LATER)
    types = {c["type"]: c["status"] for c in going["conditions"]}
    assert types["RayClusterSuspending"] == "True" and types["RayClusterSuspended"] == "False"
    assert "ReplicaFailure" not in types and going.get("state") is None
    gone = build_status(suspended, 5, [], None, going, failure=None, now=LATER)
    assert gone["state"] == "suspended" and gone["desiredWorkerReplicas"] == 0


def test_podstate_failed_only_when_it_will_not_restart() -> None:
    pod = _observed(build_head_pod(_cluster()), "p")
    pod["status"]["containerStatuses"] = [{"name": "ray-head", "state": {"terminated": {}}}]
    assert not podstate.is_failed(pod)  # restartPolicy Always: the kubelet restarts it
    pod["spec"]["restartPolicy"] = "Never"
    assert podstate.is_failed(pod)
    assert podstate.owned_by(pod, "u-1") and not podstate.owned_by(pod, "u-2")


# -- work queue -------------------------------------------------------------------------------


async def test_work_queue_coalesces_and_backs_off() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(3):
        queue.add("a")
    assert len(queue) == 1
    key = await queue.get()
    queue.add("a")  # while it is processed: runs once more afterwards, not concurrently
    assert queue._queue.qsize() == 0
    queue.done(key)
    assert await asyncio.wait_for(queue.get(), 1) == "a"
    queue.done("a")
    delays = [queue.retry("a") for _ in range(12)]
    assert delays[:3] == [0.5, 1.0, 2.0] and delays[-1] == 300.0  # never a hot loop
    queue.forget("a")
    assert queue.retry("a") == 0.5
    queue.discard("a")
    await asyncio.sleep(0.6)
    assert len(queue) == 0


def test_status_fields_all_survive_the_schema() -> None:
    """The status is passed through the CRD's own model before it is written (the apiserver
    would prune what the schema lacks, and every later comparison would differ); nothing the
    reconciler computes may be lost that way."""
    cluster = _cluster()
    failure = Failure("FailedCreateWorkerPod", "x")
    status = build_status(cluster, 3, _running(cluster, 2), build_head_service(cluster), {},
                          failure=failure, now=NOW)  # fmt: skip
    assert set(status) == {
        "observedGeneration", "readyWorkerReplicas", "availableWorkerReplicas",
        "desiredWorkerReplicas", "minWorkerReplicas", "maxWorkerReplicas", "desiredCPU",
        "desiredMemory", "desiredGPU", "desiredTPU", "head", "endpoints", "conditions", "state",
        "stateTransitionTimes", "lastUpdateTime"}  # fmt: skip
    assert set(status["head"]) == {"podName", "podIP", "serviceName", "serviceIP"}
    fields = {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
    assert set(status["conditions"][0]) == fields
    assert RayClusterStatus.model_validate(status).to_json() == status
