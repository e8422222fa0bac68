"""Labels, ports, paths and child object names of an InferenceDeployment: defined once here."""

from __future__ import annotations

from typing import Final

from arenastack_operator import constants

# Children carry the deployment's name under this label; the router and the Service select
# engine pods by it together with the component label.
LABEL_DEPLOYMENT: Final = f"{constants.GROUP}/inferencedeployment"
COMPONENT_ENGINE: Final = "engine"
COMPONENT_ROUTER: Final = "router"
APP_NAME: Final = "vllm"
# Hash of the engine settings a pod template was built from (a change rolls the replicas).
ANNOTATION_SPEC_HASH: Final = f"{constants.GROUP}/engine-spec-hash"
# The operator's scale decisions are written to the engine Deployment's replicas; this records
# that the operator (not a user) owns that number.
ANNOTATION_SCALED_BY: Final = f"{constants.GROUP}/scaled-by"

ENGINE_CONTAINER: Final = "vllm"
ENGINE_PORT: Final = 8000
ENGINE_PORT_NAME: Final = "http"
ROUTER_CONTAINER: Final = "router"
ROUTER_PORT: Final = 8000
ROUTER_METRICS_PORT: Final = 29000
ROUTER_PORT_NAME: Final = "http"
ROUTER_METRICS_PORT_NAME: Final = "metrics"

HEALTH_PATH: Final = "/health"
MODELS_PATH: Final = "/v1/models"
METRICS_PATH: Final = "/metrics"
OPENAI_BASE_PATH: Final = "/v1"

# Where the engine finds weights on a volume, and its download cache.
MODEL_MOUNT: Final = "/models"
MODEL_VOLUME: Final = "model"
CACHE_MOUNT: Final = "/root/.cache/huggingface"
CACHE_VOLUME: Final = "model-cache"
SHM_VOLUME: Final = "dshm"
SHM_MOUNT: Final = "/dev/shm"

GPU_RESOURCE: Final = "nvidia.com/gpu"
ENGINE_MODULE: Final = "vllm.entrypoints.openai.api_server"
ROUTER_COMMAND: Final = "vllm-router"
RAY_GCS_PORT: Final = 6379


def engine_name(deployment: str) -> str:
    """The engine Deployment and its Service."""
    return f"{deployment}-engine"


def router_name(deployment: str) -> str:
    """The router Deployment, Service, ServiceAccount, Role and RoleBinding."""
    return f"{deployment}-router"


def cache_claim_name(deployment: str) -> str:
    return f"{deployment}-model-cache"


def ray_cluster_name(deployment: str, replica: int) -> str:
    """One RayCluster per multi-node replica."""
    return f"{deployment}-ray-{replica}"


def service_url(service: str, namespace: str, port: int) -> str:
    return f"http://{service}.{namespace}.svc.cluster.local:{port}"


def selector_labels(deployment: str, component: str) -> dict[str, str]:
    return {
        LABEL_DEPLOYMENT: deployment,
        constants.LABEL_COMPONENT: component,
    }


def labels(deployment: str, component: str) -> dict[str, str]:
    return {
        constants.LABEL_NAME: APP_NAME,
        constants.LABEL_INSTANCE: deployment,
        constants.LABEL_PART_OF: constants.PART_OF,
        constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
        **selector_labels(deployment, component),
    }
