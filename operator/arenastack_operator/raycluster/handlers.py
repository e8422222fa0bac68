"""kopf handlers for RayCluster: watch events in, reconciles out.

Watch events of RayClusters and of the pods and services they own only queue the cluster's key;
workers take keys from the queue and reconcile each cluster from a fresh read of it and its pods
(never from a cache, so an operator restarted at any moment cannot double-create pods). A
reconcile compares desired with observed (plan.py), acts, and writes the status only when it
changed: a cluster at rest costs no writes. kopf's own per-object bookkeeping (annotations,
finalizers) is not used, so the operator writes nothing to a RayCluster but its status, and
deleting a cluster never waits for the operator -- except with GCS fault tolerance in Redis,
where KubeRay's finalizer holds the cluster until its state is deleted from Redis
(redis_cleanup.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Final

import kopf
import pydantic
from kubernetes.client import Configuration

from arenastack_operator import constants, controller, reconcile
from arenastack_operator.conditions import now_rfc3339
from arenastack_operator.controller import Key, RetryLater, describe_invalid, key_of
from arenastack_operator.kubeclient import (
    CONFLICT,
    FORBIDDEN,
    NOT_FOUND,
    ApiError,
    KubeClient,
    core_path,
    object_path,
)
from arenastack_operator.metrics import OperatorMetrics
from arenastack_operator.queuecontroller import register_queue_controller
from arenastack_operator.raycluster import auth, autoscaler, names, plan, podstate, redis_cleanup
from arenastack_operator.raycluster.model import Cluster, InvalidSpec, validate
from arenastack_operator.raycluster.resources import QuantityError
from arenastack_operator.raycluster.service import build_head_service, build_headless_service
from arenastack_operator.raycluster.status import (
    REASON_INVALID_SPEC,
    Failure,
    build_status,
    changed,
    merge_patch,
    pod_series,
)

KIND = constants.RAYCLUSTER
logger = logging.getLogger("arenastack_operator.raycluster")

EVENT_MESSAGE_PODS: Final = 10  # pod names listed in one event's message
# How often a deleted cluster's Redis cleanup is looked at (its Job is not watched).
CLEANUP_POLL_S: Final = 2.0


class Controller(controller.Controller):
    kind = KIND
    workers = 16
    logger = logger

    def __init__(self, api: KubeClient, metrics: OperatorMetrics, identity: str) -> None:
        super().__init__(api, metrics, identity)
        # Clusters (by uid) whose autoscaler RBAC exists: checked once per operator run.
        self._rbac_ready: set[str] = set()

    def forget_object(self, key: Key, uid: str | None) -> None:
        self._rbac_ready.discard(uid or "")

    async def reconcile_once(self, namespace: str, name: str) -> None:
        body = await self.api.get(self.path(namespace, name))
        if body is None:
            return
        if body["metadata"].get("deletionTimestamp"):
            # Owner references garbage-collect the children; only Redis needs the operator.
            if redis_cleanup.FINALIZER in (body["metadata"].get("finalizers") or []):
                await self._clean_up_redis(body)
            return
        try:
            cluster = Cluster.from_body(body)
            if cluster.managed_elsewhere:
                return
            validate(cluster)
        except (InvalidSpec, pydantic.ValidationError) as e:
            await self._report_invalid(body, describe_invalid(e))
            return
        if cluster.redis_ft:
            # Before any head exists, so no GCS writes to Redis without it.
            await self.add_finalizer(body, redis_cleanup.FINALIZER)

        labelled = await self.api.list(
            core_path(namespace, "pods"), f"{names.LABEL_CLUSTER}={cluster.name}"
        )
        pods = [p for p in labelled if podstate.owned_by(p, cluster.uid)]
        if cluster.auth_secret_generated:
            await self._ensure_auth_secret(cluster)
        service = await self._ensure_service(cluster, build_head_service(cluster))
        headless = build_headless_service(cluster)
        if headless is not None:
            await self._ensure_service(cluster, headless)
        if cluster.autoscaling:
            await self._ensure_autoscaler_rbac(cluster)
        try:
            todo = plan.make_plan(cluster, pods)
        except QuantityError as e:
            await self._report_invalid(body, str(e))
            return
        failure = await self._act(cluster, body, todo)
        self.metrics.objects.set(KIND.kind, namespace, name, "pods", pod_series(cluster, pods))
        await self._write_status(body, cluster, pods, service, failure)
        if failure is not None:
            raise RetryLater(failure.message)

    async def _act(
        self, cluster: Cluster, body: Mapping[str, Any], todo: plan.Plan
    ) -> Failure | None:
        done = await asyncio.gather(
            *(self.api.delete(core_path(cluster.namespace, "pods", d.pod)) for d in todo.delete)
        )
        deleted: dict[str, list[str]] = {}
        for deletion, gone in zip(todo.delete, done, strict=True):
            if gone:
                deleted.setdefault(_deletion_reason(deletion), []).append(
                    f"{deletion.pod} ({deletion.reason})"
                )
        for reason, pods in deleted.items():
            await self.event(body, "Normal", reason, _pods_message("Deleted", pods))

        failure: Failure | None = None
        for creation in todo.create:
            head = creation.group == names.HEAD_GROUP
            results = await asyncio.gather(
                *(self.api.create(core_path(cluster.namespace, "pods"), creation.pod)
                  for _ in range(creation.count)),
                return_exceptions=True,
            )  # fmt: skip
            created = [podstate.name(r) for r in results if isinstance(r, dict)]
            errors = [r for r in results if isinstance(r, BaseException)]
            if created:
                reason = "CreatedHeadPod" if head else "CreatedWorkerPod"
                await self.event(body, "Normal", reason, _pods_message("Created", created))
            if errors:
                error = errors[0]
                if not isinstance(error, ApiError):
                    raise error
                reason = "FailedCreateHeadPod" if head else "FailedCreateWorkerPod"
                message = f"group {creation.group}: {len(errors)} pods not created: {error}"
                failure = Failure(reason, message)
                await self.event(body, "Warning", reason, message)
        return failure

    async def _ensure_service(
        self, cluster: Cluster, desired: dict[str, Any]
    ) -> dict[str, Any] | None:
        path = object_path(desired, desired["metadata"]["name"])
        service = await self.api.get(path)
        if service is not None:
            return service
        try:
            service = await self.api.create(object_path(desired), desired)
        except ApiError as e:
            if e.status == CONFLICT:  # created meanwhile: read it next time
                return None
            raise
        await self._event_for(cluster, "Normal", "CreatedService", desired["metadata"]["name"])
        return service

    async def _ensure_auth_secret(self, cluster: Cluster) -> None:
        """The cluster's token, made once before any pod that needs it."""
        path = core_path(cluster.namespace, "secrets", cluster.auth_secret_name)
        if await self.api.get(path) is not None:
            return
        try:
            await self.api.create(core_path(cluster.namespace, "secrets"),
                                  auth.build_secret(cluster, auth.new_token()))  # fmt: skip
        except ApiError as e:
            if e.status == CONFLICT:  # made meanwhile
                return
            raise
        await self._event_for(cluster, "Normal", "CreatedSecret", cluster.auth_secret_name)

    async def _ensure_autoscaler_rbac(self, cluster: Cluster) -> None:
        if cluster.uid in self._rbac_ready:
            return
        for obj in autoscaler.build_rbac(cluster):
            if await self.api.get(object_path(obj, obj["metadata"]["name"])) is None:
                try:
                    await self.api.create(object_path(obj), obj)
                except ApiError as e:
                    if e.status != CONFLICT:
                        raise
        self._rbac_ready.add(cluster.uid)

    # -- GCS fault tolerance: Redis cleanup on deletion (redis_cleanup.py) -----------------

    async def _clean_up_redis(self, body: Mapping[str, Any]) -> None:
        key = key_of(body)
        try:
            cluster = Cluster.from_body(body)
            job = redis_cleanup.build_job(cluster)
        except (InvalidSpec, QuantityError, pydantic.ValidationError) as e:
            logger.warning("RayCluster %s/%s: no Redis cleanup (invalid spec: %s)", *key, e)
            await self.remove_finalizer(body, redis_cleanup.FINALIZER)
            return
        labelled = await self.api.list(
            core_path(cluster.namespace, "pods"), f"{names.LABEL_CLUSTER}={cluster.name}"
        )
        pods = [p for p in labelled if podstate.owned_by(p, cluster.uid)]
        await asyncio.gather(*(
            self.api.delete(core_path(cluster.namespace, "pods", podstate.name(p)))
            for p in pods if not podstate.is_terminating(p)
        ))  # fmt: skip
        if any(podstate.is_head(p) for p in pods):
            self.queue.add_after(key, CLEANUP_POLL_S)  # its GCS may still write to Redis
            return
        path = object_path(job, job["metadata"]["name"])
        existing = await self.api.get(path)
        if existing is None:
            try:
                await self.api.create(object_path(job), job)
            except ApiError as e:
                if e.status == FORBIDDEN:  # the namespace is being deleted: Redis stays as is
                    await self._cleanup_done(body, cluster, False, str(e))
                    return
                if e.status != CONFLICT:
                    raise
            else:
                await self.event(body, "Normal", "CreatedRedisCleanupJob",
                                  f"Created Job {job['metadata']['name']} to delete storage "
                                  f"namespace {cluster.storage_namespace} from Redis")  # fmt: skip
            self.queue.add_after(key, CLEANUP_POLL_S)
            return
        result = redis_cleanup.outcome(existing)
        if result is None:
            self.queue.add_after(key, CLEANUP_POLL_S)
            return
        await self._cleanup_done(body, cluster, result, f"Job {job['metadata']['name']} failed")

    async def _cleanup_done(
        self, body: Mapping[str, Any], cluster: Cluster, succeeded: bool, why: str
    ) -> None:
        if succeeded:
            await self.event(
                body,
                "Normal",
                "RedisCleanupSucceeded",
                f"Deleted storage namespace {cluster.storage_namespace} from Redis",
            )
        else:
            message = (
                f"Storage namespace {cluster.storage_namespace} was not deleted from "
                f"Redis ({why}); delete its keys by hand"
            )
            logger.warning("RayCluster %s/%s: %s", *key_of(body), message)
            await self.event(body, "Warning", "RedisCleanupFailed", message)
        await self.remove_finalizer(body, redis_cleanup.FINALIZER)

    async def _write_status(
        self,
        body: Mapping[str, Any],
        cluster: Cluster | None,
        pods: list[dict[str, Any]],
        service: Mapping[str, Any] | None,
        failure: Failure | None,
    ) -> bool:
        previous = body.get("status") or {}
        meta = body["metadata"]
        new = build_status(
            cluster,
            int(meta.get("generation") or 0),
            pods,
            service,
            previous,
            failure=failure,
            now=now_rfc3339(),
        )
        if not changed(previous, new):
            return False
        try:
            await self.api.merge_patch(
                self.path(meta["namespace"], meta["name"], status=True),
                merge_patch(previous, new),
            )
        except ApiError as e:
            if e.status == NOT_FOUND:  # deleted meanwhile
                return False
            raise
        return True

    async def _report_invalid(self, body: Mapping[str, Any], message: str) -> None:
        written = await self._write_status(
            body, None, [], None, Failure(REASON_INVALID_SPEC, message)
        )
        if written:
            logger.warning("RayCluster %s/%s is invalid: %s", *key_of(body), message)
            await self.event(body, "Warning", REASON_INVALID_SPEC, message)

    # -- events --------------------------------------------------------------------------------

    async def _event_for(self, cluster: Cluster, type_: str, reason: str, message: str) -> None:
        body = {
            "metadata": {"name": cluster.name, "namespace": cluster.namespace, "uid": cluster.uid}
        }
        await self.event(body, type_, reason, message)


def _deletion_reason(deletion: plan.Deletion) -> str:
    return "DeletedHeadPod" if deletion.head else "DeletedWorkerPod"


def _pods_message(verb: str, pods: list[str]) -> str:
    shown = ", ".join(pods[:EVENT_MESSAGE_PODS])
    more = f" and {len(pods) - EVENT_MESSAGE_PODS} more" if len(pods) > EVENT_MESSAGE_PODS else ""
    return f"{verb} {len(pods)} pod{'s' if len(pods) != 1 else ''}: {shown}{more}"


# -- registration -------------------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry, metrics: OperatorMetrics) -> None:
    def make(configuration: Configuration, identity: str) -> Controller:
        return Controller(controller.kube_client(configuration, metrics, KIND), metrics, identity)

    register_queue_controller(
        registry, KIND, make, names.LABEL_CLUSTER, [("v1", "pods"), ("v1", "services")]
    )
    reconcile.register_phase_tracking(registry, KIND, metrics)
