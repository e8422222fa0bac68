"""Typed definition of KubeRay's ``ray.io/v1`` RayJob, field for field.

Field names, JSON names, optionality and schema defaults follow KubeRay's
``ray-operator/apis/ray/v1/rayjob_types.go``, so RayJob manifests written for KubeRay apply
unchanged. The cluster a job runs on is the RayCluster definition itself (raycluster/spec.py).
The descriptions are arenastack's own.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from arenastack_operator import constants
from arenastack_operator.raycluster.spec import (
    CLUSTER_NAME_MAX,
    CLUSTER_NAME_PATTERN,
    MANAGED_BY_KUBERAY,
    MANAGED_BY_MULTIKUEUE,
    RayClusterSpec,
    RayClusterStatus,
)
from arenastack_operator.schema.base import (
    ApiModel,
    CrdInfo,
    Int32,
    Int64,
    NonNegativeInt32,
    PodTemplateSpec,
    PrinterColumn,
    StringMap,
    Timestamp,
    cel,
    rules,
)

# A job's cluster is named `<job>-<5 random characters>`, which must still be a cluster name.
JOB_NAME_MAX = CLUSTER_NAME_MAX - 6

SubmissionMode = Literal["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]
DeletionPolicyType = Literal["DeleteCluster", "DeleteWorkers", "DeleteSelf", "DeleteNone"]
# Ray's own job states (ray.job_submission.JobStatus); "" before the job exists.
JobStatus = Literal["", "PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED"]
JobDeploymentStatus = Literal[
    "",
    "Initializing",
    "Running",
    "Complete",
    "Failed",
    "ValidationFailed",
    "Suspending",
    "Suspended",
    "Retrying",
    "Waiting",
]
FailedReason = Literal[
    "",
    "SubmissionFailed",
    "DeadlineExceeded",
    "AppFailed",
    "JobDeploymentStatusTransitionGracePeriodExceeded",
    "ValidationFailed",
]

MODE_K8S_JOB = "K8sJobMode"
MODE_HTTP = "HTTPMode"
MODE_INTERACTIVE = "InteractiveMode"
MODE_SIDECAR = "SidecarMode"


class SubmitterConfig(ApiModel):
    """Settings of the Kubernetes Job that submits the Ray job (K8sJobMode)."""

    backoff_limit: Int32 | None = Field(
        default=None, description="backoffLimit of the submitter Job (default 2)."
    )


class DeletionPolicy(ApiModel):
    """One legacy deletion policy (deprecated by KubeRay in favour of deletionRules)."""

    policy: DeletionPolicyType | None = Field(default=None, description="What to delete.")


class DeletionCondition(ApiModel):
    """When a deletion rule fires."""

    job_status: Literal["SUCCEEDED", "FAILED"] = Field(
        description="The terminal Ray job status the rule waits for."
    )
    ttl_seconds: NonNegativeInt32 | None = Field(
        default=0, description="Seconds after that status before the rule acts."
    )


class DeletionRule(ApiModel):
    """One deletion action and its trigger."""

    policy: DeletionPolicyType = Field(description="What to delete.")
    condition: DeletionCondition = Field(description="When.")


class DeletionStrategy(ApiModel):
    """Clean-up after the job ends: both legacy policies, or deletionRules."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "!((has(self.onSuccess) || has(self.onFailure)) && has(self.deletionRules))",
                "legacy policies (onSuccess/onFailure) and deletionRules cannot be used "
                "together within the same deletionStrategy",
            ),
            cel(
                "((has(self.onSuccess) && has(self.onFailure)) || has(self.deletionRules))",
                "deletionStrategy requires either BOTH onSuccess and onFailure, OR the "
                "deletionRules field (cannot be empty)",
            ),
        )
    }

    on_success: DeletionPolicy | None = Field(default=None, description="After success.")
    on_failure: DeletionPolicy | None = Field(default=None, description="After failure.")
    deletion_rules: Annotated[list[DeletionRule], Field(min_length=1)] | None = Field(
        default=None, description="Rules, each acting on a terminal status after a delay."
    )


class RayJobSpec(ApiModel):
    """A Ray job: an entrypoint, and the cluster it runs on (made for it or selected)."""

    active_deadline_seconds: Int32 | None = Field(
        default=None,
        description="Seconds from the start after which the job is failed with reason "
        "DeadlineExceeded.",
    )
    backoff_limit: Int32 | None = Field(
        default=0, description="Retries, each on a new cluster, before the job is failed."
    )
    ray_cluster_spec: RayClusterSpec | None = Field(
        default=None, description="The cluster made for this job (or set clusterSelector)."
    )
    submitter_pod_template: PodTemplateSpec | None = Field(
        default=None, description="Pod template of the submitter Job (K8sJobMode)."
    )
    metadata: StringMap | None = Field(
        default=None, description="Metadata stored with the Ray job."
    )
    cluster_selector: StringMap | None = Field(
        default=None,
        description="Run on an existing RayCluster, named by the ray.io/cluster key.",
    )
    submitter_config: SubmitterConfig | None = Field(
        default=None, description="Settings of the submitter Job."
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
        description=f"'{MANAGED_BY_KUBERAY}' (or unset) for this operator, "
        f"'{MANAGED_BY_MULTIKUEUE}' to leave the job to Kueue. Immutable.",
        max_length=63,
    )
    deletion_strategy: DeletionStrategy | None = Field(
        default=None, description="What to delete once the job ends."
    )
    entrypoint: str | None = Field(default=None, description="The command the job runs.")
    runtime_env_yaml: str | None = Field(
        default=None,
        alias="runtimeEnvYAML",
        description="Ray runtime environment of the job, as a YAML document.",
    )
    job_id: str | None = Field(
        default=None, description="The Ray job's submission id (generated when unset)."
    )
    submission_mode: SubmissionMode | None = Field(
        default=MODE_K8S_JOB,
        description="How the job reaches the cluster: a submitter Job (K8sJobMode), a request "
        "from the operator (HTTPMode), by the user (InteractiveMode) or a head sidecar.",
    )
    entrypoint_resources: str | None = Field(
        default=None, description="Custom resources reserved for the entrypoint (JSON)."
    )
    entrypoint_num_cpus: float | None = Field(
        default=None, description="CPUs reserved for the entrypoint."
    )
    entrypoint_num_gpus: float | None = Field(
        default=None, description="GPUs reserved for the entrypoint."
    )
    ttl_seconds_after_finished: Int32 | None = Field(
        default=0,
        description="Seconds after the end before the cluster is deleted (with "
        "shutdownAfterJobFinishes).",
    )
    shutdown_after_job_finishes: bool | None = Field(
        default=None, description="Delete the job's cluster once the job ends."
    )
    suspend: bool | None = Field(
        default=None,
        description="Create no cluster (deleting one already made) until set back to false.",
    )


class RayJobStatusInfo(ApiModel):
    """Times the Ray dashboard reports for the job."""

    start_time: Timestamp | None = Field(default=None, description="When Ray started it.")
    end_time: Timestamp | None = Field(default=None, description="When it ended in Ray.")


class RayJobStatus(ApiModel):
    """Observed state of the job, with KubeRay's field names."""

    ray_job_info: RayJobStatusInfo | None = Field(
        default=None, alias="rayJobInfo", description="Times from the Ray dashboard."
    )
    job_id: str | None = Field(default=None, description="The Ray job's submission id.")
    ray_cluster_name: str | None = Field(default=None, description="The cluster it runs on.")
    dashboard_url: str | None = Field(
        default=None, alias="dashboardURL", description="host:port of the cluster's dashboard."
    )
    job_status: JobStatus | None = Field(default=None, description="The Ray job's status.")
    job_deployment_status: JobDeploymentStatus | None = Field(
        default=None, description="Where the operator is with the job and its cluster."
    )
    reason: FailedReason | None = Field(default=None, description="Why it failed.")
    message: str | None = Field(default=None, description="Details, from Ray or the operator.")
    start_time: Timestamp | None = Field(default=None, description="When it was initialised.")
    end_time: Timestamp | None = Field(default=None, description="When it completed or failed.")
    succeeded: Int32 | None = Field(default=None, description="Times the job succeeded.")
    failed: Int32 | None = Field(default=None, description="Times the job failed.")
    ray_cluster_status: RayClusterStatus | None = Field(
        default=None, description="Status of the cluster the job runs on."
    )
    observed_generation: Int64 | None = Field(
        default=None, description="The .metadata.generation this status describes."
    )


CRD = CrdInfo(
    ref=constants.RAYJOB,
    spec=RayJobSpec,
    status=RayJobStatus,
    description="A Ray job and the cluster it runs on (KubeRay's ray.io/v1 API).",
    short_names=("rayj",),
    # KubeRay lists RayJobs under `kubectl get all`.
    categories=("all", "arenastack"),
    spec_required=False,
    printer_columns=(
        PrinterColumn("job status", "string", ".status.jobStatus"),
        PrinterColumn("deployment status", "string", ".status.jobDeploymentStatus"),
        PrinterColumn("ray cluster name", "string", ".status.rayClusterName"),
        PrinterColumn("start time", "string", ".status.startTime"),
        PrinterColumn("end time", "string", ".status.endTime"),
        PrinterColumn("age", "date", ".metadata.creationTimestamp"),
    ),
    root_rules=(
        cel(
            f"size(self.metadata.name) <= {JOB_NAME_MAX} && "
            f"self.metadata.name.matches('{CLUSTER_NAME_PATTERN}')",
            f"metadata.name must be a DNS-1035 label of at most {JOB_NAME_MAX} characters "
            "(it prefixes the name of the job's RayCluster)",
        ),
    ),
)
