"""kopf handlers for RayJob: watch events in, one step of KubeRay's state machine out.

Each reconcile reads the RayJob afresh, takes at most one step (status.py), and writes the
status conditionally on the resourceVersion it read, so two operators, or one restarted at
any moment, never make two clusters or submit twice: the cluster name and job id are written
to the status before the cluster or the submission exists. While a job initialises, runs or
suspends, its key comes back every POLL_S seconds, because Ray's job state is read from the
head's dashboard (dashboard.py), which no watch reports.

Deleting a RayJob whose Ray job has not ended first stops the job through the dashboard
(KubeRay's ray.io/rayjob-finalizer; best effort), then owner references delete its cluster
and submitter Job.
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import kopf
import pydantic
from kubernetes.client import Configuration

from arenastack_operator import constants, controller, reconcile
from arenastack_operator.controller import (
    TRANSIENT,
    RetryLater,
    describe_invalid,
    key_of,
    replace_patch,
)
from arenastack_operator.kubeclient import KubeClient, core_path, group_path, object_path
from arenastack_operator.metrics import OperatorMetrics
from arenastack_operator.queuecontroller import register_queue_controller
from arenastack_operator.raycluster import auth
from arenastack_operator.raycluster import names as cluster_names
from arenastack_operator.raycluster.model import Cluster
from arenastack_operator.rayjob import builders, deletion, model
from arenastack_operator.rayjob import spec as s
from arenastack_operator.rayjob import status as st
from arenastack_operator.rayjob.dashboard import DashboardError, JobsClient
from arenastack_operator.rayjob.model import InvalidSpec, Job

KIND = constants.RAYJOB
logger = logging.getLogger("arenastack_operator.rayjob")

POLL_S: Final = 3.0  # KubeRay's requeue period
_SUFFIX_ALPHABET: Final = string.ascii_lowercase + string.digits
_POLLED: Final = (st.INITIALIZING, st.RUNNING, st.SUSPENDING, st.RETRYING, st.WAITING)
_CLUSTER_READY: Final = "ready"


def _suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def _clusters(namespace: str, name: str | None = None) -> str:
    ref = constants.RAYCLUSTER
    return group_path(ref.group, ref.version, namespace, ref.plural, name)


def _jobs(namespace: str, name: str | None = None) -> str:
    return group_path("batch", "v1", namespace, "jobs", name)


def _owned_by(obj: Mapping[str, Any] | None, uid: str) -> bool:
    refs = (obj or {}).get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


class Controller(controller.Controller):
    kind = KIND
    workers = 8
    logger = logger

    def __init__(self, api: KubeClient, metrics: OperatorMetrics, identity: str) -> None:
        super().__init__(api, metrics, identity)
        self.jobs_api = JobsClient()

    async def stop(self) -> None:
        await super().stop()
        await self.jobs_api.close()

    async def reconcile_once(self, namespace: str, name: str) -> None:
        body = await self.api.get(self.path(namespace, name))
        if body is None:
            return
        previous: dict[str, Any] = dict(body.get("status") or {})
        try:
            job = Job.from_body(body)
        except pydantic.ValidationError as e:
            await self._write(body, previous, st.invalid(previous, describe_invalid(e)))
            return
        if job.managed_elsewhere:
            return
        if body["metadata"].get("deletionTimestamp"):
            await self._finalize(body, previous)
            return
        try:
            model.validate(job)
            deletion.validate(job)
        except InvalidSpec as e:
            await self._write(body, previous, st.invalid(previous, str(e)))
            return
        now = datetime.now(UTC)
        new = await self._step(body, job, previous, now)
        new = st.retry_if_allowed(job, st.phase(previous), new)
        await self._write(body, previous, new)
        self._requeue(body, job, new, now)

    async def _step(
        self, body: Mapping[str, Any], job: Job, status: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        current = st.phase(status)
        if current in (st.NEW, st.VALIDATION_FAILED):
            if current == st.VALIDATION_FAILED:
                status = st.restarted(status)  # the spec was fixed
            if job.suspend:
                return {**st.suspended(status), "observedGeneration": job.generation}
            await self.add_finalizer(body, model.FINALIZER)
            return st.initial(job, status, _suffix(), now)
        if current in (st.INITIALIZING, st.RUNNING):
            if job.suspend:
                return {**status, "jobDeploymentStatus": st.SUSPENDING}
            if st.deadline_passed(job, status, now):
                return st.deadline_failure(job, status, now)
            cluster = await self._cluster(body, job, status)
            if cluster is None:
                return status
            if current == st.INITIALIZING:
                return await self._submit(body, job, status, cluster)
            return await self._follow(job, status, cluster, now)
        if current == st.WAITING:
            return st.job_id_given(job, status)
        if current in (st.SUSPENDING, st.RETRYING):
            if not await self._release(body, job, status, submitter=True):
                return status
            return st.suspended(status) if current == st.SUSPENDING else st.restarted(status)
        if current == st.SUSPENDED:
            return status if job.suspend else st.restarted(status)
        if current in st.TERMINAL:
            if job.spec.deletion_strategy is not None:
                await self._apply_deletion(body, job, status, now)
                return status
            when = st.shutdown_at(job, status)
            if when is not None and now >= when:
                await self._release(body, job, status, submitter=False)
        return status

    async def _apply_deletion(
        self, body: Mapping[str, Any], job: Job, status: Mapping[str, Any], now: datetime
    ) -> None:
        """The most far-reaching deletion policy that is due and not yet done."""
        ended = st.parse_time(status.get("endTime"))
        if ended is None:
            return
        name = status.get("rayClusterName")
        path = _clusters(job.namespace, str(name)) if name else None
        cluster = await self.api.get(path) if path and not job.uses_existing_cluster else None
        if cluster is not None and not _owned_by(cluster, job.uid):
            cluster = None
        pending = deletion.undone(deletion.due(job, status, ended, now).policies, cluster)
        if not pending:
            return
        policy = deletion.most_impactful(pending)
        if policy == deletion.DELETE_SELF:
            await self.event(body, "Normal", "DeletedRayJob", "Deleted by deletionStrategy")
            await self.api.delete(self.path(job.namespace, job.name), uid=job.uid)
        elif policy == deletion.DELETE_CLUSTER:
            await self._release(body, job, status, submitter=False)
        elif policy == deletion.DELETE_WORKERS and cluster is not None and path is not None:
            await self.api.merge_patch(path, deletion.suspend_workers_patch(cluster))
            await self.event(body, "Normal", "UpdatedRayCluster",
                             f"Set the suspend field to true for all worker groups in cluster "
                             f"{job.namespace}/{name}")  # fmt: skip

    async def _cluster(
        self, body: Mapping[str, Any], job: Job, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The job's RayCluster: the selected one (None while it does not exist: the job
        waits), or the one made for it, created here if missing."""
        name = str(status["rayClusterName"])
        existing = await self.api.get(_clusters(job.namespace, name))
        if existing is not None or job.uses_existing_cluster:
            if existing is None:
                message = (f"RayCluster {job.namespace}/{name} set in the clusterSelector is "
                           "not found; it must be created first")  # fmt: skip
                await self.event(body, "Warning", "RayClusterNotFound", message)
            return existing
        desired = builders.ray_cluster(job, name, str(status.get("jobId") or ""),
                                       str(status.get("dashboardURL") or ""))  # fmt: skip
        cluster = await self.ensure_created(body, desired)
        await self._head_service(body, job, cluster)
        return cluster

    async def _head_service(
        self, body: Mapping[str, Any], job: Job, cluster: dict[str, Any]
    ) -> None:
        """`<job>-head-svc`, pointed at the job's current cluster (a resumed job gets a new
        one)."""
        desired = builders.head_service(job, cluster)
        current = await self.ensure_created(body, desired)
        selector = desired["spec"]["selector"]
        if (current.get("spec") or {}).get("selector") != selector:
            await self.api.merge_patch(
                object_path(desired, desired["metadata"]["name"]),
                {"spec": {"selector": selector}},
            )

    async def _submit(
        self, body: Mapping[str, Any], job: Job, status: dict[str, Any], cluster: dict[str, Any]
    ) -> dict[str, Any]:
        """Initializing -> Running once the cluster is ready: the submitter Job is made
        (K8sJobMode); in HTTPMode the submission happens on the next step."""
        cluster_status = cluster.get("status") or {}
        if cluster_status.get("state") != _CLUSTER_READY:
            return status
        address = status.get("dashboardURL") or builders.dashboard_url(
            cluster["metadata"]["name"], job.namespace, cluster_status
        )
        waits = job.mode == s.MODE_INTERACTIVE  # for the user's submission
        new = {**status, "dashboardURL": address, "rayClusterStatus": cluster_status,
               "jobDeploymentStatus": st.WAITING if waits else st.RUNNING}  # fmt: skip
        if job.mode == s.MODE_K8S_JOB:
            submitter = builders.submitter_job(job, Cluster.from_body(cluster), address,
                                               status["jobId"])  # fmt: skip
            await self.ensure_created(body, submitter)
        return new

    async def _follow(
        self, job: Job, status: dict[str, Any], cluster: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        """Running: what Ray says of the job, and whether the submitter failed."""
        finished, failure = job.mode in (s.MODE_HTTP, s.MODE_INTERACTIVE), None
        if job.mode == s.MODE_K8S_JOB:
            submitter = await self.api.get(_jobs(job.namespace, job.name))
            finished, failure, _ = st.submitter_outcome(
                submitter if _owned_by(submitter, job.uid) else None
            )
        elif job.mode == s.MODE_SIDECAR:
            head = await self._head_pod(cluster)
            if head is None:  # the submitter went with it
                return st.finish(status, st.FAILED, st.REASON_APP_FAILED,
                                 "Ray head pod not found.", now)  # fmt: skip
            finished, failure = st.sidecar_outcome(head)
        if failure is not None and status.get("jobStatus") != st.JOB_FAILED:
            return st.finish(status, st.FAILED, st.REASON_SUBMISSION_FAILED, failure, now)
        address, job_id = str(status["dashboardURL"]), str(status["jobId"])
        token = await self._token(cluster)
        info = await self.jobs_api.info(address, job_id, token)
        if info is None:
            if job.mode == s.MODE_HTTP:
                try:
                    await self.jobs_api.submit(address, builders.submission(job, job_id), token)
                except DashboardError as e:
                    return st.finish(status, st.FAILED, st.REASON_SUBMISSION_FAILED, str(e), now)
                return status
            if finished and job.mode != s.MODE_INTERACTIVE:  # yours may not be known yet
                return st.finish(status, st.FAILED, st.REASON_APP_FAILED,
                                 "Submitter completed but Ray job not found in RayCluster.",
                                 now)  # fmt: skip
            return status
        return st.with_job_info(status, info, cluster.get("status") or {}, finished, now)

    async def _token(self, cluster: Mapping[str, Any]) -> str | None:
        """The cluster's token when it has token authentication (read from its Secret, never
        kept or logged)."""
        parsed = Cluster.from_body(cluster)
        if not parsed.token_auth:
            return None
        path = core_path(parsed.namespace, "secrets", parsed.auth_secret_name)
        token = auth.token_of(await self.api.get(path))
        if token is None:
            raise RetryLater(f"the Secret {parsed.namespace}/{parsed.auth_secret_name} holds no "
                             f"{cluster_names.AUTH_TOKEN_KEY} yet")  # fmt: skip
        return token

    async def _head_pod(self, cluster: Mapping[str, Any]) -> dict[str, Any] | None:
        meta = cluster["metadata"]
        selector = (f"{cluster_names.LABEL_CLUSTER}={meta['name']},"
                    f"{cluster_names.LABEL_NODE_TYPE}={cluster_names.NODE_HEAD}")  # fmt: skip
        pods = await self.api.list(core_path(meta["namespace"], "pods"), selector)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return live[0] if live else None

    async def _release(
        self, body: Mapping[str, Any], job: Job, status: Mapping[str, Any], submitter: bool
    ) -> bool:
        """Delete the job's own cluster (and the submitter Job); True once both are gone."""
        gone = True
        name = status.get("rayClusterName")
        if name and not job.uses_existing_cluster:
            cluster = await self.api.get(_clusters(job.namespace, str(name)))
            if cluster is not None and _owned_by(cluster, job.uid):
                gone = False
                if not cluster["metadata"].get("deletionTimestamp"):
                    await self.api.delete(_clusters(job.namespace, str(name)))
                    await self.event(body, "Normal", "DeletedRayCluster",
                                     f"Deleted RayCluster {job.namespace}/{name}")  # fmt: skip
        if submitter:
            existing = await self.api.get(_jobs(job.namespace, job.name))
            if existing is not None and _owned_by(existing, job.uid):
                gone = False
                if not existing["metadata"].get("deletionTimestamp"):
                    await self.api.delete(_jobs(job.namespace, job.name), propagation="Background")
        return gone

    async def _finalize(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        if model.FINALIZER not in (body["metadata"].get("finalizers") or []):
            return
        address, job_id = status.get("dashboardURL"), status.get("jobId")
        if address and job_id and status.get("jobStatus") not in st.JOB_TERMINAL:
            try:
                name = status.get("rayClusterName")
                cluster = await self.api.get(_clusters(body["metadata"]["namespace"], str(name)))
                token = await self._token(cluster) if cluster is not None else None
                await self.jobs_api.stop(str(address), str(job_id), token)
            except (*TRANSIENT, DashboardError, RetryLater) as e:
                logger.warning("RayJob %s/%s: could not stop Ray job %s: %s",
                               *key_of(body), job_id, e)  # fmt: skip
            else:
                await self.event(body, "Normal", "StoppedRayJob", f"Stopped Ray job {job_id}")
        await self.remove_finalizer(body, model.FINALIZER)

    async def _write(
        self, body: Mapping[str, Any], previous: Mapping[str, Any], new: dict[str, Any]
    ) -> None:
        new = {k: v for k, v in new.items() if v is not None}
        if not st.changed(previous, new):
            return
        meta = body["metadata"]
        written = await self.patch_status(meta["namespace"], meta["name"],
                                          replace_patch(previous, new),
                                          meta.get("resourceVersion"))  # fmt: skip
        before, after = st.phase(previous), st.phase(new)
        if written and before != after:
            warning = after in (st.FAILED, st.VALIDATION_FAILED, st.RETRYING)
            message = f"{before or 'New'} -> {after or 'New'}"
            if new.get("message") and warning:
                message += f": {new['message']}"
            await self.event(body, "Warning" if warning else "Normal", after or "New", message)

    def _requeue(
        self, body: Mapping[str, Any], job: Job, status: Mapping[str, Any], now: datetime
    ) -> None:
        current = st.phase(status)
        if current in _POLLED or (current == st.NEW and not job.suspend):
            self.queue.add_after(key_of(body), POLL_S)
        elif current in st.TERMINAL:
            when = st.shutdown_at(job, status)
            ended = st.parse_time(status.get("endTime"))
            if job.spec.deletion_strategy is not None and ended is not None:
                when = deletion.due(job, status, ended, now).next_at
            if when is not None and now < when:
                self.queue.add_after(key_of(body), (when - now).total_seconds() + 0.1)


# -- registration -------------------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry, metrics: OperatorMetrics) -> None:
    def make(configuration: Configuration, identity: str) -> Controller:
        return Controller(controller.kube_client(configuration, metrics, KIND), metrics, identity)

    register_queue_controller(
        registry, KIND, make, builders.LABEL_ORIGIN_NAME,
        [("ray.io/v1", "rayclusters"), ("batch/v1", "jobs")],
    )  # fmt: skip
    reconcile.register_phase_tracking(registry, KIND, metrics)
