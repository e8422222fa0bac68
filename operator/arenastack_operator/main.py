"""The operator process: probes and metrics, leader election, and kopf once the lease is ours.

kopf runs in its own thread with its own event loop. kopf treats every task created in its loop
after it starts as one of its own and cancels it on exit; keeping the election, the probe and
metrics listeners (and their per-connection tasks) in the main loop keeps them out of that sweep,
so we can stop kopf, then release the lease, while /healthz still answers. Signals arrive in the
main thread, where we decide how to stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import kopf
from kubernetes import client

from arenastack_operator import config as config_mod
from arenastack_operator import constants, kube, logs
from arenastack_operator.arenaevaluation import handlers as arenaevaluation
from arenastack_operator.config import ConfigError, OperatorConfig
from arenastack_operator.election import LeaderElector, LeadershipLost, LeaseClient
from arenastack_operator.health import Probe, Role, Servers, health_app, metrics_app
from arenastack_operator.inferencedeployment import handlers as inferencedeployment
from arenastack_operator.metrics import OperatorMetrics
from arenastack_operator.raycluster import handlers as raycluster
from arenastack_operator.rayjob import handlers as rayjob

logger = logging.getLogger("arenastack_operator")


def build_registry(cfg: OperatorConfig, metrics: OperatorMetrics) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    kube.register_login(registry, cfg.kubeconfig)
    if cfg.raycluster_controller:
        raycluster.register(registry, metrics)
        rayjob.register(registry, metrics)
    inferencedeployment.register(registry, metrics)
    arenaevaluation.register(registry, metrics, cfg.evaluation_image, cfg.arena_url)
    return registry


def build_settings(cfg: OperatorConfig) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # Watching only some namespaces, the operator holds a Role, not a ClusterRole: it can neither
    # list namespaces nor watch CRDs, so kopf must not try (it would warn and fall back anyway).
    settings.scanning.disabled = not cfg.clusterwide
    # The Lease decides who reconciles; kopf's peering would need its own CRD and RBAC.
    settings.peering.standalone = True
    settings.peering.mandatory = False
    # Our CRDs have structural schemas, which would prune kopf's default status.kopf storage.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=constants.KOPF_ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=constants.KOPF_ANNOTATION_PREFIX, key=constants.DIFFBASE_KEY
    )
    settings.persistence.finalizer = constants.FINALIZER
    # kopf would SIGKILL the process if its shutdown hung; the main thread bounds shutdown itself.
    settings.process.ultimate_exiting_timeout = None
    return settings


class KopfThread:
    """kopf.operator() in a daemon thread; stop() asks it to finish, `done` says it has."""

    def __init__(
        self,
        cfg: OperatorConfig,
        registry: kopf.OperatorRegistry,
        settings: kopf.OperatorSettings,
        main_loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._cfg = cfg
        self._registry = registry
        self._settings = settings
        self._main_loop = main_loop
        self.ready = threading.Event()
        self.done = asyncio.Event()  # set in the main loop
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._loop_created = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kopf", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._loop_created.wait()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._stop = asyncio.Event()
        self._loop_created.set()
        try:
            loop.run_until_complete(
                kopf.operator(
                    registry=self._registry,
                    settings=self._settings,
                    standalone=True,
                    clusterwide=self._cfg.clusterwide,
                    namespaces=list(self._cfg.namespaces),
                    stop_flag=self._stop,
                    ready_flag=self.ready,
                    memo=kopf.Memo(
                        identity=self._cfg.identity,
                        kubeconfig=self._cfg.kubeconfig,
                        stopping=self._stop,
                    ),
                )
            )
        except BaseException as e:  # reported to the main thread, which decides the exit status
            self.error = e
        finally:
            loop.close()
            self._main_loop.call_soon_threadsafe(self.done.set)


def _package_version() -> str:
    try:
        return metadata.version("arenastack")
    except metadata.PackageNotFoundError:
        return "unknown"


class Operator:
    def __init__(self, cfg: OperatorConfig) -> None:
        self.cfg = cfg
        self.metrics = OperatorMetrics().with_process_collectors()
        self.shutdown = asyncio.Event()
        self.servers = Servers()
        self.elector: LeaderElector | None = None
        self.kopf: KopfThread | None = None
        self.probe = Probe(
            identity=cfg.identity,
            contact_max_age=cfg.timing.lease_duration,
            kopf_ready=lambda: self.kopf is not None and self.kopf.ready.is_set(),
            kopf_alive=lambda: self.kopf is not None and self.kopf.alive(),
            last_contact=lambda: self.elector.last_contact if self.elector else None,
            holder=self._holder,
        )
        self._signals = 0

    def _holder(self) -> str | None:
        if self.elector is not None:
            return self.elector.observed_holder
        return self.cfg.identity if self.probe.role is Role.LEADER else None

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            logger.warning("Second signal: exiting at once")
            os._exit(constants.EXIT_FAILURE)
        logger.info("Received %s: shutting down", signal.Signals(signum).name)
        self.shutdown.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        self.metrics.info.info({"identity": self.cfg.identity, "version": _package_version()})
        self.metrics.set_leader(False)
        try:
            configuration = kube.load_configuration(self.cfg.kubeconfig)
        except Exception as e:  # a malformed kubeconfig raises YAML, key or type errors too
            logger.error("Cannot load Kubernetes credentials: %s", str(e).replace("\n", " "))
            return constants.EXIT_CONFIG_ERROR
        registry = build_registry(self.cfg, self.metrics)
        self.kopf = KopfThread(self.cfg, registry, build_settings(self.cfg), loop)

        host = self.cfg.bind_address
        await self.servers.start("health", health_app(self.probe), host, self.cfg.health_port)
        await self.servers.start("metrics", metrics_app(self.metrics), host, self.cfg.metrics_port)
        logger.info(
            "Serving probes and metrics",
            extra={
                "health_port": self.servers.ports["health"],
                "metrics_port": self.servers.ports["metrics"],
                "identity": self.cfg.identity,
                "namespaces": list(self.cfg.namespaces) or "all",
            },
        )
        # The election retries on its own schedule; urllib3's hidden retries would only blur
        # how long one attempt takes against the renew deadline.
        configuration.retries = 0
        api_client = client.ApiClient(configuration)
        try:
            return await self._lead(api_client)
        finally:
            await self.servers.stop()
            api_client.close()

    async def _lead(self, api_client: client.ApiClient) -> int:
        if self.cfg.leader_elect:
            assert self.cfg.lease_namespace is not None  # config.parse guarantees it
            self.elector = LeaderElector(
                LeaseClient(
                    api_client,
                    self.cfg.lease_namespace,
                    self.cfg.lease_name,
                    self.cfg.timing.request_timeout,
                ),
                self.cfg.identity,
                self.cfg.timing,
                on_change=self.metrics.set_leader,
            )
            self.probe.role = Role.STANDBY
            if not await self.elector.acquire(self.shutdown):
                logger.info("Stopped while on standby")
                return 0
        else:
            self.metrics.set_leader(True)

        assert self.kopf is not None
        self.probe.role = Role.LEADER
        logger.info("Leading: starting the handlers", extra={"identity": self.cfg.identity})
        self.kopf.start()
        waiters: dict[asyncio.Task[Any], str] = {
            asyncio.create_task(self.shutdown.wait()): "signal",
            asyncio.create_task(self.kopf.done.wait()): "kopf",
        }
        if self.elector is not None:
            waiters[asyncio.create_task(self.elector.hold())] = "lease"
        done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        self.probe.role = Role.STOPPING
        # If several happened at once, a lost lease decides: it is the one that forbids a release.
        ended = {waiters[task]: task for task in done}
        if "lease" in ended:
            return await self._stop_after_losing_the_lease(ended["lease"].exception(), pending)
        status = 0
        if "kopf" in ended:
            logger.error("The handler engine stopped unexpectedly: %r", self.kopf.error)
            status = constants.EXIT_FAILURE
        await self._stop(pending)
        logger.info("Stopped", extra={"exit_status": status})
        return status

    async def _stop_after_losing_the_lease(
        self, error: BaseException | None, pending: set[asyncio.Task[Any]]
    ) -> int:
        # Someone else may lead as soon as the lease expires: stop reconciling within the margin
        # between our renew deadline and the lease duration, whatever it takes.
        assert self.kopf is not None
        logger.error("Lost the lease: %s", error, extra={"identity": self.cfg.identity})
        margin = self.cfg.timing.lease_duration - self.cfg.timing.renew_deadline
        self.kopf.stop()
        if not await self.kopf.wait(margin / 2):
            logger.error("Handlers did not stop in time; exiting")
            logging.shutdown()
            os._exit(constants.EXIT_LEADERSHIP_LOST)
        await _cancel(pending)
        if isinstance(error, LeadershipLost):
            return constants.EXIT_LEADERSHIP_LOST
        return constants.EXIT_FAILURE

    async def _stop(self, pending: set[asyncio.Task[Any]]) -> None:
        """Clean stop: let in-flight handlers finish (bounded), then hand the lease over."""
        assert self.kopf is not None
        self.kopf.stop()
        if not await self.kopf.wait(self.cfg.shutdown_timeout):
            logger.warning(
                "Handlers still running after %ss; abandoning them", self.cfg.shutdown_timeout
            )
        await _cancel(pending)
        if self.elector is not None:
            await self.elector.release()
        else:
            self.metrics.set_leader(False)


async def _cancel(tasks: set[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg = config_mod.parse(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as e:
        logs.setup_logging()
        logger.error("Invalid configuration: %s", e)
        return constants.EXIT_CONFIG_ERROR
    logs.setup_logging(cfg.log_level)
    operator = Operator(cfg)
    status = asyncio.run(operator.run())
    if operator.kopf is not None and operator.kopf.alive():
        # A handler is stuck in a worker thread; a normal exit would wait for it forever.
        logging.shutdown()
        os._exit(status)
    return status
