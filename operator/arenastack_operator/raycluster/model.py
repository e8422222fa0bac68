"""A parsed RayCluster with KubeRay's defaults applied, and the checks the CRD schema cannot do.

Everything here is pure: the builders, the planner and the status all read a `Cluster`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from arenastack_operator import constants
from arenastack_operator.raycluster.names import (
    ANNOTATION_FT_ENABLED,
    ANNOTATION_OVERWRITE_CMD,
    ANNOTATION_STORAGE_NAMESPACE,
    AUTH_MODE_TOKEN,
    ENV_AUTOSCALER_START_CMD,
    TOKEN_AUTH_MIN_VERSION,
    head_service_name,
    service_fqdn,
)
from arenastack_operator.raycluster.spec import (
    MANAGED_BY_MULTIKUEUE,
    RayClusterSpec,
    WorkerGroupSpec,
)

# From this Ray version the dashboard agent answers /api/healthz for both raylet and GCS.
HTTP_PROBE_MIN_VERSION: Final = (2, 53)
ENV_AUTOSCALER_V2: Final = "RAY_enable_autoscaler_v2"
ENV_REDIS_ADDRESS: Final = "RAY_REDIS_ADDRESS"
_TRUE = ("1", "true")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


class InvalidSpec(ValueError):
    """A spec the apiserver accepted but no pods can be built from; the message names the field."""


@dataclass(frozen=True)
class Cluster:
    name: str
    namespace: str
    uid: str
    generation: int
    spec: RayClusterSpec
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Cluster:
        meta = body.get("metadata") or {}
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace") or "default",
            uid=meta.get("uid") or "",
            generation=int(meta.get("generation") or 0),
            spec=RayClusterSpec.model_validate(body.get("spec") or {}),
            annotations=dict(meta.get("annotations") or {}),
        )

    @property
    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": constants.RAYCLUSTER.api_version,
            "kind": constants.RAYCLUSTER.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    @property
    def suspended(self) -> bool:
        return bool(self.spec.suspend)

    @property
    def autoscaling(self) -> bool:
        return bool(self.spec.enable_in_tree_autoscaling)

    @property
    def autoscaler_v2(self) -> bool:
        """Explicitly chosen v2 (autoscalerOptions.version, or the env var on the head's Ray
        container); without either, Ray picks the generation itself."""
        if not self.autoscaling:
            return False
        options = self.spec.autoscaler_options
        if options is not None and options.version is not None:
            return options.version == "v2"
        value = env_value(self.head_container, ENV_AUTOSCALER_V2)
        return value is not None and value.lower() in _TRUE

    @property
    def autoscaler_v1(self) -> bool:
        """Explicitly chosen v1 (autoscalerOptions.version)."""
        options = self.spec.autoscaler_options
        return self.autoscaling and options is not None and options.version == "v1"

    @property
    def head_container(self) -> Mapping[str, Any]:
        return self.spec.head_group_spec.template["spec"]["containers"][0]

    @property
    def http_probes(self) -> bool:
        """Ray >= 2.53 answers /api/healthz; an unset or unparsable version means a current one."""
        match = _VERSION.match(self.spec.ray_version or "")
        if match is None:
            return True
        return (int(match[1]), int(match[2])) >= HTTP_PROBE_MIN_VERSION

    @property
    def gcs_port(self) -> int:
        params = self.spec.head_group_spec.ray_start_params or {}
        return int(params.get("port", "6379"))

    @property
    def ft_by_annotation(self) -> bool:
        """GCS fault tolerance the older way: the annotation, Redis named by the head's env."""
        return self.annotations.get(ANNOTATION_FT_ENABLED, "").lower() == "true"

    @property
    def ft_enabled(self) -> bool:
        return self.spec.gcs_fault_tolerance_options is not None or self.ft_by_annotation

    @property
    def redis_ft(self) -> bool:
        """GCS fault tolerance whose state lives in an external Redis (the one backend served)."""
        ft = self.spec.gcs_fault_tolerance_options
        return self.ft_by_annotation if ft is None else ft.backend != "rocksdb"

    @property
    def storage_namespace(self) -> str:
        """The key prefix of the cluster's GCS state in Redis: the option, else the RayCluster's
        annotation, else its uid (KubeRay's order)."""
        ft = self.spec.gcs_fault_tolerance_options
        if ft is not None and ft.external_storage_namespace:
            return ft.external_storage_namespace
        return self.annotations.get(ANNOTATION_STORAGE_NAMESPACE) or self.uid

    @property
    def head_service_name(self) -> str:
        custom = ((self.spec.head_group_spec.head_service or {}).get("metadata") or {}).get("name")
        return str(custom) if custom else head_service_name(self.name)

    @property
    def head_fqdn(self) -> str:
        return service_fqdn(self.head_service_name, self.namespace)

    @property
    def token_auth(self) -> bool:
        """authOptions with mode token (its default): every Ray process and client needs the
        token."""
        auth = self.spec.auth_options
        return auth is not None and (auth.mode or AUTH_MODE_TOKEN) == AUTH_MODE_TOKEN

    @property
    def auth_secret_name(self) -> str:
        auth = self.spec.auth_options
        return (auth.secret_name if auth is not None else None) or self.name

    @property
    def auth_secret_generated(self) -> bool:
        """The operator makes the token's Secret unless authOptions.secretName names one."""
        auth = self.spec.auth_options
        return self.token_auth and not (auth is not None and auth.secret_name)

    @property
    def overwrites_container_cmd(self) -> bool:
        return self.annotations.get(ANNOTATION_OVERWRITE_CMD, "").lower() == "true"

    @property
    def managed_elsewhere(self) -> bool:
        return self.spec.managed_by == MANAGED_BY_MULTIKUEUE

    @property
    def recreate_on_change(self) -> bool:
        strategy = self.spec.upgrade_strategy
        return strategy is not None and strategy.type == "Recreate"

    def group_suspended(self, group: WorkerGroupSpec) -> bool:
        return self.suspended or bool(group.suspend)

    def desired_workers(self, group: WorkerGroupSpec) -> int:
        """Pods the group should have: replicas held within [minReplicas, maxReplicas], times
        numOfHosts; none while the cluster or the group is suspended."""
        if self.group_suspended(group):
            return 0
        replicas = min(max(group.replicas, group.min_replicas), group.max_replicas)
        return replicas * group.num_of_hosts

    @property
    def worker_groups(self) -> list[WorkerGroupSpec]:
        return list(self.spec.worker_group_specs or [])


def env_value(container: Mapping[str, Any], name: str) -> str | None:
    for env in container.get("env") or []:
        if env.get("name") == name:
            return env.get("value")
    return None


def refuse_unsupported(cluster: Cluster) -> None:
    """Raise InvalidSpec for what KubeRay does and this operator does not do yet: a cluster
    without the authentication, encryption or isolation its manifest asked for must never
    report ready as if it had them."""
    spec = cluster.spec
    not_yet = "is not supported yet by arenastack's RayCluster controller"
    if spec.auth_options is not None and spec.auth_options.enable_k8s_token_auth:
        raise InvalidSpec(f"spec.authOptions.enableK8sTokenAuth (Kubernetes service-account "
                          f"tokens checked by Ray) {not_yet}; use mode: token with a generated "
                          "or named Secret")  # fmt: skip
    if spec.tls_options is not None and spec.tls_options.enabled:
        raise InvalidSpec(f"spec.tlsOptions (mutual TLS between Ray processes) {not_yet}")
    if spec.network_policy is not None:
        raise InvalidSpec(f"spec.networkPolicy (NetworkPolicies isolating the pods) {not_yet}")
    if spec.history_server_options is not None:
        raise InvalidSpec(f"spec.historyServerOptions (the history-server collector) {not_yet}")
    head = spec.head_group_spec
    if head.enable_ingress:
        raise InvalidSpec(f"spec.headGroupSpec.enableIngress (an Ingress for the dashboard) "
                          f"{not_yet}")  # fmt: skip


def validate(cluster: Cluster) -> None:
    """Raise InvalidSpec for what KubeRay refuses at reconcile time (the schema cannot see it),
    and for what this operator does not support yet (refuse_unsupported)."""
    refuse_unsupported(cluster)
    spec = cluster.spec
    options = spec.autoscaler_options
    if (
        options is not None
        and options.version is not None
        and env_value(cluster.head_container, ENV_AUTOSCALER_V2) is not None
    ):
        raise InvalidSpec(
            f"spec.autoscalerOptions.version and the head container's {ENV_AUTOSCALER_V2} "
            "cannot both be set; keep autoscalerOptions.version"
        )
    if options is not None and any(
        e.get("name") == ENV_AUTOSCALER_START_CMD for e in options.env or []
    ):
        raise InvalidSpec(
            f"spec.autoscalerOptions.env must not set {ENV_AUTOSCALER_START_CMD}: the "
            "operator sets it to the autoscaler's start command, for your args to run"
        )
    _validate_ft_annotation(cluster)
    if cluster.token_auth:
        version = _VERSION.match(spec.ray_version or "")
        if version is None:
            raise InvalidSpec("spec.authOptions.mode is 'token' but spec.rayVersion is not a "
                              "version: Ray 2.52.0 or later is required")  # fmt: skip
        if (int(version[1]), int(version[2])) < TOKEN_AUTH_MIN_VERSION:
            raise InvalidSpec("spec.authOptions.mode is 'token' but the minimum Ray version is "
                              f"2.52.0, got {spec.ray_version}")  # fmt: skip
    ft = spec.gcs_fault_tolerance_options
    if ft is not None:
        if ft.backend == "rocksdb":
            # KubeRay keeps this alpha backend behind a feature gate that is off by default.
            raise InvalidSpec(
                "spec.gcsFaultToleranceOptions.backend: rocksdb (embedded GCS storage) is not "
                "supported; use backend redis with redisAddress"
            )
        head_env_address = env_value(cluster.head_container, ENV_REDIS_ADDRESS)
        if not ft.redis_address and not head_env_address:
            raise InvalidSpec(
                "spec.gcsFaultToleranceOptions.redisAddress is required (or set "
                f"{ENV_REDIS_ADDRESS} on the head's Ray container)"
            )
        if ft.redis_address and head_env_address:
            raise InvalidSpec(
                "spec.gcsFaultToleranceOptions.redisAddress and the head container's "
                f"{ENV_REDIS_ADDRESS} cannot both be set"
            )
    for where, params in _all_start_params(cluster):
        for key in ("num-cpus", "num-gpus", "memory"):
            value = params.get(key)
            if value is not None and not _is_number(value):
                raise InvalidSpec(f"{where}.rayStartParams.{key}: {value!r} is not a number")


def _validate_ft_annotation(cluster: Cluster) -> None:
    """KubeRay's rules for the older way, plus one: the annotation without a Redis address
    would give a cluster that loses its state with its head, which is not what was asked."""
    annotation = cluster.annotations.get(ANNOTATION_FT_ENABLED)
    address = env_value(cluster.head_container, ENV_REDIS_ADDRESS)
    if annotation and cluster.spec.gcs_fault_tolerance_options is not None:
        raise InvalidSpec(
            f"the annotation {ANNOTATION_FT_ENABLED} and spec.gcsFaultToleranceOptions cannot "
            "both be set; keep gcsFaultToleranceOptions"
        )
    if cluster.ft_by_annotation and not address:
        raise InvalidSpec(
            f'the annotation {ANNOTATION_FT_ENABLED}: "true" needs {ENV_REDIS_ADDRESS} on '
            "the head's Ray container (or use spec.gcsFaultToleranceOptions.redisAddress)"
        )
    if not cluster.ft_enabled and address:
        raise InvalidSpec(
            f"{ENV_REDIS_ADDRESS} on the head's Ray container turns on GCS fault tolerance only "
            "with spec.gcsFaultToleranceOptions; set it there"
        )


def _all_start_params(cluster: Cluster) -> list[tuple[str, Mapping[str, str]]]:
    found = [("spec.headGroupSpec", cluster.spec.head_group_spec.ray_start_params or {})]
    for i, group in enumerate(cluster.worker_groups):
        found.append((f"spec.workerGroupSpecs[{i}]", group.ray_start_params or {}))
    return found


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
