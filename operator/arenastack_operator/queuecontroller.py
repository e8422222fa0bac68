"""How a queue-driven controller (RayCluster, InferenceDeployment) gets into kopf.

kopf only feeds the queue: every event of the kind, or of a child labelled with its owner's
name, queues the owner's key, and the controller's own workers reconcile from the queue. The
controller starts and stops with the operator, and forgets an object once it is deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import kopf
from kubernetes.client import Configuration

from arenastack_operator import constants, kube
from arenastack_operator.constants import KindRef
from arenastack_operator.workqueue import WorkQueue

Key = tuple[str, str]


class QueueController(Protocol):
    queue: WorkQueue[Key]

    def start(self) -> None: ...
    async def stop(self) -> None: ...
    def forget(self, key: Key, uid: str | None) -> None: ...


def register_queue_controller(
    registry: kopf.OperatorRegistry,
    kind: KindRef,
    make: Callable[[Configuration, str], QueueController],
    owner_label: str,
    children: Sequence[tuple[str, str]],
) -> None:
    """`make(api configuration, identity)` builds the controller at start-up; `children` are
    the (group/version, plural) kinds whose objects carry `owner_label`."""
    state: dict[str, QueueController] = {}
    watchers: set[asyncio.Task[None]] = set()
    singular = kind.kind.lower()

    def enqueue(namespace: str | None, name: str | None) -> None:
        controller = state.get("controller")
        if controller is not None and namespace and name:
            controller.queue.add((namespace, name))

    async def stop_controller() -> None:
        controller = state.pop("controller", None)
        if controller is not None:
            await controller.stop()

    async def stop_when(stopping: asyncio.Event) -> None:
        await stopping.wait()
        await stop_controller()

    @kopf.on.startup(registry=registry, id=f"start-{singular}-controller")
    async def start(memo: kopf.Memo, **_: Any) -> None:
        # main.py puts the --kubeconfig path in the memo; None means in-cluster or $KUBECONFIG.
        kubeconfig: Path | None = getattr(memo, "kubeconfig", None)
        identity = str(getattr(memo, "identity", constants.OPERATOR_NAME))
        controller = make(kube.load_configuration(kubeconfig), identity)
        controller.start()
        state["controller"] = controller
        # ... and kopf's stop flag, which is set as the operator begins to stop.
        stopping: asyncio.Event | None = getattr(memo, "stopping", None)
        if stopping is not None:
            # kopf skips the cleanup handlers when it is stopped before every startup handler
            # has returned; the workers would then count as hung tasks, which kopf waits 5 s
            # for before it cancels them. The operator's stop flag reaches them either way.
            watcher = asyncio.create_task(stop_when(stopping))
            watchers.add(watcher)
            watcher.add_done_callback(watchers.discard)

    @kopf.on.cleanup(registry=registry, id=f"stop-{singular}-controller")
    async def stop(**_: Any) -> None:
        await stop_controller()

    @kopf.on.event(*kind.selector, registry=registry, id=f"queue-{kind.plural}")
    async def owner_event(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        namespace, name = body.metadata.namespace, body.metadata.name
        if not (namespace and name):
            return
        if event.get("type") != "DELETED":
            enqueue(namespace, name)
        elif (controller := state.get("controller")) is not None:
            controller.forget((namespace, name), body.metadata.uid)

    async def child_event(body: kopf.Body, **_: Any) -> None:
        enqueue(body.metadata.namespace, body.metadata.labels.get(owner_label))

    for group_version, plural in children:
        kopf.on.event(
            group_version, plural, labels={owner_label: kopf.PRESENT},
            registry=registry, id=f"queue-{singular}-{plural}",
        )(child_event)  # fmt: skip
