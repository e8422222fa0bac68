"""The one base of every queue-driven controller (RayCluster, InferenceDeployment,
ArenaEvaluation).

kopf only feeds the queue (queuecontroller.py); a controller's workers take keys from it and
call `reconcile`, which runs the kind's `reconcile_once` from fresh reads. What may pass by
itself -- a write conflict, a refusal in a terminating namespace, a dropped connection, a
timeout -- is raised as `RetryLater`: counted as `result="retry"`, logged without a traceback
and retried after the queue's backoff. Anything else is a bug in the reconciler: counted as
`result="error"`, logged with its traceback, and retried the same way.

Every kind shares the same status writes (a merge patch of `status`, optionally conditional on
the resourceVersion read), events, and the wording of invalid-spec messages.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import aiohttp
import kopf
import pydantic
from kubernetes.client import Configuration

from arenastack_operator import constants, events, reconcile
from arenastack_operator.constants import KindRef
from arenastack_operator.hashing import spec_hash
from arenastack_operator.kubeclient import (
    CONFLICT,
    NOT_FOUND,
    ApiError,
    KubeClient,
    group_path,
    object_path,
)
from arenastack_operator.metrics import OperatorMetrics
from arenastack_operator.workqueue import WorkQueue, serve

Key = tuple[str, str]  # (namespace, name)

DEFAULT_COALESCE_S: Final = 0.2  # watch events within this window reconcile an object once
# Failures of the apiserver or of the way to it, never of the reconciler: all come back.
TRANSIENT: Final = (ApiError, aiohttp.ClientError, TimeoutError)


class RetryLater(kopf.TemporaryError):
    """The reconcile hit something that may pass (409, 403, 5xx, a lost connection, a child
    not created yet)."""


def retry_level(err: Exception) -> int:
    """A write conflict is routine (another writer got there first); anything else warns."""
    cause = err.__cause__
    conflict = isinstance(cause, ApiError) and cause.status == CONFLICT
    return logging.INFO if conflict else logging.WARNING


def describe_invalid(error: Exception) -> str:
    """A spec error as users read it: the path of the first bad field and what is wrong."""
    if not isinstance(error, pydantic.ValidationError):
        return str(error)
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"spec.{where}: {message}" if where else f"spec: {message}"


class Controller(ABC):
    """Subclasses set `kind`, `workers` and `logger` and implement `reconcile_once`."""

    kind: ClassVar[KindRef]
    workers: ClassVar[int] = 4
    coalesce_s: ClassVar[float] = DEFAULT_COALESCE_S
    logger: ClassVar[logging.Logger]

    def __init__(self, api: KubeClient, metrics: OperatorMetrics, identity: str) -> None:
        self.api = api
        self.identity = identity
        self.metrics = metrics
        self.queue: WorkQueue[Key] = WorkQueue(delay_s=self.coalesce_s)
        metrics.queue_depth.labels(self.kind.kind).set_function(self.queue.__len__)
        metrics.start_kind(self.kind.kind)
        self._tasks: list[asyncio.Task[None]] = []
        self._reconcile = reconcile.instrumented(self.kind.kind, metrics)(self.reconcile)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        self._tasks += [asyncio.create_task(loop) for loop in self.background()]

    def background(self) -> list[Any]:
        """Coroutines that run beside the workers for the controller's life (an autoscaler)."""
        return []

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.api.close()

    async def _work(self) -> None:
        await serve(self.queue, self._reconcile, RetryLater, self.logger, retry_level)

    def forget(self, key: Key, uid: str | None) -> None:
        """The object is gone: drop its pending retries and what was remembered about it."""
        self.queue.discard(key)
        self.metrics.objects.forget(self.kind.kind, *key)
        self.forget_object(key, uid)

    def forget_object(self, key: Key, uid: str | None) -> None:
        """What a kind remembers per object (an autoscaler, RBAC seen), dropped on deletion."""
        return None

    # -- one reconcile ---------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> None:
        try:
            await self.reconcile_once(namespace, name)
        except TRANSIENT as e:
            raise RetryLater(str(e) or type(e).__name__) from e

    @abstractmethod
    async def reconcile_once(self, namespace: str, name: str) -> None: ...

    # -- the object and its status ---------------------------------------------------------

    def path(self, namespace: str, name: str, status: bool = False) -> str:
        kind = self.kind
        path = group_path(kind.group, kind.version, namespace, kind.plural, name)
        return f"{path}/status" if status else path

    async def patch_status(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> bool:
        """Merge `patch` into status; with `resource_version`, only if nobody wrote since
        (409 otherwise, retried). False when the object is gone."""
        body: dict[str, Any] = {"status": patch}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            await self.api.merge_patch(self.path(namespace, name, status=True), body)
        except ApiError as e:
            if e.status == NOT_FOUND:
                return False
            raise
        return True

    async def add_finalizer(self, body: Mapping[str, Any], finalizer: str) -> None:
        finalizers = list(body["metadata"].get("finalizers") or [])
        if finalizer not in finalizers:
            await self._set_finalizers(body, [*finalizers, finalizer])

    async def remove_finalizer(self, body: Mapping[str, Any], finalizer: str) -> None:
        finalizers = list(body["metadata"].get("finalizers") or [])
        if finalizer in finalizers:
            await self._set_finalizers(body, [f for f in finalizers if f != finalizer])

    async def _set_finalizers(self, body: Mapping[str, Any], finalizers: list[str]) -> None:
        meta = body["metadata"]
        # The resourceVersion makes the write fail (409, retried) rather than drop a finalizer
        # someone else added meanwhile.
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        try:
            await self.api.merge_patch(self.path(meta["namespace"], meta["name"]), patch)
        except ApiError as e:
            if e.status != NOT_FOUND:
                raise

    async def ensure(self, owner: Mapping[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        """Create the child `desired`, or bring the fields we set up to date when they changed
        (the hash of what was last applied is kept in an annotation, so a child at rest costs
        one read). An event on `owner` tells of each creation and update."""
        applied = spec_hash(desired)
        meta = desired.setdefault("metadata", {})
        meta.setdefault("annotations", {})[constants.ANNOTATION_APPLIED_HASH] = applied
        name = meta["name"]
        current = await self.api.get(object_path(desired, name))
        if current is None:
            return await self._create(owner, desired)
        annotations = current["metadata"].get("annotations") or {}
        if annotations.get(constants.ANNOTATION_APPLIED_HASH) == applied:
            return current
        patch = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
        patch["metadata"] = {"labels": meta.get("labels"), "annotations": meta["annotations"]}
        updated = await self.api.merge_patch(object_path(desired, name), patch)
        await self.event(owner, "Normal", f"Updated{desired['kind']}", f"updated {name}")
        return updated

    async def ensure_created(
        self, owner: Mapping[str, Any], desired: dict[str, Any]
    ) -> dict[str, Any]:
        """Create the child `desired` if it does not exist; an existing one is left as it is
        (a RayJob's cluster and submitter Job do not follow later spec changes)."""
        current = await self.api.get(object_path(desired, desired["metadata"]["name"]))
        return current if current is not None else await self._create(owner, desired)

    async def _create(self, owner: Mapping[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        name = desired["metadata"]["name"]
        try:
            created = await self.api.create(object_path(desired), desired)
        except ApiError as e:
            if e.status == CONFLICT:
                raise RetryLater(f"{desired['kind']} {name} appeared meanwhile") from e
            raise
        await self.event(owner, "Normal", f"Created{desired['kind']}", f"created {name}")
        return created

    async def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        await events.record(
            self.api, self.kind, body["metadata"], type_, reason, message, self.identity
        )


def kube_client(
    configuration: Configuration, metrics: OperatorMetrics, kind: KindRef
) -> KubeClient:
    """The apiserver client of one kind's controller, its requests counted under the kind."""
    return KubeClient(configuration, count=metrics.api_requests_of(kind.kind))


def replace_patch(previous: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning `previous` into `new` (fields no longer present become null)."""
    patch: dict[str, Any] = {k: None for k in previous if k not in new}
    patch.update(new)
    return patch


def key_of(body: Mapping[str, Any]) -> Key:
    return (body["metadata"]["namespace"], body["metadata"]["name"])
