"""A parsed RayJob, and the checks KubeRay makes at reconcile time that the schema cannot.

Pure: the builders and the status transitions read a `Job`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from arenastack_operator import constants
from arenastack_operator.raycluster import model as cluster_model
from arenastack_operator.raycluster.names import LABEL_CLUSTER
from arenastack_operator.raycluster.spec import MANAGED_BY_MULTIKUEUE
from arenastack_operator.rayjob import spec as s

# KubeRay's finalizer: a RayJob being deleted first stops its Ray job.
FINALIZER: Final = "ray.io/rayjob-finalizer"
# The container that submits: in the submitter Job (K8sJobMode) or the head pod (SidecarMode).
SUBMITTER_CONTAINER: Final = "ray-job-submitter"
DEFAULT_SUBMITTER_BACKOFF_LIMIT: Final = 2


class InvalidSpec(ValueError):
    """A spec the apiserver accepted but the operator cannot run; the message names the field."""


@dataclass(frozen=True)
class Job:
    name: str
    namespace: str
    uid: str
    generation: int
    spec: s.RayJobSpec
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Job:
        meta = body.get("metadata") or {}
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace") or "default",
            uid=meta.get("uid") or "",
            generation=int(meta.get("generation") or 0),
            spec=s.RayJobSpec.model_validate(body.get("spec") or {}),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
        )

    @property
    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": constants.RAYJOB.api_version,
            "kind": constants.RAYJOB.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    @property
    def mode(self) -> str:
        return self.spec.submission_mode or s.MODE_K8S_JOB

    @property
    def selected_cluster(self) -> str | None:
        """The existing RayCluster named by clusterSelector, if the job uses one."""
        selector = self.spec.cluster_selector or {}
        return selector.get(LABEL_CLUSTER) if selector else None

    @property
    def uses_existing_cluster(self) -> bool:
        return bool(self.spec.cluster_selector)

    @property
    def managed_elsewhere(self) -> bool:
        return self.spec.managed_by == MANAGED_BY_MULTIKUEUE

    @property
    def suspend(self) -> bool:
        return bool(self.spec.suspend)

    @property
    def shutdown_after_finish(self) -> bool:
        return bool(self.spec.shutdown_after_job_finishes) and not self.uses_existing_cluster

    @property
    def runtime_env(self) -> dict[str, Any] | None:
        text = self.spec.runtime_env_yaml
        if not text or not text.strip():
            return None
        value = yaml.safe_load(text)
        return value if isinstance(value, dict) else None

    @property
    def submitter_has_command(self) -> bool:
        """K8sJobMode with a submitter template whose container runs its own command (which
        then submits the job itself, as KubeRay's light-weight submitter sample does)."""
        if self.mode != s.MODE_K8S_JOB:
            return False
        containers = ((self.spec.submitter_pod_template or {}).get("spec") or {}).get(
            "containers"
        ) or [{}]
        return bool(containers[0].get("command"))

    @property
    def submitter_backoff_limit(self) -> int:
        config = self.spec.submitter_config
        if config is not None and config.backoff_limit is not None:
            return config.backoff_limit
        return DEFAULT_SUBMITTER_BACKOFF_LIMIT


def validate(job: Job) -> None:
    """Raise InvalidSpec for what KubeRay refuses at reconcile time (its ValidateRayJobSpec,
    with its wording where it has one); deletion.validate checks spec.deletionStrategy."""
    spec = job.spec
    if job.suspend and not spec.shutdown_after_job_finishes:
        raise InvalidSpec("spec.suspend: a RayJob with shutdownAfterJobFinishes set to false is "
                          "not allowed to be suspended")  # fmt: skip
    if (spec.ttl_seconds_after_finished or 0) < 0:
        raise InvalidSpec("spec.ttlSecondsAfterFinished must be a non-negative integer")
    if (spec.ttl_seconds_after_finished or 0) > 0 and not spec.shutdown_after_job_finishes:
        raise InvalidSpec("spec.ttlSecondsAfterFinished is set but shutdownAfterJobFinishes is "
                          "not: nothing would be deleted after it")  # fmt: skip
    if job.uses_existing_cluster:
        if job.suspend:
            raise InvalidSpec("spec.suspend: the clusterSelector mode doesn't support the "
                              "suspend operation")  # fmt: skip
        if not job.selected_cluster:
            raise InvalidSpec(f"spec.clusterSelector must name the cluster under {LABEL_CLUSTER}")
    elif spec.ray_cluster_spec is None:
        raise InvalidSpec("spec: one of rayClusterSpec or clusterSelector must be set")
    if job.mode == s.MODE_SIDECAR:
        _check_sidecar_mode(job)
    if spec.active_deadline_seconds is not None and spec.active_deadline_seconds <= 0:
        raise InvalidSpec("spec.activeDeadlineSeconds must be a positive integer")
    if (spec.backoff_limit or 0) < 0:
        raise InvalidSpec("spec.backoffLimit must not be negative")
    if job.mode == s.MODE_INTERACTIVE and (spec.backoff_limit or 0) > 0:
        raise InvalidSpec("spec.backoffLimit is incompatible with InteractiveMode: the job is "
                          "submitted by you, once")  # fmt: skip
    interactive = job.mode == s.MODE_INTERACTIVE  # the user submits the entrypoint
    if not interactive and not (spec.entrypoint or "").strip() and not job.submitter_has_command:
        raise InvalidSpec(f"spec.entrypoint is required in {job.mode}"
                          + (" (or a submitterPodTemplate container with its own command)"
                             if job.mode == s.MODE_K8S_JOB else ""))  # fmt: skip
    try:
        env = yaml.safe_load(spec.runtime_env_yaml or "")
    except yaml.YAMLError as e:
        raise InvalidSpec(f"spec.runtimeEnvYAML is not valid YAML: {e}") from None
    if env is not None and not isinstance(env, dict):
        raise InvalidSpec("spec.runtimeEnvYAML must be a YAML mapping (a Ray runtime_env)")
    if spec.entrypoint_resources:
        _check_resources(spec.entrypoint_resources)
    if spec.ray_cluster_spec is not None and not job.uses_existing_cluster:
        cluster = cluster_model.Cluster(
            job.name, job.namespace, job.uid, job.generation, spec.ray_cluster_spec,
            annotations=job.annotations,
        )  # fmt: skip
        try:
            cluster_model.validate(cluster)
        except cluster_model.InvalidSpec as e:
            message = str(e)
            raise InvalidSpec(message.replace("spec.", "spec.rayClusterSpec.", 1)) from None


def _check_sidecar_mode(job: Job) -> None:
    """KubeRay's rules: the submitter is a container of the head pod it makes, which must not
    restart (it would submit again)."""
    spec = job.spec
    if job.uses_existing_cluster:
        raise InvalidSpec("spec.clusterSelector is not supported in SidecarMode")
    if spec.submitter_pod_template is not None:
        raise InvalidSpec("spec.submitterPodTemplate is not supported in SidecarMode")
    if spec.submitter_config is not None:
        raise InvalidSpec("spec.submitterConfig is not supported in SidecarMode")
    assert spec.ray_cluster_spec is not None
    restart = spec.ray_cluster_spec.head_group_spec.template["spec"].get("restartPolicy")
    if restart not in (None, "", "Never"):
        raise InvalidSpec("spec.rayClusterSpec.headGroupSpec.template.spec.restartPolicy must be "
                          "Never or unset in SidecarMode")  # fmt: skip


def _check_resources(text: str) -> None:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    ):
        raise InvalidSpec(f"spec.entrypointResources: {text!r} is not a JSON object of numbers "
                          '(for example {"custom": 1})')  # fmt: skip
