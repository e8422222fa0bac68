"""Typed definition of KubeRay's ``ray.io/v1`` RayCluster, field for field.

Field names, JSON names, optionality and schema defaults follow KubeRay's
``ray-operator/apis/ray/v1/raycluster_types.go``, so manifests written for
KubeRay, and Ray's own autoscaler (which reads and JSON-patches this object),
work unchanged. The descriptions are arenastack's own. Where arenastack is
stricter than KubeRay (CEL rules below), the rule refuses what KubeRay would
silently clamp or fail on later.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from arenastack_operator import constants
from arenastack_operator.schema.base import (
    INT32_MAX,
    ApiModel,
    Conditions,
    CrdInfo,
    EnvFromSources,
    EnvVars,
    EnvVarSource,
    Int32,
    Int64,
    NonNegativeInt32,
    PodTemplateSpec,
    PositiveInt32,
    PrinterColumn,
    Quantity,
    ResourceRequirements,
    SecurityContext,
    ServiceObject,
    StringMap,
    Timestamp,
    VolumeMounts,
    cel,
    immutable,
    k8s,
    list_map,
    rules,
)

HEAD_GROUP_NAME = "headgroup"
MANAGED_BY_KUBERAY = "ray.io/kuberay-operator"
MANAGED_BY_MULTIKUEUE = "kueue.x-k8s.io/multikueue"
# A group name becomes the ray.io/group label value and part of pod names.
GROUP_NAME_MAX = 63
GROUP_NAME_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
# Bounds that keep the CEL cost of the cross-group rules within the budget.
MAX_WORKER_GROUPS = 128
MAX_WORKERS_TO_DELETE = 10000
POD_NAME_MAX = 253
# KubeRay's limit: the longest derived Service name ("-serve-svc") must stay a DNS label.
CLUSTER_NAME_MAX = 53
CLUSTER_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

UpscalingMode = Literal["Default", "Aggressive", "Conservative"]
AutoscalerVersion = Literal["v1", "v2"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]
UpgradeType = Literal["Recreate", "None"]
AuthMode = Literal["disabled", "token"]
GcsBackend = Literal["redis", "rocksdb"]
GcsStorageDeletionPolicy = Literal["DeleteWithCluster", "Retain"]
NetworkPolicyMode = Literal["DenyAll", "DenyAllIngress", "DenyAllEgress"]
IngressPathType = Literal["Exact", "Prefix", "ImplementationSpecific"]
AccessMode = Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]
ClusterState = Literal["ready", "failed", "suspended"]

# rayStartParams keys that say the same as the group's `resources` field.
RESOURCE_START_PARAMS = ("num-cpus", "num-gpus", "memory", "resources")
RESOURCES_XOR_START_PARAMS = cel(
    "!has(self.resources) || size(self.resources) == 0 || !has(self.rayStartParams) || "
    "!["
    + ", ".join(f"'{k}'" for k in RESOURCE_START_PARAMS)
    + "].exists(k, k in self.rayStartParams)",
    "set Ray resources either in resources or in rayStartParams (num-cpus, num-gpus, memory, "
    "resources), not both",
    ".resources",
)
CONTAINERS_PRESENT = cel(
    "has(self.template.spec) && size(self.template.spec.containers) > 0",
    "template.spec.containers must hold the Ray container (containers[0])",
    ".template",
)

# Condition types and reasons KubeRay writes (kept identical for tools that read them).
CONDITION_PROVISIONED = "RayClusterProvisioned"
CONDITION_HEAD_POD_READY = "HeadPodReady"
CONDITION_REPLICA_FAILURE = "ReplicaFailure"
CONDITION_SUSPENDING = "RayClusterSuspending"
CONDITION_SUSPENDED = "RayClusterSuspended"


class ScaleStrategy(ApiModel):
    """Which worker pods to remove when a group scales down."""

    workers_to_delete: (
        Annotated[
            list[Annotated[str, Field(max_length=POD_NAME_MAX)]],
            Field(max_length=MAX_WORKERS_TO_DELETE),
        ]
        | None
    ) = Field(
        default=None,
        description="Names of worker pods to delete. Ray's autoscaler writes this list together "
        "with a lower replicas value and clears it once the pods are gone; the operator deletes "
        "exactly these pods, never others, while scaling down.",
    )


class AutoscalerOptions(ApiModel):
    """Settings of Ray's in-tree autoscaler, which runs as a sidecar of the head pod."""

    resources: ResourceRequirements | None = Field(
        default=None,
        description="Resource requests and limits of the autoscaler container "
        "(default 500m CPU and 512Mi memory, requests equal to limits).",
    )
    image: str | None = Field(
        default=None,
        description="Image of the autoscaler container. Defaults to the image of the head "
        "pod's Ray container; override only to test autoscaler builds.",
    )
    image_pull_policy: PullPolicy | None = Field(
        default=None, description="Pull policy of the autoscaler container's image."
    )
    security_context: SecurityContext | None = Field(
        default=None, description="Security context of the autoscaler container."
    )
    idle_timeout_seconds: NonNegativeInt32 | None = Field(
        default=None,
        description="Seconds a worker must be idle (no Ray resources in use) before the "
        "autoscaler removes it. Read by Ray's autoscaler, not by the operator; Ray's default "
        "is 60.",
    )
    upscaling_mode: UpscalingMode | None = Field(
        default=None,
        description="How fast the autoscaler adds workers: Conservative limits pending workers "
        "to the current cluster size; Default and Aggressive (an alias) do not limit it. Read "
        "by Ray's autoscaler.",
    )
    version: AutoscalerVersion | None = Field(
        default=None,
        description="Autoscaler generation to run: v1 or v2. Unset: v2 from Ray 2.47.0 on, "
        "v1 before.",
    )
    env: EnvVars | None = Field(
        default=None, description="Extra environment variables of the autoscaler container."
    )
    env_from: EnvFromSources | None = Field(
        default=None,
        description="Sources (ConfigMaps, Secrets) of extra environment variables of the "
        "autoscaler container.",
    )
    volume_mounts: VolumeMounts | None = Field(
        default=None,
        description="Volume mounts of the autoscaler container (for example TLS material); "
        "the volumes come from the head pod template.",
    )
    command: list[str] | None = Field(
        default=None, description="Replaces the autoscaler container's command."
    )
    args: list[str] | None = Field(
        default=None, description="Replaces the autoscaler container's arguments."
    )


class RedisCredential(ApiModel):
    """A Redis user name or password, given inline or taken from a Secret or ConfigMap."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "!(has(self.value) && has(self.valueFrom))",
                "set either value or valueFrom, not both",
            )
        )
    }

    value_from: EnvVarSource | None = Field(
        default=None, description="Where to read the value from (e.g. secretKeyRef)."
    )
    value: str | None = Field(default=None, description="The value itself (prefer valueFrom).")


class GcsEmbeddedStorage(ApiModel):
    """The persistent volume of the embedded RocksDB GCS store."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "!has(self.claimName) || "
                "!(has(self.size) || has(self.storageClassName) || has(self.accessModes))",
                "claimName names an existing claim; it cannot be combined with size, "
                "storageClassName or accessModes",
                ".claimName",
            )
        )
    }

    claim_name: str | None = Field(
        default=None,
        description="An existing PersistentVolumeClaim to use as is; the operator never "
        "creates, resizes, owns or deletes it. Exclusive with size, storageClassName and "
        "accessModes, which describe a claim the operator creates instead.",
        max_length=253,
    )
    size: Quantity | None = Field(
        default=None, description="Size of the claim the operator creates (default 1Gi)."
    )
    storage_class_name: str | None = Field(
        default=None,
        description="Storage class of the claim the operator creates (default: the cluster's "
        "default class).",
    )
    access_modes: list[AccessMode] | None = Field(
        default=None,
        description="Access modes of the claim the operator creates (default ReadWriteOnce). "
        "RocksDB allows one writer at a time whatever the mode.",
    )
    sub_path: str | None = Field(
        default=None, description="Mount this subdirectory of the volume instead of its root."
    )
    deletion_policy: GcsStorageDeletionPolicy | None = Field(
        default=None,
        description="What happens to the operator-created claim when the cluster is deleted: "
        "DeleteWithCluster (default) or Retain.",
    )


class GcsFaultToleranceOptions(ApiModel):
    """GCS fault tolerance: the head's cluster metadata survives a head pod restart."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "!has(self.storage) || (has(self.backend) && self.backend == 'rocksdb')",
                "storage is only used with backend rocksdb",
                ".storage",
            ),
            cel(
                "!has(self.backend) || self.backend != 'rocksdb' || "
                "!(has(self.redisAddress) || has(self.redisPassword) || has(self.redisUsername))",
                "redisAddress, redisUsername and redisPassword are only used with backend redis",
                ".backend",
            ),
        )
    }

    backend: Annotated[GcsBackend | None, Field(json_schema_extra=immutable("backend"))] = Field(
        default=None,
        description="Where the GCS keeps its state: redis (an external Redis, the default) or "
        "rocksdb (an embedded store on a volume of the head pod). Immutable.",
    )
    redis_username: RedisCredential | None = Field(
        default=None, description="User name for the external Redis."
    )
    redis_password: RedisCredential | None = Field(
        default=None, description="Password for the external Redis."
    )
    external_storage_namespace: str | None = Field(
        default=None,
        description="Key prefix of this cluster's data in Redis. Defaults to the RayCluster's "
        "UID; set it only to share state on purpose.",
    )
    redis_address: str | None = Field(
        default=None,
        description="host:port of the external Redis (backend redis). May also come from the "
        "head's RAY_REDIS_ADDRESS environment variable.",
    )
    storage: GcsEmbeddedStorage | None = Field(
        default=None, description="Volume of the embedded RocksDB store (backend rocksdb)."
    )


class IngressOptions(ApiModel):
    """Host, path and TLS of the Ingress created for the head's dashboard."""

    host: str | None = Field(default=None, description="Host name to route (default: any host).")
    path: str | None = Field(default=None, description="HTTP path to route (default /).")
    path_type: IngressPathType | None = Field(
        default=None, description="How path is matched (default Prefix)."
    )
    tls: Annotated[list[dict], k8s("IngressTLS[]")] | None = Field(
        default=None, description="TLS termination of the Ingress."
    )


class HeadGroupSpec(ApiModel):
    """The head pod: runs the GCS, the dashboard and (optionally) the autoscaler."""

    model_config = {"json_schema_extra": rules(CONTAINERS_PRESENT, RESOURCES_XOR_START_PARAMS)}

    template: PodTemplateSpec = Field(
        description="Pod template of the head. containers[0] is the Ray container; the "
        "operator adds the ray start command, environment, probes and labels to it."
    )
    head_service: ServiceObject | None = Field(
        default=None,
        description="A Service to use as the head service; the operator fills in the selector "
        "and default ports.",
    )
    enable_ingress: bool | None = Field(
        default=None, description="Create an Ingress for the head's dashboard."
    )
    ingress_options: IngressOptions | None = Field(
        default=None, description="Settings of the Ingress created when enableIngress is true."
    )
    resources: StringMap | None = Field(
        default=None,
        description="Ray logical resources of the head (e.g. CPU: '4'); override what "
        "rayStartParams and the container resources say. Pod resources are unaffected.",
    )
    labels: StringMap | None = Field(
        default=None,
        description="Ray node labels of the head; also added to the pod's labels; override "
        "--labels in rayStartParams.",
    )
    ray_start_params: StringMap | None = Field(
        default=None,
        description="Flags of `ray start` without the leading dashes (e.g. num-cpus: '0'). "
        "Value 'true' makes a bare flag; 'false' drops it.",
    )
    service_type: ServiceType | None = Field(
        default=None,
        description="Type of the head Service (default ClusterIP; the Service is headless "
        "unless a type or headService says otherwise).",
    )


class WorkerGroupSpec(ApiModel):
    """A group of identical worker pods that scales between minReplicas and maxReplicas."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "self.minReplicas <= self.maxReplicas",
                "minReplicas must be less than or equal to maxReplicas",
                ".minReplicas",
            ),
            cel(
                "!has(self.replicas) || self.replicas <= self.maxReplicas",
                "replicas must be less than or equal to maxReplicas",
                ".replicas",
            ),
            # No `replicas >= minReplicas` rule: replicas defaults to 0 and KubeRay lets
            # autoscaled groups omit it, so the operator runs max(replicas, minReplicas).
            cel(
                f"self.groupName != '{HEAD_GROUP_NAME}'",
                f"groupName '{HEAD_GROUP_NAME}' is reserved for the head group",
                ".groupName",
            ),
            CONTAINERS_PRESENT,
            RESOURCES_XOR_START_PARAMS,
        )
    }

    suspend: bool | None = Field(
        default=None,
        description="Delete this group's pods and create none until set back to false "
        "(used by RayJob's deletion strategy).",
    )
    group_name: str = Field(
        description="Name of the group, unique in the cluster; the value of the ray.io/group "
        "label of its pods and part of their names.",
        min_length=1,
        max_length=GROUP_NAME_MAX,
        pattern=GROUP_NAME_PATTERN,
    )
    replicas: NonNegativeInt32 = Field(
        default=0,
        description="Desired number of replicas (each numOfHosts pods). Ray's autoscaler "
        "changes it when in-tree autoscaling is on, and then only the pods it names in "
        "scaleStrategy.workersToDelete are removed. Without the autoscaler, lowering it removes "
        "the named pods first, then pods that are not Ready, then the newest.",
    )
    min_replicas: NonNegativeInt32 = Field(default=0, description="Fewest replicas of the group.")
    max_replicas: NonNegativeInt32 = Field(
        default=INT32_MAX, description="Most replicas of the group (default: unbounded)."
    )
    idle_timeout_seconds: NonNegativeInt32 | None = Field(
        default=None,
        description="Seconds an idle worker of this group stays before autoscaler v2 removes "
        "it; defaults to autoscalerOptions.idleTimeoutSeconds.",
    )
    priority: Int32 = Field(
        default=0,
        description="Preference of autoscaler v2 (Ray >= 2.56) for this group when several can "
        "serve a demand; higher wins.",
    )
    resources: StringMap | None = Field(
        default=None,
        description="Ray logical resources of each worker (e.g. GPU: '1'); override "
        "rayStartParams and container resources for Ray's accounting only.",
    )
    labels: StringMap | None = Field(
        default=None,
        description="Ray node labels of each worker; also added to the pods' labels; override "
        "--labels in rayStartParams.",
    )
    ray_start_params: StringMap | None = Field(
        default=None,
        description="Flags of `ray start` without the leading dashes. Value 'true' makes a "
        "bare flag; 'false' drops it. The operator sets --address itself.",
    )
    template: PodTemplateSpec = Field(
        description="Pod template of the group's workers. containers[0] is the Ray container."
    )
    scale_strategy: ScaleStrategy | None = Field(
        default=None, description="Which pods to remove on scale-down."
    )
    num_of_hosts: PositiveInt32 = Field(
        default=1,
        description="Pods per replica (multi-host replicas, e.g. TPU slices); all pods of a "
        "replica are created and deleted together.",
    )


class UpgradeStrategy(ApiModel):
    """What happens to running pods when the pod templates change."""

    type: UpgradeType | None = Field(
        default=None,
        description="Recreate deletes all pods and creates them from the new templates; None "
        "(the default) leaves running pods alone, so only new pods use the new templates.",
    )


class AuthOptions(ApiModel):
    """Authentication of clients of the Ray cluster (dashboard, jobs, client)."""

    # KubeRay spells it enableK8sTokenAuth, which the camelCase aliases would not.
    enable_k8s_token_auth: bool | None = Field(
        default=None,
        alias="enableK8sTokenAuth",
        description="Let Ray check Kubernetes service-account tokens through the apiserver "
        "(RAY_ENABLE_K8S_TOKEN_AUTH).",
    )
    secret_name: str | None = Field(
        default=None,
        description="Secret holding the token under key auth_token; without it the operator "
        "generates one per cluster.",
    )
    mode: AuthMode | None = Field(
        default=None, description="disabled or token (the default when authOptions is set)."
    )


class NetworkPolicyRules(ApiModel):
    """Ingress and egress rules appended to the base network policy."""

    ingress_rules: Annotated[list[dict], k8s("NetworkPolicyIngressRule[]")] | None = Field(
        default=None, description="Extra allowed ingress (with DenyAll or DenyAllIngress)."
    )
    egress_rules: Annotated[list[dict], k8s("NetworkPolicyEgressRule[]")] | None = Field(
        default=None,
        description="Extra allowed egress (with DenyAll or DenyAllEgress). DNS is not added "
        "automatically; workers need it to find the head.",
    )


class WorkerGroupNetworkPolicyRules(NetworkPolicyRules):
    """Network policy rules of one worker group."""

    group_name: str = Field(description="The worker group these rules apply to.", max_length=63)


class NetworkPolicyConfig(ApiModel):
    """Network isolation of the cluster's pods; traffic between them is always allowed."""

    mode: NetworkPolicyMode = Field(
        default="DenyAll", description="DenyAll, DenyAllIngress or DenyAllEgress."
    )
    head: NetworkPolicyRules | None = Field(default=None, description="Extra rules of the head.")
    worker: NetworkPolicyRules | None = Field(
        default=None, description="Extra rules of workers without a workerGroups entry."
    )
    worker_groups: (
        Annotated[
            list[WorkerGroupNetworkPolicyRules], Field(json_schema_extra=list_map("groupName"))
        ]
        | None
    ) = Field(default=None, description="Per-group rules; replace worker for that group.")


class TLSOptions(ApiModel):
    """Mutual TLS between the cluster's Ray processes."""

    enabled: bool | None = Field(default=None, description="Turn on mTLS (default false).")


class CollectorOptions(ApiModel):
    """The history-server collector sidecar."""

    image: str | None = Field(default=None, description="Image of the collector.")
    image_pull_policy: PullPolicy | None = Field(default=None, description="Its pull policy.")
    resources: ResourceRequirements | None = Field(default=None, description="Its resources.")
    env: EnvVars | None = Field(default=None, description="Its extra environment variables.")


class HistoryServerOptions(ApiModel):
    """Settings of the Ray history server integration."""

    collector_options: CollectorOptions | None = Field(
        default=None, description="The collector sidecar."
    )


class RayClusterSpec(ApiModel):
    """Desired state of a Ray cluster: one head pod and groups of worker pods."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "!has(self.workerGroupSpecs) || self.workerGroupSpecs.all(g, "
                "self.workerGroupSpecs.exists_one(h, h.groupName == g.groupName))",
                "workerGroupSpecs[].groupName must be unique",
                ".workerGroupSpecs",
            ),
            cel(
                "!has(self.enableInTreeAutoscaling) || !self.enableInTreeAutoscaling || "
                "!has(self.workerGroupSpecs) || "
                "self.workerGroupSpecs.all(g, !has(g.suspend) || !g.suspend)",
                "worker groups cannot be suspended while in-tree autoscaling is enabled",
                ".workerGroupSpecs",
            ),
            cel(
                "!has(self.headGroupSpec.rayStartParams) || "
                "!('redis-username' in self.headGroupSpec.rayStartParams)",
                "redis-username cannot be set in rayStartParams; use "
                "gcsFaultToleranceOptions.redisUsername",
                ".headGroupSpec.rayStartParams",
            ),
            cel(
                "!has(self.gcsFaultToleranceOptions) || !has(self.headGroupSpec.rayStartParams) || "
                "!('redis-password' in self.headGroupSpec.rayStartParams)",
                "redis-password cannot be set in rayStartParams with gcsFaultToleranceOptions; use "
                "gcsFaultToleranceOptions.redisPassword",
                ".headGroupSpec.rayStartParams",
            ),
        )
    }

    upgrade_strategy: UpgradeStrategy | None = Field(
        default=None, description="How pods follow changes of the pod templates."
    )
    auth_options: AuthOptions | None = Field(
        default=None, description="Authentication of clients of the Ray cluster."
    )
    suspend: bool | None = Field(
        default=None,
        description="Delete all pods of the cluster and create none until set back to false.",
    )
    managed_by: (
        Annotated[
            str,
            Field(
                json_schema_extra=rules(
                    cel("self == oldSelf", "the managedBy field is immutable"),
                    cel(
                        f"self in ['{MANAGED_BY_KUBERAY}', '{MANAGED_BY_MULTIKUEUE}']",
                        f"the managedBy field value must be either '{MANAGED_BY_KUBERAY}' or "
                        f"'{MANAGED_BY_MULTIKUEUE}'",
                    ),
                )
            ),
        ]
        | None
    ) = Field(
        default=None,
        description=f"Which controller reconciles the cluster: '{MANAGED_BY_KUBERAY}' (or "
        f"unset) for this operator, '{MANAGED_BY_MULTIKUEUE}' to leave it to Kueue. "
        "Immutable.",
        max_length=63,
    )
    autoscaler_options: AutoscalerOptions | None = Field(
        default=None, description="Settings of Ray's in-tree autoscaler."
    )
    head_service_annotations: StringMap | None = Field(
        default=None, description="Annotations of the head Service."
    )
    enable_in_tree_autoscaling: bool | None = Field(
        default=None,
        description="Run Ray's autoscaler beside the head (with the RBAC it needs); it then "
        "sets each group's replicas and scaleStrategy.",
    )
    gcs_fault_tolerance_options: GcsFaultToleranceOptions | None = Field(
        default=None, description="Keep the GCS state across head restarts."
    )
    history_server_options: HistoryServerOptions | None = Field(
        default=None, description="Ray history server integration."
    )
    network_policy: NetworkPolicyConfig | None = Field(
        default=None, description="NetworkPolicies isolating the cluster's pods."
    )
    tls_options: TLSOptions | None = Field(
        default=None, description="Mutual TLS between the cluster's Ray processes."
    )
    head_group_spec: HeadGroupSpec = Field(description="The head pod.")
    ray_version: str | None = Field(
        default=None,
        description="Ray version of the images (e.g. 2.52.0); chooses version-dependent "
        "behaviour such as the health probes and the autoscaler generation.",
        max_length=64,
    )
    worker_group_specs: (
        Annotated[list[WorkerGroupSpec], Field(max_length=MAX_WORKER_GROUPS)] | None
    ) = Field(default=None, description="Groups of worker pods.")


class HeadInfo(ApiModel):
    """Where the head is."""

    # KubeRay spells the acronym in capitals, which the camelCase aliases would not.
    pod_ip: str | None = Field(default=None, alias="podIP", description="IP of the head pod.")
    service_ip: str | None = Field(
        default=None, alias="serviceIP", description="Cluster IP of the head Service."
    )
    pod_name: str | None = Field(default=None, description="Name of the head pod.")
    service_name: str | None = Field(default=None, description="Name of the head Service.")


class RayClusterStatus(ApiModel):
    """Observed state of the Ray cluster, with KubeRay's field names."""

    state: ClusterState | None = Field(
        default=None,
        description="ready, failed or suspended (deprecated in favour of conditions).",
    )
    desired_cpu: Quantity | None = Field(
        default=None, alias="desiredCPU", description="Total CPUs the cluster's pods request."
    )
    desired_memory: Quantity | None = Field(
        default=None, description="Total memory the cluster's pods request."
    )
    desired_gpu: Quantity | None = Field(
        default=None, alias="desiredGPU", description="Total GPUs the cluster's pods request."
    )
    desired_tpu: Quantity | None = Field(
        default=None, alias="desiredTPU", description="Total TPUs the cluster's pods request."
    )
    last_update_time: Timestamp | None = Field(
        default=None, description="When this status was last written."
    )
    state_transition_times: dict[str, Timestamp] | None = Field(
        default=None, description="When the cluster last entered each state."
    )
    endpoints: StringMap | None = Field(
        default=None, description="Ports of the head Service by name (e.g. dashboard: '8265')."
    )
    head: HeadInfo | None = Field(default=None, description="Where the head is.")
    reason: str | None = Field(default=None, description="Why the cluster is in its state.")
    conditions: Conditions | None = None
    ready_worker_replicas: NonNegativeInt32 | None = Field(
        default=None, description="Worker pods that are Ready."
    )
    available_worker_replicas: NonNegativeInt32 | None = Field(
        default=None, description="Worker pods that are running."
    )
    desired_worker_replicas: NonNegativeInt32 | None = Field(
        default=None, description="Sum over groups of replicas x numOfHosts."
    )
    min_worker_replicas: NonNegativeInt32 | None = Field(
        default=None, description="Sum over groups of minReplicas x numOfHosts."
    )
    max_worker_replicas: NonNegativeInt32 | None = Field(
        default=None, description="Sum over groups of maxReplicas x numOfHosts."
    )
    observed_generation: Int64 | None = Field(
        default=None, description="The .metadata.generation this status describes."
    )


CRD = CrdInfo(
    ref=constants.RAYCLUSTER,
    spec=RayClusterSpec,
    status=RayClusterStatus,
    description="A Ray cluster: a head pod, groups of worker pods, and optionally Ray's "
    "autoscaler (KubeRay's ray.io/v1 API).",
    short_names=("rayc",),
    # KubeRay lists RayClusters under `kubectl get all`.
    categories=("all", "arenastack"),
    printer_columns=(
        PrinterColumn("desired workers", "integer", ".status.desiredWorkerReplicas"),
        PrinterColumn("available workers", "integer", ".status.availableWorkerReplicas"),
        PrinterColumn("ready workers", "integer", ".status.readyWorkerReplicas"),
        PrinterColumn("cpus", "string", ".status.desiredCPU"),
        PrinterColumn("memory", "string", ".status.desiredMemory"),
        PrinterColumn("gpus", "string", ".status.desiredGPU"),
        PrinterColumn("tpus", "string", ".status.desiredTPU", priority=1),
        PrinterColumn("status", "string", ".status.state"),
        PrinterColumn("age", "date", ".metadata.creationTimestamp"),
        PrinterColumn("head pod IP", "string", ".status.head.podIP", priority=1),
        PrinterColumn("head service IP", "string", ".status.head.serviceIP", priority=1),
    ),
    root_rules=(
        cel(
            f"size(self.metadata.name) <= {CLUSTER_NAME_MAX} && "
            f"self.metadata.name.matches('{CLUSTER_NAME_PATTERN}')",
            f"metadata.name must be a DNS-1035 label of at most {CLUSTER_NAME_MAX} characters "
            "(it prefixes the names of the cluster's Services)",
        ),
    ),
)
