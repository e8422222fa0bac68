"""Ray's in-tree autoscaler: the head pod's sidecar and the RBAC it needs (no I/O).

The autoscaler reads the RayCluster and its pods and JSON-patches the worker groups' replicas
and scaleStrategy; it talks to nothing but the kube-apiserver.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from arenastack_operator import constants
from arenastack_operator.raycluster import names
from arenastack_operator.raycluster.model import Cluster

CONTAINER_RESOURCES: Final = {
    "limits": {"cpu": "500m", "memory": "512Mi"},
    "requests": {"cpu": "500m", "memory": "512Mi"},
}
DEFAULT_PULL_POLICY: Final = "IfNotPresent"
# Also in the container's env (names.ENV_AUTOSCALER_START_CMD), so that a user's own
# autoscalerOptions.args can wrap it ("ulimit -n 65536; $KUBERAY_GEN_AUTOSCALER_START_CMD").
START_CMD: Final = ("ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) "
                    "--cluster-namespace $(RAY_CLUSTER_NAMESPACE)")  # fmt: skip
# What `ray kuberay-autoscaler` calls (reference: "It needs a ServiceAccount ... bound to a Role").
ROLE_RULES: Final = (
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]},
    {"apiGroups": [constants.RAY_GROUP], "resources": [constants.RAYCLUSTER.plural],
     "verbs": ["get", "patch"]},
)  # fmt: skip


def service_account_name(cluster: Cluster) -> str:
    """The head template's service account, else one named after the cluster."""
    named = cluster.spec.head_group_spec.template["spec"].get("serviceAccountName")
    return str(named) if named else names.autoscaler_rbac_name(cluster.name)


def creates_service_account(cluster: Cluster) -> bool:
    """A service account the user named is theirs to create; the operator makes only its own."""
    return not cluster.spec.head_group_spec.template["spec"].get("serviceAccountName")


def build_container(cluster: Cluster, ray: Mapping[str, Any], log_volume: str) -> dict[str, Any]:
    options = cluster.spec.autoscaler_options
    env: list[dict[str, Any]] = [
        {"name": "RAY_CLUSTER_NAME",
         "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{names.LABEL_CLUSTER}']"}}},
        {"name": "RAY_CLUSTER_NAMESPACE",
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "RAY_HEAD_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "KUBERAY_CRD_VER", "value": constants.RAY_VERSION},
        {"name": names.ENV_AUTOSCALER_START_CMD, "value": START_CMD},
    ]  # fmt: skip
    container: dict[str, Any] = {
        "name": names.AUTOSCALER_CONTAINER,
        "image": ray.get("image"),
        "imagePullPolicy": DEFAULT_PULL_POLICY,
        "command": list(names.SHELL),
        "args": [START_CMD],
        "env": env,
        "resources": copy.deepcopy(CONTAINER_RESOURCES),
        "volumeMounts": [{"name": log_volume, "mountPath": names.LOG_PATH}],
    }
    if options is None:
        return container
    if options.image:
        container["image"] = options.image
    if options.image_pull_policy:
        container["imagePullPolicy"] = options.image_pull_policy
    if options.resources is not None:
        container["resources"] = copy.deepcopy(options.resources)
    if options.security_context is not None:
        container["securityContext"] = copy.deepcopy(options.security_context)
    if options.command is not None:
        container["command"] = list(options.command)
    if options.args is not None:
        container["args"] = list(options.args)
    if options.env:
        overridden = {e.get("name") for e in options.env}
        container["env"] = [e for e in env if e["name"] not in overridden]
        container["env"].extend(copy.deepcopy(options.env))
    if options.env_from:
        container["envFrom"] = copy.deepcopy(options.env_from)
    if options.volume_mounts:
        container["volumeMounts"].extend(copy.deepcopy(options.volume_mounts))
    return container


def _metadata(cluster: Cluster, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": cluster.namespace,
        "labels": {
            names.LABEL_CLUSTER: cluster.name,
            constants.LABEL_NAME: names.APP_NAME,
            names.LABEL_CREATED_BY: constants.MANAGED_BY,
        },
        "ownerReferences": [cluster.owner_reference],
    }


def build_rbac(cluster: Cluster) -> list[dict[str, Any]]:
    """ServiceAccount (unless the user names one), Role and RoleBinding, in creation order."""
    name = names.autoscaler_rbac_name(cluster.name)
    account = service_account_name(cluster)
    objects: list[dict[str, Any]] = []
    if creates_service_account(cluster):
        objects.append(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(cluster, account)}
        )
    objects.append({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(cluster, name),
        "rules": [copy.deepcopy(rule) for rule in ROLE_RULES],
    })  # fmt: skip
    objects.append({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(cluster, name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": cluster.namespace}],
    })  # fmt: skip
    return objects
