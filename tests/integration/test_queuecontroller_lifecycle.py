"""A queue controller stops with the operator even when kopf is stopped during start-up.

kopf (1.45) skips the cleanup handlers when its stop flag is raised before every startup handler
has returned; a controller started by an earlier startup handler then kept its workers, kopf
counted them as hung tasks and waited 5 s before cancelling them, and the operator's own 5 s
shutdown bound logged "abandoning them" first (a flaky failure of
test_operator_process.py's SIGTERM check). kopf runs here in-process against the real
apiserver, with a slow second startup handler holding the start-up open.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
from kubernetes.client import Configuration

from arenastack_cluster.cluster import LocalCluster
from arenastack_operator import constants, kube
from arenastack_operator.queuecontroller import Key, register_queue_controller
from arenastack_operator.workqueue import WorkQueue


class RecordingController:
    """Stands in for the RayCluster or InferenceDeployment controller: its worker idles, and it
    records who ended it: its own stop() or kopf's cancellation of hung tasks."""

    def __init__(self) -> None:
        self.queue: WorkQueue[Key] = WorkQueue(delay_s=0.0)
        self.worker: asyncio.Task[None] | None = None
        self.stopped = False

    def start(self) -> None:
        self.worker = asyncio.create_task(asyncio.Event().wait())

    async def stop(self) -> None:
        self.stopped = True
        assert self.worker is not None
        self.worker.cancel()
        await asyncio.gather(self.worker, return_exceptions=True)

    def forget(self, key: Key, uid: str | None) -> None:
        self.queue.discard(key)


async def test_stop_during_startup_stops_a_started_controller(
    cluster: LocalCluster, crds: list[str], namespace: str
) -> None:
    controllers: list[RecordingController] = []

    def make(_: Configuration, __: str) -> RecordingController:
        controllers.append(RecordingController())
        return controllers[-1]

    registry = kopf.OperatorRegistry()
    kube.register_login(registry, cluster.kubeconfig)
    register_queue_controller(
        registry, constants.INFERENCEDEPLOYMENT, make, constants.LABEL_INSTANCE, children=()
    )
    holding = asyncio.Event()

    @kopf.on.startup(registry=registry, id="hold-start-up")
    async def hold(**_: Any) -> None:
        holding.set()
        await asyncio.Event().wait()

    stop = asyncio.Event()
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    settings.process.ultimate_exiting_timeout = None
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=settings,
            standalone=True,
            namespaces=[namespace],
            stop_flag=stop,
            memo=kopf.Memo(kubeconfig=cluster.kubeconfig, stopping=stop),
        )
    )
    await asyncio.wait_for(holding.wait(), timeout=30)
    assert len(controllers) == 1 and controllers[0].worker is not None
    assert not controllers[0].worker.done()

    stop.set()
    await asyncio.wait_for(operator, timeout=30)
    # Ended by its own stop(), not left for kopf to cancel as a hung task.
    assert controllers[0].stopped
