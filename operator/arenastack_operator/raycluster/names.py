"""Labels, annotations, ports and object names of RayCluster children: defined once here.

Label keys and port numbers are KubeRay's, because Ray's autoscaler, dashboards and users'
scripts select pods and services by them.
"""

from __future__ import annotations

import re
from typing import Final

from arenastack_operator import constants
from arenastack_operator.raycluster.spec import HEAD_GROUP_NAME

LABEL_CLUSTER: Final = "ray.io/cluster"
LABEL_NODE_TYPE: Final = "ray.io/node-type"
LABEL_GROUP: Final = "ray.io/group"
LABEL_IDENTIFIER: Final = "ray.io/identifier"
LABEL_IS_RAY_NODE: Final = "ray.io/is-ray-node"
LABEL_CREATED_BY: Final = "app.kubernetes.io/created-by"
# On the Service through which the pods of multi-host worker groups find each other.
LABEL_HEADLESS_WORKER_SVC: Final = "ray.io/headless-worker-svc"
# KubeRay's value of app.kubernetes.io/name on every child; dashboards select on it.
APP_NAME: Final = "kuberay"
NODE_HEAD: Final = "head"
NODE_WORKER: Final = "worker"
HEAD_GROUP: Final = HEAD_GROUP_NAME

# Ray containers (and the autoscaler's) run their start command through this shell, as KubeRay's.
SHELL: Final = ("/bin/bash", "-c", "--")
# Holds the autoscaler's generated start command, for a user's own args to run it.
ENV_AUTOSCALER_START_CMD: Final = "KUBERAY_GEN_AUTOSCALER_START_CMD"

# Token authentication (Ray >= 2.52): the mode, the token, and the key of the token in its
# Secret (`<cluster>` unless authOptions.secretName names one).
ENV_AUTH_MODE: Final = "RAY_AUTH_MODE"
ENV_AUTH_TOKEN: Final = "RAY_AUTH_TOKEN"
AUTH_TOKEN_KEY: Final = "auth_token"
AUTH_MODE_TOKEN: Final = "token"
TOKEN_AUTH_MIN_VERSION: Final = (2, 52)

# Set on pods of a cluster with GCS fault tolerance (KubeRay's key).
ANNOTATION_FT_ENABLED: Final = "ray.io/ft-enabled"
# Where a cluster with GCS fault tolerance keeps its keys in Redis: set by a user on the
# RayCluster (overridden by gcsFaultToleranceOptions.externalStorageNamespace), and by the
# operator on the head pod and the Redis cleanup Job (KubeRay's key).
ANNOTATION_STORAGE_NAMESPACE: Final = "ray.io/external-storage-namespace"
# "true" on a RayCluster (or a group's pod template): the Ray container's command and args are
# kept as written; it runs `ray start` itself, from $KUBERAY_GEN_RAY_START_CMD for instance.
ANNOTATION_OVERWRITE_CMD: Final = "ray.io/overwrite-container-cmd"
# Hash of the spec a pod was built from; upgradeStrategy Recreate replaces pods whose hash differs.
ANNOTATION_POD_HASH: Final = f"{constants.GROUP}/pod-template-hash"

# Ports of the Ray processes.
GCS_PORT: Final = 6379
CLIENT_PORT: Final = 10001
DASHBOARD_PORT: Final = 8265
METRICS_PORT: Final = 8080
SERVE_PORT: Final = 8000
DASHBOARD_AGENT_PORT: Final = 52365
METRICS_PORT_NAME: Final = "metrics"
# Head service ports when the head container names none (KubeRay's defaults).
DEFAULT_SERVICE_PORTS: Final = (
    ("client", CLIENT_PORT),
    ("gcs-server", GCS_PORT),
    ("dashboard", DASHBOARD_PORT),
    (METRICS_PORT_NAME, METRICS_PORT),
    ("serve", SERVE_PORT),
)

RAY_CONTAINER_INDEX: Final = 0
AUTOSCALER_CONTAINER: Final = "autoscaler"
INIT_CONTAINER_WAIT_GCS: Final = "wait-gcs-ready"
SHM_VOLUME: Final = "shared-mem"
SHM_PATH: Final = "/dev/shm"
LOG_VOLUME: Final = "ray-logs"
LOG_PATH: Final = "/tmp/ray"

DNS_LABEL_MAX: Final = 63
# generateName keeps at most this much of the prefix before its 5 random characters.
GENERATE_NAME_MAX: Final = 58
_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


def head_service_name(cluster: str) -> str:
    """The head Service's name unless headService.metadata.name gives another."""
    return f"{cluster}-head-svc"


def headless_service_name(cluster: str) -> str:
    """The Service of multi-host worker groups (numOfHosts > 1), KubeRay's name for it."""
    return f"{cluster}-headless"


def service_fqdn(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


def identifier(cluster: str, node_type: str) -> str:
    """ray.io/identifier: `<cluster>-head` or `<cluster>-worker`, cut to a valid label value."""
    return _label_value(f"{cluster}-{node_type}")


def _label_value(value: str) -> str:
    return value[:DNS_LABEL_MAX].rstrip("-_.")


def pod_generate_name(cluster: str, group: str | None) -> str:
    """`<cluster>-head-` or `<cluster>-<group>-worker-` (group names may hold characters pod
    names cannot, such as capitals and underscores; they become dashes here, not in labels)."""
    base = f"{cluster}-head" if group is None else f"{cluster}-{group}-worker"
    base = _INVALID_NAME_CHARS.sub("-", base.lower()).strip("-")
    return base[: GENERATE_NAME_MAX - 1].rstrip("-") + "-"


def autoscaler_rbac_name(cluster: str) -> str:
    """ServiceAccount (when the head names none), Role and RoleBinding of the autoscaler."""
    return cluster
