"""Head and worker pods of a RayCluster, built from the user's templates (no I/O).

The user's pod template is kept as written (containers, volumes, env, resources, scheduling,
service account, annotations); the operator adds to it what Ray on Kubernetes needs: labels,
the `ray start` command, environment, health probes, /dev/shm, the wait-gcs-ready init
container of workers and, with in-tree autoscaling, the autoscaler sidecar. Whatever the user
already set (an env var, a probe, a /dev/shm mount) wins over the added default.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shlex
from collections.abc import Mapping
from typing import Any, Final

from arenastack_operator import constants
from arenastack_operator.raycluster import autoscaler, names, resources
from arenastack_operator.raycluster.model import ENV_AUTOSCALER_V2, Cluster
from arenastack_operator.raycluster.spec import WorkerGroupSpec

ULIMIT: Final = "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}"
SHELL: Final = list(names.SHELL)
RESTART_NEVER: Final = "Never"
ENV_STORAGE_NAMESPACE: Final = "RAY_external_storage_namespace"
# Ray's logical resources that have their own `ray start` flag; the rest go to --resources.
_LOGICAL_FLAGS: Final = {"CPU": "num-cpus", "GPU": "num-gpus", "memory": "memory"}
# KubeRay's probe timings; the head's checks wait longer (its GCS check has 10 s).
READINESS: Final = {"initialDelaySeconds": 10, "periodSeconds": 5, "timeoutSeconds": 2,
                    "successThreshold": 1, "failureThreshold": 10}  # fmt: skip
LIVENESS: Final = {"initialDelaySeconds": 30, "periodSeconds": 5, "timeoutSeconds": 2,
                   "successThreshold": 1, "failureThreshold": 120}  # fmt: skip
HEAD_PROBE_TIMEOUT_S: Final = 5
HEALTHZ_PATH: Final = "/api/healthz"
_RAYLET_CHECK: Final = (
    f"wget --tries 1 -T 2 -q -O- http://localhost:{names.DASHBOARD_AGENT_PORT}"
    "/api/local_raylet_healthz | grep success"
)
_GCS_CHECK: Final = (
    f"wget --tries 1 -T 10 -q -O- http://localhost:{names.DASHBOARD_PORT}/api/gcs_healthz"
    " | grep success"
)
WAIT_GCS_INTERVAL_S: Final = 5


def build_head_pod(cluster: Cluster) -> dict[str, Any]:
    group = cluster.spec.head_group_spec
    template = copy.deepcopy(group.template)
    pod_spec = template["spec"]
    ray = pod_spec["containers"][names.RAY_CONTAINER_INDEX]
    params = ray_start_params(
        cluster, names.NODE_HEAD, group.ray_start_params, group.resources, group.labels, ray
    )
    _prepare_ray_container(cluster, template, ray, names.NODE_HEAD, params)
    _add_env(ray, _head_env(cluster))
    if cluster.autoscaling:
        pod_spec["serviceAccountName"] = autoscaler.service_account_name(cluster)
        log_volume = _ensure_mount(pod_spec, ray, names.LOG_VOLUME, names.LOG_PATH, {})
        sidecar = autoscaler.build_container(cluster, ray, log_volume)
        _add_env(sidecar, auth_env(cluster))
        pod_spec["containers"].append(sidecar)
    return _finish(cluster, template, names.NODE_HEAD, names.HEAD_GROUP, group.labels)


def build_worker_pod(cluster: Cluster, group: WorkerGroupSpec) -> dict[str, Any]:
    template = copy.deepcopy(group.template)
    pod_spec = template["spec"]
    ray = pod_spec["containers"][names.RAY_CONTAINER_INDEX]
    user_mounts = copy.deepcopy(ray.get("volumeMounts") or [])
    params = ray_start_params(
        cluster, names.NODE_WORKER, group.ray_start_params, group.resources, group.labels, ray
    )
    user_env = copy.deepcopy(ray.get("env") or [])
    _prepare_ray_container(cluster, template, ray, names.NODE_WORKER, params)
    _add_env(ray, _worker_env(cluster))
    pod_spec["initContainers"] = [
        _wait_gcs_container(cluster, ray, user_env, user_mounts),
        *(pod_spec.get("initContainers") or []),
    ]
    return _finish(cluster, template, names.NODE_WORKER, group.group_name, group.labels)


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def _resources_flag(custom: Mapping[str, float | int]) -> str:
    """--resources as KubeRay writes it: compact JSON with sorted keys, single-quoted."""
    return shlex.quote(json.dumps(dict(custom), sort_keys=True, separators=(",", ":")))


def _add_accelerator(params: dict[str, str], limits: Mapping[str, Any], where: str) -> None:
    """A TPU or Neuron core limit becomes a Ray resource (TPU, neuron_cores) unless --resources
    already names one, as KubeRay adds it: Ray does not detect these devices by itself."""
    accelerator = resources.custom_accelerator(limits, f"{where}.limits")
    if accelerator is None:
        return
    try:
        custom = json.loads(params.get("resources", "{}").strip("'\"` "))
    except ValueError:
        return  # a --resources Ray cannot read either: `ray start` reports it
    if not isinstance(custom, dict) or custom.keys() & resources.ACCELERATOR_RAY_NAMES:
        return
    name, value = accelerator
    custom[name] = _number(float(value))
    params["resources"] = _resources_flag(custom)


def auth_env(cluster: Cluster) -> list[dict[str, Any]]:
    """What a Ray process or client of a cluster with token authentication needs: the mode,
    and the token from the cluster's Secret (never its value)."""
    if not cluster.token_auth:
        return []
    secret = {"name": cluster.auth_secret_name, "key": names.AUTH_TOKEN_KEY}
    return [
        {"name": names.ENV_AUTH_MODE, "value": names.AUTH_MODE_TOKEN},
        {"name": names.ENV_AUTH_TOKEN, "valueFrom": {"secretKeyRef": secret}},
    ]


def pod_labels(cluster: Cluster, node_type: str, group: str) -> dict[str, str]:
    """The labels the operator owns on every Ray pod (Ray's autoscaler needs node-type, group)."""
    return {
        names.LABEL_CLUSTER: cluster.name,
        names.LABEL_NODE_TYPE: node_type,
        names.LABEL_GROUP: group,
        names.LABEL_IDENTIFIER: names.identifier(cluster.name, node_type),
        names.LABEL_IS_RAY_NODE: "yes",
        constants.LABEL_NAME: names.APP_NAME,
        names.LABEL_CREATED_BY: constants.MANAGED_BY,
    }


def ray_start_params(
    cluster: Cluster,
    node_type: str,
    user_params: Mapping[str, str] | None,
    logical: Mapping[str, str] | None,
    node_labels: Mapping[str, str] | None,
    ray: Mapping[str, Any],
) -> dict[str, str]:
    """The `ray start` flags: the user's, then sizes from the container's resources where the
    user set none, then the group's logical resources and labels (which win), then what the
    operator always needs."""
    params = dict(user_params or {})
    where = f"{_container_path(node_type)}.resources"
    container_resources = ray.get("resources") or {}
    limits = container_resources.get("limits") or {}
    cpu = resources.effective(container_resources, resources.CPU, where)
    if cpu is not None and cpu > 0:
        params.setdefault("num-cpus", str(resources.ceil_int(cpu)))
    memory = limits.get(resources.MEMORY)
    if memory is not None:
        params.setdefault(
            "memory", str(resources.ceil_int(resources.parse(memory, f"{where}.limits.memory")))
        )
    gpus = resources.gpu_limit(limits, f"{where}.limits")
    if gpus is not None:
        params.setdefault("num-gpus", str(resources.ceil_int(gpus)))

    custom: dict[str, float | int] = {}
    for key, value in sorted((logical or {}).items()):
        if key in _LOGICAL_FLAGS:
            params[_LOGICAL_FLAGS[key]] = value
        else:
            custom[key] = _number(float(value))
    if custom:
        params["resources"] = _resources_flag(custom)
    _add_accelerator(params, limits, where)
    if node_labels:
        params["labels"] = shlex.quote(",".join(f"{k}={v}" for k, v in sorted(node_labels.items())))

    params.setdefault("metrics-export-port", str(names.METRICS_PORT))
    params.setdefault("dashboard-agent-listen-port", str(names.DASHBOARD_AGENT_PORT))
    params["block"] = "true"
    if node_type == names.NODE_HEAD:
        params.setdefault("dashboard-host", "0.0.0.0")
        if cluster.autoscaling:
            params["no-monitor"] = "true"
        ft = cluster.spec.gcs_fault_tolerance_options
        if ft is not None and ft.redis_password is not None:
            params.setdefault("redis-password", "$REDIS_PASSWORD")
        if ft is not None and ft.redis_username is not None:
            params.setdefault("redis-username", "$REDIS_USERNAME")
    else:
        params.setdefault("address", f"{cluster.head_fqdn}:"
                                     f"{cluster.gcs_port}")  # fmt: skip
    return params


def ray_start_command(node_type: str, params: Mapping[str, str]) -> str:
    """`ray start [--head]` and the flags sorted; 'true' is a bare flag, 'false' is left out."""
    parts = ["ray", "start"]
    if node_type == names.NODE_HEAD:
        parts.append("--head")
    for key in sorted(params):
        value = params[key]
        if value.lower() == "true":
            parts.append(f"--{key}")
        elif value.lower() != "false":
            parts.append(f"--{key}={value}")
    return " ".join(parts)


def ray_container_ports(ray: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Ray container's ports plus the metrics port Prometheus scrapes."""
    ports = [dict(p) for p in ray.get("ports") or []]
    if not any(
        p.get("name") == names.METRICS_PORT_NAME or p.get("containerPort") == names.METRICS_PORT
        for p in ports
    ):
        ports.append({"name": names.METRICS_PORT_NAME, "containerPort": names.METRICS_PORT})
    return ports


def pod_hash(pod: Mapping[str, Any]) -> str:
    """Identifies the spec a pod was built from (stable across operator restarts)."""
    data = json.dumps(pod, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _overwrites_command(cluster: Cluster, template: Mapping[str, Any]) -> bool:
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    own = str(annotations.get(names.ANNOTATION_OVERWRITE_CMD, "")).lower() == "true"
    return cluster.overwrites_container_cmd or own


def _prepare_ray_container(
    cluster: Cluster,
    template: Mapping[str, Any],
    ray: dict[str, Any],
    node_type: str,
    params: Mapping[str, str],
) -> None:
    start = ray_start_command(node_type, params)
    user_command = " ".join([*(ray.get("command") or []), *(ray.get("args") or [])])
    # A command that runs `ray start` itself is kept too (KubeRay's older rule).
    if not _overwrites_command(cluster, template) and "ray start" not in user_command:
        script = f"{user_command} && {start}" if user_command else start
        ray["command"] = list(SHELL)
        ray["args"] = [f"{ULIMIT}; {script}"]
    ray["ports"] = ray_container_ports(ray)
    _add_env(ray, _common_env(cluster, node_type, start))
    _add_env(ray, auth_env(cluster))
    ray.setdefault("readinessProbe", _probe(cluster, node_type, READINESS))
    ray.setdefault("livenessProbe", _probe(cluster, node_type, LIVENESS))


def _finish(
    cluster: Cluster,
    template: dict[str, Any],
    node_type: str,
    group: str,
    node_labels: Mapping[str, str] | None,
) -> dict[str, Any]:
    pod_spec = template["spec"]
    ray = pod_spec["containers"][names.RAY_CONTAINER_INDEX]
    _add_shared_memory(pod_spec, ray)
    if cluster.autoscaler_v2:
        # Autoscaler v2 replaces failed Ray nodes itself; a restarted container would rejoin
        # under the same instance id.
        pod_spec["restartPolicy"] = RESTART_NEVER
    meta = template.get("metadata") or {}
    labels = {**(meta.get("labels") or {}), **(node_labels or {})}
    labels.update(pod_labels(cluster, node_type, group))
    for init in pod_spec.get("initContainers") or []:
        _add_env(init, _head_address_env(cluster))
    annotations = dict(meta.get("annotations") or {})
    if node_type == names.NODE_HEAD:
        annotations[names.ANNOTATION_FT_ENABLED] = str(cluster.ft_enabled).lower()
    if cluster.redis_ft and node_type == names.NODE_HEAD:
        annotations[names.ANNOTATION_STORAGE_NAMESPACE] = cluster.storage_namespace
    if cluster.overwrites_container_cmd:
        annotations[names.ANNOTATION_OVERWRITE_CMD] = "true"
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": names.pod_generate_name(
                cluster.name, None if node_type == names.NODE_HEAD else group
            ),
            "namespace": cluster.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [cluster.owner_reference],
        },
        "spec": pod_spec,
    }
    annotations[names.ANNOTATION_POD_HASH] = pod_hash(pod)
    return pod


def _container_path(node_type: str) -> str:
    if node_type == names.NODE_HEAD:
        return "spec.headGroupSpec.template.spec.containers[0]"
    return "spec.workerGroupSpecs[].template.spec.containers[0]"


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _common_env(cluster: Cluster, node_type: str, start: str) -> list[dict[str, Any]]:
    address = (
        f"127.0.0.1:{cluster.gcs_port}"
        if node_type == names.NODE_HEAD
        else f"{cluster.head_fqdn}:{cluster.gcs_port}"
    )
    return [
        _field_env("RAY_CLUSTER_NAME", f"metadata.labels['{names.LABEL_CLUSTER}']"),
        # Autoscaler v2 checks that this equals the pod name.
        _field_env("RAY_CLOUD_INSTANCE_ID", "metadata.name"),
        _field_env("RAY_NODE_TYPE_NAME", f"metadata.labels['{names.LABEL_GROUP}']"),
        {"name": "KUBERAY_GEN_RAY_START_CMD", "value": start},
        {"name": "RAY_PORT", "value": str(cluster.gcs_port)},
        {"name": "RAY_ADDRESS", "value": address},
        {"name": "RAY_USAGE_STATS_KUBERAY_IN_USE", "value": "1"},
        # The dashboard shows disk usage only with this.
        {"name": "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "value": "1"},
    ]


def _head_env(cluster: Cluster) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if cluster.autoscaler_v2:
        env.append({"name": ENV_AUTOSCALER_V2, "value": "true"})
    elif cluster.autoscaler_v1:
        # `ray start --head` (Ray >= 2.47) turns v2 on by itself when it sees the KubeRay
        # environment (RAY_CLOUD_INSTANCE_ID, RAY_NODE_TYPE_NAME), so v1 must be asked for.
        env.append({"name": ENV_AUTOSCALER_V2, "value": "false"})
    ft = cluster.spec.gcs_fault_tolerance_options
    if ft is not None:
        if ft.redis_address:
            env.append({"name": "RAY_REDIS_ADDRESS", "value": ft.redis_address})
        for name, credential in (("REDIS_PASSWORD", ft.redis_password),
                                 ("REDIS_USERNAME", ft.redis_username)):  # fmt: skip
            if credential is not None:
                env.append({"name": name, **credential.to_json()})
    if cluster.ft_enabled:
        env.append({"name": ENV_STORAGE_NAMESPACE, "value": cluster.storage_namespace})
    return env


def _head_address_env(cluster: Cluster) -> list[dict[str, Any]]:
    """The head's name, fully qualified and short (RAY_IP: KubeRay keeps it for older
    images), for workers and for every init container (a TLS certificate needs it)."""
    return [
        {"name": "FQ_RAY_IP", "value": cluster.head_fqdn},
        {"name": "RAY_IP", "value": cluster.head_service_name},
    ]


def _worker_env(cluster: Cluster) -> list[dict[str, Any]]:
    env = _head_address_env(cluster)
    if cluster.ft_enabled:
        # Workers outlive a head restart only if they wait for the new GCS long enough.
        env.append({"name": "RAY_gcs_rpc_server_reconnect_timeout_s", "value": "600"})
    return env


def _add_env(container: dict[str, Any], env: list[dict[str, Any]]) -> None:
    existing = container.setdefault("env", [])
    present = {e.get("name") for e in existing}
    existing.extend(e for e in env if e["name"] not in present)


def _probe(cluster: Cluster, node_type: str, timing: Mapping[str, int]) -> dict[str, Any]:
    if node_type == names.NODE_HEAD:
        timing = {**timing, "timeoutSeconds": HEAD_PROBE_TIMEOUT_S}
    if cluster.http_probes:
        return {"httpGet": {"path": HEALTHZ_PATH, "port": names.DASHBOARD_AGENT_PORT}, **timing}
    check = _RAYLET_CHECK
    if node_type == names.NODE_HEAD:
        check = f"{_RAYLET_CHECK} && {_GCS_CHECK}"
    return {"exec": {"command": ["bash", "-c", check]}, **timing}


def _add_shared_memory(pod_spec: dict[str, Any], ray: dict[str, Any]) -> None:
    """The object store lives in /dev/shm; Docker's default 64 MiB would starve it."""
    if any(m.get("mountPath") == names.SHM_PATH for m in ray.get("volumeMounts") or []):
        return
    empty_dir: dict[str, Any] = {"medium": "Memory"}
    # The quantity as the user wrote it (its limit, else its request), as KubeRay copies it.
    for kind in ("limits", "requests"):
        memory = ((ray.get("resources") or {}).get(kind) or {}).get(resources.MEMORY)
        if memory is not None:
            empty_dir["sizeLimit"] = str(memory)
            break
    _ensure_mount(pod_spec, ray, names.SHM_VOLUME, names.SHM_PATH, empty_dir)


def _ensure_mount(
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    volume: str,
    path: str,
    empty_dir: dict[str, Any],
) -> str:
    """Mount an emptyDir at `path` unless the container already mounts something there;
    returns the name of the volume mounted at `path`."""
    mounts = container.setdefault("volumeMounts", [])
    for mount in mounts:
        if mount.get("mountPath") == path:
            return str(mount["name"])
    volumes = pod_spec.setdefault("volumes", [])
    if not any(v.get("name") == volume for v in volumes):
        volumes.append({"name": volume, "emptyDir": empty_dir})
    mounts.append({"name": volume, "mountPath": path})
    return volume


def _wait_gcs_container(
    cluster: Cluster,
    ray: Mapping[str, Any],
    user_env: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """Hold the worker back until the head's GCS answers, so `ray start` does not give up.
    It has the Ray container's own env and mounts: `ray health-check` needs the same TLS
    or token settings as `ray start` (KubeRay copies them too)."""
    address = f"{cluster.head_fqdn}:{cluster.gcs_port}"
    script = (
        f"until ray health-check --address {address} > /dev/null 2>&1; do "
        f'echo "waiting for the GCS at {address}"; sleep {WAIT_GCS_INTERVAL_S}; done; '
        'echo "the GCS is ready"'
    )
    container: dict[str, Any] = {
        "name": names.INIT_CONTAINER_WAIT_GCS,
        "image": ray.get("image"),
        "command": list(SHELL),
        "args": [script],
        "env": user_env,
        # Small and fixed: the health check is one short Python process.
        "resources": {
            "limits": {"cpu": "200m", "memory": "256Mi"},
            "requests": {"cpu": "200m", "memory": "256Mi"},
        },
    }
    if ray.get("imagePullPolicy"):
        container["imagePullPolicy"] = ray["imagePullPolicy"]
    if ray.get("securityContext"):
        container["securityContext"] = copy.deepcopy(ray["securityContext"])
    if mounts:
        # TLS material and the like that the image needs to run `ray`.
        container["volumeMounts"] = mounts
    _add_env(container, auth_env(cluster))
    return container
