"""Instrumentation shared by every kind: reconcile counts and durations, objects by phase.

Every kind's controller (controller.py) wraps its `reconcile` in `instrumented`, which counts
each run under `result` success, retry (a `kopf.TemporaryError`, such as the controllers'
`RetryLater`), error or cancelled, and times it. `register_phase_tracking` follows every watch
event of a kind, deletions included, to keep `managed_objects{kind,phase}` current.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import kopf

from arenastack_operator import constants
from arenastack_operator.constants import KindRef
from arenastack_operator.metrics import (
    RESULT_CANCELLED,
    RESULT_ERROR,
    RESULT_RETRY,
    RESULT_SUCCESS,
    OperatorMetrics,
    Sample,
)

F = TypeVar("F", bound=Callable[..., Any])

# Phase precedence when derived from conditions: a degraded object is reported as such even if
# some other condition is also true.
_PHASE_CONDITIONS = (
    constants.CONDITION_DEGRADED,
    constants.CONDITION_READY,
    constants.CONDITION_PROGRESSING,
)
PHASE_PENDING = "Pending"


def result_of(error: BaseException | None) -> str:
    if error is None:
        return RESULT_SUCCESS
    if isinstance(error, asyncio.CancelledError):
        return RESULT_CANCELLED
    if isinstance(error, kopf.TemporaryError):
        return RESULT_RETRY
    return RESULT_ERROR


def instrumented(kind: str, metrics: OperatorMetrics) -> Callable[[F], F]:
    """Wrap a kopf handler (sync or async) to count its runs by result and time them."""

    def record(started: float, error: BaseException | None) -> None:
        metrics.reconcile_duration.labels(kind=kind).observe(time.perf_counter() - started)
        metrics.reconciles.labels(kind=kind, result=result_of(error)).inc()

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as e:
                    record(started, e)
                    raise
                record(started, None)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:
                record(started, e)
                raise
            record(started, None)
            return result

        return sync_wrapper  # type: ignore[return-value]

    return decorate


def phase_of(body: Mapping[str, Any]) -> str:
    """The phase an object is counted under: status.phase, state or jobDeploymentStatus if the
    kind has one (KubeRay's RayCluster reports `state`, its RayJob `jobDeploymentStatus`), else
    the first true standard condition."""
    status = body.get("status") or {}
    for field in ("phase", "state", "jobDeploymentStatus"):
        value = status.get(field)
        if isinstance(value, str) and value:
            return value[:1].upper() + value[1:]
    true_conditions = {
        c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"
    }
    for condition in _PHASE_CONDITIONS:
        if condition in true_conditions:
            return condition
    return PHASE_PENDING


def object_key(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


def register_phase_tracking(
    registry: kopf.OperatorRegistry,
    ref: KindRef,
    metrics: OperatorMetrics,
    series: Callable[[Mapping[str, Any]], Iterable[Sample]] | None = None,
) -> None:
    """Follow every watch event of the kind so the by-phase gauge also sees deletions; with
    `series`, also export the gauges it derives from each object's spec and status."""
    tracker = metrics.phases(ref.kind)

    @kopf.on.event(*ref.selector, registry=registry, id=f"track-phase-{ref.plural}")
    async def track_phase(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        if event.get("type") == "DELETED":
            tracker.forget(object_key(body))
            metrics.objects.forget(ref.kind, namespace, name)
            return
        tracker.observe(object_key(body), phase_of(body))
        if series is not None:
            metrics.objects.set(ref.kind, namespace, name, "status", series(body))
