"""Every queue-driven controller classifies failures the same way (controller.py).

The apiserver here is a real socket that drops each connection as soon as it is accepted, or
one that never answers: what a restarting apiserver or a broken network looks like to the
operator. Before the shared base, InferenceDeployment let both escape as errors (a traceback in
the log and `result="error"`), where RayCluster retried them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from kubernetes.client import Configuration

from arenastack_operator.arenaevaluation.handlers import Controller as EvaluationController
from arenastack_operator.controller import Controller, RetryLater
from arenastack_operator.inferencedeployment.handlers import Controller as DeploymentController
from arenastack_operator.inferencedeployment.status import REPLICAS
from arenastack_operator.kubeclient import KubeClient
from arenastack_operator.metrics import RESULT_ERROR, RESULT_RETRY, OperatorMetrics, Sample
from arenastack_operator.raycluster.handlers import Controller as RayClusterController

CONTROLLERS = [RayClusterController, DeploymentController, EvaluationController]


async def _drop(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up
    writer.close()


@pytest.fixture(params=[_drop, _hang], ids=["dropped-connection", "no-answer"])
async def apiserver(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    server = await asyncio.start_server(request.param, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()


def _controller(kind: Callable[..., Controller], host: str, metrics: OperatorMetrics) -> Controller:
    configuration = Configuration()
    configuration.host = host
    return kind(KubeClient(configuration, timeout_s=0.5), metrics, "test-operator")


def _count(metrics: OperatorMetrics, kind: str, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "arenastack_operator_reconciles_total", {"kind": kind, "result": result}
    )
    return value or 0.0


@pytest.mark.parametrize("kind", CONTROLLERS, ids=lambda k: k.kind.kind)
async def test_lost_apiserver_is_retried_not_an_error(
    kind: type[Controller], apiserver: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = OperatorMetrics()
    controller = _controller(kind, apiserver, metrics)
    try:
        with pytest.raises(RetryLater):
            await controller._reconcile("ns", "obj")
        assert _count(metrics, kind.kind.kind, RESULT_RETRY) == 1
        assert _count(metrics, kind.kind.kind, RESULT_ERROR) == 0

        # Through the worker loop: retried after a backoff, logged without a traceback.
        controller.queue.add(("ns", "obj"))
        caplog.set_level(logging.INFO)
        worker = asyncio.create_task(controller._work())
        for _ in range(100):
            if _count(metrics, kind.kind.kind, RESULT_RETRY) >= 2:
                break
            await asyncio.sleep(0.05)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        assert _count(metrics, kind.kind.kind, RESULT_RETRY) == 2
        records = [r for r in caplog.records if r.name == controller.logger.name]
        assert records and all(r.exc_info is None for r in records)
        assert all("retried in" in r.getMessage() for r in records)
    finally:
        await controller.api.close()


async def test_a_reconciler_bug_is_still_an_error() -> None:
    """Only the apiserver's failures are retried quietly; the reconciler's own are counted."""

    class Broken(DeploymentController):
        async def reconcile_once(self, namespace: str, name: str) -> None:
            raise KeyError("status")

    metrics = OperatorMetrics()
    controller = _controller(Broken, "http://127.0.0.1:9", metrics)
    try:
        with pytest.raises(KeyError):
            await controller._reconcile("ns", "obj")
        assert _count(metrics, "InferenceDeployment", RESULT_ERROR) == 1
    finally:
        await controller.api.close()


async def test_queue_depth_is_exported_and_a_deleted_objects_series_go() -> None:
    metrics = OperatorMetrics()
    controller = _controller(DeploymentController, "http://127.0.0.1:9", metrics)
    depth = {"kind": "InferenceDeployment"}
    try:
        assert metrics.registry.get_sample_value("arenastack_operator_workqueue_depth", depth) == 0
        controller.queue._add_now(("ns", "a"))
        controller.queue._add_now(("ns", "b"))
        assert metrics.registry.get_sample_value("arenastack_operator_workqueue_depth", depth) == 2

        replicas = Sample(REPLICAS, 1, ("ready",))
        metrics.objects.set("InferenceDeployment", "ns", "a", "status", [replicas])
        ready = {"namespace": "ns", "inferencedeployment": "a", "state": "ready"}
        name = "arenastack_operator_inferencedeployment_replicas"
        assert metrics.registry.get_sample_value(name, ready) == 1
        metrics.scaling_decisions.labels("ns", "a", "up").inc()
        controller.forget(("ns", "a"), "uid-a")
        assert metrics.registry.get_sample_value(name, ready) is None
        labels = {"namespace": "ns", "inferencedeployment": "a", "direction": "up"}
        name = "arenastack_operator_inferencedeployment_scaling_decisions_total"
        assert metrics.registry.get_sample_value(name, labels) is None
    finally:
        await controller.api.close()
