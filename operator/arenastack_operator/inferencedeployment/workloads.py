"""Pure builders of an InferenceDeployment's children: engine Deployment or RayClusters, engine
Service, model cache claim, and the vllm-router with its Service and RBAC.

Each takes the typed spec (and the owner's identity) and returns a plain manifest.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final

from arenastack_operator import constants, security
from arenastack_operator.hashing import spec_hash
from arenastack_operator.inferencedeployment import engine, names
from arenastack_operator.inferencedeployment.spec import InferenceDeploymentSpec
from arenastack_operator.inferencedeployment.topology import Topology
from arenastack_operator.raycluster import names as raycluster_names

# vllm-router's names for the API's routing policies.
ROUTER_POLICIES: Final = {
    "cacheAware": "cache_aware",
    "powerOfTwo": "power_of_two",
    "roundRobin": "round_robin",
    "consistentHash": "consistent_hash",
}
RAY_VERSION: Final = "2.60.0"  # recorded in the RayCluster; the image decides the real one
RAY_WORKER_GROUP: Final = "gpu"
RAY_WORKER_CONTAINER: Final = "ray-worker"
MAX_SURGE: Final = 1
ROUTER_READINESS_PERIOD_S: Final = 2
# With scale to zero the router holds a request that finds no replica by retrying it with these
# backoffs until autoscaling.activationTimeoutSeconds has passed (vllm-router retries "no
# available workers"; it finds the new replica through its own discovery).
HOLD_INITIAL_BACKOFF_MS: Final = 500
HOLD_MAX_BACKOFF_MS: Final = 5000
HOLD_BACKOFF_MULTIPLIER: Final = 2


@dataclass(frozen=True)
class Owner:
    name: str
    namespace: str
    uid: str


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": constants.INFERENCEDEPLOYMENT.api_version,
        "kind": constants.INFERENCEDEPLOYMENT.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(owner: Owner, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": names.labels(owner.name, component),
        "ownerReferences": [owner_reference(owner)],
    }


# -- engine ------------------------------------------------------------------------------------


def engine_pod_template(
    spec: InferenceDeploymentSpec, owner: Owner, topology: Topology
) -> dict[str, Any]:
    """Pod template of single-pod replicas (or of pods joining a referenced RayCluster)."""
    ray_start = None
    executor = engine.default_executor(spec)
    gpus = topology.gpus
    if topology.layout == "rayRef":
        assert spec.ray_cluster_ref is not None
        head = f"{spec.ray_cluster_ref.name}-head-svc.{owner.namespace}.svc.cluster.local"
        # The engine's pod joins the cluster as a node without GPUs and drives it from there.
        ray_start = f"ray start --address={head}:{names.RAY_GCS_PORT} --num-gpus=0"
        executor, gpus = "ray", 0
    container = engine.engine_container(spec, owner.name, gpus, executor, ray_start=ray_start)
    pod_volumes, _ = engine.volumes(spec, owner.name)
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": pod_volumes,
        "terminationGracePeriodSeconds": engine.TERMINATION_GRACE_S,
        **engine.placement(spec),
    }
    template_hash = spec_hash({"spec": pod_spec})
    return {
        "metadata": {
            "labels": names.labels(owner.name, names.COMPONENT_ENGINE),
            "annotations": {names.ANNOTATION_SPEC_HASH: template_hash},
        },
        "spec": pod_spec,
    }


def engine_deployment(
    spec: InferenceDeploymentSpec, owner: Owner, topology: Topology, replicas: int
) -> dict[str, Any]:
    """Replicas as a Deployment: a changed template replaces them one at a time, a new one taking
    traffic only once ready (/v1/models lists the model) and an old one leaving first."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(owner, names.engine_name(owner.name), names.COMPONENT_ENGINE),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": names.selector_labels(owner.name, names.COMPONENT_ENGINE)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": MAX_SURGE, "maxUnavailable": 0},
            },
            "template": engine_pod_template(spec, owner, topology),
        },
    }


def engine_service(owner: Owner) -> dict[str, Any]:
    """All ready engine pods (single-pod replicas and Ray heads alike) behind one name."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, names.engine_name(owner.name), names.COMPONENT_ENGINE),
        "spec": {
            "selector": names.selector_labels(owner.name, names.COMPONENT_ENGINE),
            "ports": [
                {
                    "name": names.ENGINE_PORT_NAME,
                    "port": names.ENGINE_PORT,
                    "targetPort": names.ENGINE_PORT_NAME,
                }
            ],
        },
    }


def cache_claim(spec: InferenceDeploymentSpec, owner: Owner) -> dict[str, Any] | None:
    """The download-cache claim the operator creates (None when the user brings one)."""
    cache = spec.model_cache
    if cache is None or cache.size is None:
        return None
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(cache.size)}},
    }
    if cache.storage_class_name:
        claim_spec["storageClassName"] = cache.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(owner, names.cache_claim_name(owner.name), names.COMPONENT_ENGINE),
        "spec": claim_spec,
    }


# -- multi-node --------------------------------------------------------------------------------


def ray_head_command(topology: Topology) -> str:
    return (
        f"ray start --head --port={names.RAY_GCS_PORT} --dashboard-host=0.0.0.0 "
        f"--num-gpus={topology.gpus_per_node}"
    )


def ray_cluster(
    spec: InferenceDeploymentSpec, owner: Owner, topology: Topology, replica: int
) -> dict[str, Any]:
    """A RayCluster sized for one replica: the engine on the head (Ray as its distributed
    executor), one worker per further node, each with its share of the replica's GPUs."""
    name = names.ray_cluster_name(owner.name, replica)
    head = engine.engine_container(
        spec, owner.name, topology.gpus_per_node, "ray", ray_start=ray_head_command(topology)
    )
    pod_volumes, _ = engine.volumes(spec, owner.name)
    common = {
        "volumes": pod_volumes,
        "terminationGracePeriodSeconds": engine.TERMINATION_GRACE_S,
        **engine.placement(spec),
    }
    worker = {
        "name": RAY_WORKER_CONTAINER,
        "image": spec.image,
        "resources": engine.resources(spec, topology.gpus_per_node),
        "env": copy.deepcopy(head.get("env", [])),
        "volumeMounts": copy.deepcopy(head["volumeMounts"]),
    }
    if not worker["env"]:
        del worker["env"]
    template_hash = spec_hash({"head": head, "worker": worker, "common": common})
    head_labels = names.labels(owner.name, names.COMPONENT_ENGINE)
    metadata = _metadata(owner, name, names.COMPONENT_ENGINE)
    metadata["annotations"] = {names.ANNOTATION_SPEC_HASH: template_hash}
    return {
        "apiVersion": constants.RAYCLUSTER.api_version,
        "kind": constants.RAYCLUSTER.kind,
        "metadata": metadata,
        "spec": {
            "rayVersion": RAY_VERSION,
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {
                    "metadata": {
                        "labels": head_labels,
                        # KubeRay (and arenastack) run the head container's own command only
                        # with this annotation (else `ray start` is added); the engine's command
                        # starts the Ray head itself, then the engine. On the head's template
                        # alone: the workers' `ray start` is the one the operator generates.
                        "annotations": {
                            names.ANNOTATION_SPEC_HASH: template_hash,
                            raycluster_names.ANNOTATION_OVERWRITE_CMD: "true",
                        },
                    },
                    "spec": {"containers": [head], **copy.deepcopy(common)},
                },
            },
            "workerGroupSpecs": [
                {
                    "groupName": RAY_WORKER_GROUP,
                    "replicas": topology.workers,
                    "minReplicas": topology.workers,
                    "maxReplicas": topology.workers,
                    "rayStartParams": {},
                    "template": {
                        "metadata": {"labels": names.labels(owner.name, "ray-worker")},
                        "spec": {"containers": [worker], **copy.deepcopy(common)},
                    },
                }
            ],
        },
    }


# -- router ------------------------------------------------------------------------------------


def router_args(
    spec: InferenceDeploymentSpec, owner: Owner, worker_urls: list[str] | None = None
) -> list[str]:
    router = spec.router
    args = [
        "--host", "0.0.0.0",
        "--port", str(names.ROUTER_PORT),
        "--policy", ROUTER_POLICIES[router.policy],
        "--prometheus-host", "0.0.0.0",
        "--prometheus-port", str(names.ROUTER_METRICS_PORT),
        # Before --selector and --worker-urls, which take every value up to the next flag: a
        # stray value here is the router's error, not a silently added selector or worker.
        *(router.extra_args or []),
    ]  # fmt: skip
    if router.discovery == "labelSelector":
        selector = names.selector_labels(owner.name, names.COMPONENT_ENGINE)
        args += [
            "--service-discovery",
            "--service-discovery-namespace", owner.namespace,
            "--service-discovery-port", str(names.ENGINE_PORT),
            "--selector", *(f"{k}={v}" for k, v in sorted(selector.items())),
        ]  # fmt: skip
    else:
        args += ["--worker-urls", *(worker_urls or [])]
    scaling = spec.autoscaling
    if scaling is not None and scaling.scale_to_zero:
        args += [
            "--retry-max-retries", str(hold_attempts(scaling.activation_timeout_seconds)),
            "--retry-initial-backoff-ms", str(HOLD_INITIAL_BACKOFF_MS),
            "--retry-max-backoff-ms", str(HOLD_MAX_BACKOFF_MS),
            "--retry-backoff-multiplier", str(HOLD_BACKOFF_MULTIPLIER),
        ]  # fmt: skip
    return args


def hold_attempts(seconds: int) -> int:
    """vllm-router's --retry-max-retries (attempts, the first included) whose backoffs add up
    to at least `seconds`."""
    attempts, waited_ms, backoff_ms = 1, 0, HOLD_INITIAL_BACKOFF_MS
    while waited_ms < seconds * 1000:
        waited_ms += backoff_ms
        backoff_ms = min(backoff_ms * HOLD_BACKOFF_MULTIPLIER, HOLD_MAX_BACKOFF_MS)
        attempts += 1
    return attempts


def router_deployment(
    spec: InferenceDeploymentSpec, owner: Owner, worker_urls: list[str] | None = None
) -> dict[str, Any]:
    name = names.router_name(owner.name)
    container: dict[str, Any] = {
        "name": names.ROUTER_CONTAINER,
        "image": spec.router.image,
        "command": [names.ROUTER_COMMAND],
        "args": router_args(spec, owner, worker_urls),
        "ports": [
            {"name": names.ROUTER_PORT_NAME, "containerPort": names.ROUTER_PORT},
            {"name": names.ROUTER_METRICS_PORT_NAME, "containerPort": names.ROUTER_METRICS_PORT},
        ],
        "readinessProbe": {
            "httpGet": {"path": names.HEALTH_PATH, "port": names.ROUTER_PORT_NAME},
            "periodSeconds": ROUTER_READINESS_PERIOD_S,
        },
        "securityContext": security.container_security_context(),
    }
    if spec.router.resources:
        container["resources"] = copy.deepcopy(spec.router.resources)
    labels = names.labels(owner.name, names.COMPONENT_ROUTER)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(owner, name, names.COMPONENT_ROUTER),
        "spec": {
            "replicas": spec.router.replicas,
            "selector": {"matchLabels": names.selector_labels(owner.name, names.COMPONENT_ROUTER)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": name,
                    "securityContext": security.pod_security_context(),
                    "containers": [container],
                },
            },
        },
    }


def router_service(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, names.router_name(owner.name), names.COMPONENT_ROUTER),
        "spec": {
            "selector": names.selector_labels(owner.name, names.COMPONENT_ROUTER),
            "ports": [
                {
                    "name": names.ROUTER_PORT_NAME,
                    "port": names.ROUTER_PORT,
                    "targetPort": names.ROUTER_PORT_NAME,
                },
                {
                    "name": names.ROUTER_METRICS_PORT_NAME,
                    "port": names.ROUTER_METRICS_PORT,
                    "targetPort": names.ROUTER_METRICS_PORT_NAME,
                },
            ],
        },
    }


def router_rbac(owner: Owner) -> list[dict[str, Any]]:
    """The router's ServiceAccount and its right to watch pods (its service discovery)."""
    name = names.router_name(owner.name)
    meta = _metadata(owner, name, names.COMPONENT_ROUTER)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": copy.deepcopy(meta)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": copy.deepcopy(meta),
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": copy.deepcopy(meta),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
        },
    ]


def endpoint(spec: InferenceDeploymentSpec, owner: Owner) -> str:
    """The OpenAI base URL clients use: the router's, or the engines' Service without one."""
    if spec.router.enabled:
        base = names.service_url(names.router_name(owner.name), owner.namespace, names.ROUTER_PORT)
    else:
        base = names.service_url(names.engine_name(owner.name), owner.namespace, names.ENGINE_PORT)
    return base + names.OPENAI_BASE_PATH
