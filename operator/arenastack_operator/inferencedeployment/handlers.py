"""kopf handlers for InferenceDeployment: watch events in, reconciles out, plus the autoscaler.

As for RayCluster, events only queue the deployment's key; a worker reconciles it from fresh
reads (spec -> topology -> builders -> create or patch what differs -> status written only when
it changed). A loop reads the ready replicas' /metrics for deployments with autoscaling (and,
with scaleToZero, the router's, the only demand visible at zero replicas), decides
(autoscaler.py), and records the new replica count in status.replicas, which the next reconcile
applies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
import kopf
import pydantic
from kubernetes.client import Configuration

from arenastack_operator import constants, controller, reconcile
from arenastack_operator.conditions import now_rfc3339, status_changed
from arenastack_operator.controller import Key, RetryLater, describe_invalid, replace_patch
from arenastack_operator.inferencedeployment import (
    engine,
    enginemetrics,
    lora,
    names,
    routermetrics,
    topology,
    workloads,
)
from arenastack_operator.inferencedeployment import status as status_mod
from arenastack_operator.inferencedeployment.autoscaler import Autoscaler
from arenastack_operator.inferencedeployment.routermetrics import NO_DEMAND
from arenastack_operator.inferencedeployment.spec import InferenceDeploymentSpec
from arenastack_operator.inferencedeployment.workloads import Owner
from arenastack_operator.kubeclient import (
    FORBIDDEN,
    ApiError,
    KubeClient,
    core_path,
    group_path,
)
from arenastack_operator.metrics import OperatorMetrics
from arenastack_operator.queuecontroller import register_queue_controller

KIND = constants.INFERENCEDEPLOYMENT
logger = logging.getLogger("arenastack_operator.inferencedeployment")

# How often the autoscaler reads the replicas' metrics (seconds; the environment variable lets
# tests and small clusters decide faster).
AUTOSCALE_INTERVAL_ENV: Final = f"{constants.ENV_PREFIX}AUTOSCALE_INTERVAL"
DEFAULT_AUTOSCALE_INTERVAL_S: Final = 15.0


def desired_replicas(spec: InferenceDeploymentSpec, previous: Mapping[str, Any]) -> int:
    """spec.replicas, or under autoscaling the autoscaler's last count (status.replicas)."""
    scaling = spec.autoscaling
    if scaling is None:
        return spec.replicas
    floor = scaling.min_replicas if scaling.scale_to_zero else max(scaling.min_replicas, 1)
    current = previous.get("replicas")
    if not isinstance(current, int):
        current = max(scaling.min_replicas, 1)
    return min(max(current, floor), scaling.max_replicas)


class Controller(controller.Controller):
    kind = KIND
    workers = 4
    logger = logger

    def __init__(self, api: KubeClient, metrics: OperatorMetrics, identity: str) -> None:
        super().__init__(api, metrics, identity)
        self.autoscalers: dict[Key, Autoscaler] = {}
        self.interval = float(
            os.environ.get(AUTOSCALE_INTERVAL_ENV) or DEFAULT_AUTOSCALE_INTERVAL_S
        )

    def background(self) -> list[Any]:
        return [self._autoscale_loop()]

    def forget_object(self, key: Key, uid: str | None) -> None:
        self.autoscalers.pop(key, None)
        namespace, name = key
        self.metrics.scaling_decisions.remove_by_labels(
            {"namespace": namespace, "inferencedeployment": name}
        )

    # -- reconcile -------------------------------------------------------------------------------

    async def reconcile_once(self, namespace: str, name: str) -> None:
        body = await self.api.get(self.path(namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.autoscalers.pop((namespace, name), None)
            return  # owner references garbage-collect the children
        owner = Owner(name, namespace, body["metadata"]["uid"])
        previous = body.get("status") or {}
        try:
            spec = InferenceDeploymentSpec.model_validate(body.get("spec") or {})
        except pydantic.ValidationError as e:
            await self._write_status(body, [], None, None, None, None, 0,
                                     status_mod.Problem(status_mod.REASON_INVALID_SPEC,
                                                        describe_invalid(e)))  # fmt: skip
            return
        self._track_autoscaling((namespace, name), spec)

        plan = topology.plan(spec, await self._node_capacity(spec))
        replicas = desired_replicas(spec, previous)
        claim = workloads.cache_claim(spec, owner)
        if claim is not None:
            await self.ensure(body, claim)
        await self.ensure(body, workloads.engine_service(owner))
        ray_cluster = None
        if plan.layout == "ray":
            await self._ensure_ray_clusters(body, spec, owner, plan, replicas)
            ray_cluster = names.ray_cluster_name(name, 0) if replicas else None
        else:
            await self.ensure(body, workloads.engine_deployment(spec, owner, plan, replicas))
            if spec.ray_cluster_ref is not None:
                ray_cluster = spec.ray_cluster_ref.name
        router_ready = None
        if spec.router.enabled:
            for obj in workloads.router_rbac(owner):
                await self.ensure(body, obj)
            urls = None
            if spec.router.discovery == "static":
                urls = await self._engine_urls(namespace, name)
            router = await self.ensure(body, workloads.router_deployment(spec, owner, urls))
            await self.ensure(body, workloads.router_service(owner))
            router_ready = int((router.get("status") or {}).get("readyReplicas") or 0) > 0

        pods = await self._engine_pods(namespace, name)
        problem = None
        if plan.insufficient is not None:
            problem = status_mod.Problem(topology.REASON_INSUFFICIENT_GPU, plan.insufficient)
        await self._write_status(
            body, pods, router_ready, workloads.endpoint(spec, owner),
            engine.served_model_name(spec.model), ray_cluster, replicas, problem,
        )  # fmt: skip
        if spec.lora is not None:
            await self._sync_adapters(body, spec, pods)

    async def _sync_adapters(
        self, body: Mapping[str, Any], spec: InferenceDeploymentSpec, pods: list[dict[str, Any]]
    ) -> None:
        """Load the spec's LoRA adapters on every ready replica, unload the others."""
        assert spec.lora is not None
        base = engine.served_model_name(spec.model)
        failures = []
        async with aiohttp.ClientSession() as session:
            for pod in pods:
                ip = (pod.get("status") or {}).get("podIP")
                if not ip or not status_mod.is_ready(pod):
                    continue
                url = f"http://{ip}:{names.ENGINE_PORT}"
                try:
                    changes = await lora.sync_replica(session, url, base, spec.lora.adapters)
                except (aiohttp.ClientError, TimeoutError, RuntimeError) as e:
                    failures.append(f"{pod['metadata']['name']}: {e}")
                    continue
                if changes:
                    loaded = ", ".join(a.name for a in changes.load) or "none"
                    unloaded = ", ".join(changes.unload) or "none"
                    message = f"{pod['metadata']['name']}: loaded {loaded}; unloaded {unloaded}"
                    await self.event(body, "Normal", "LoraAdaptersSynced", message)
        if failures:
            await self.event(body, "Warning", "LoraLoadFailed", "; ".join(failures))
            raise RetryLater("LoRA adapters not in sync: " + "; ".join(failures))

    async def _node_capacity(self, spec: InferenceDeploymentSpec) -> int | None:
        """None where nodes cannot be read (a namespaced install has no ClusterRole)."""
        if engine.gpus_per_replica(spec) == 0 and spec.distributed != "ray":
            return None
        try:
            nodes = await self.api.request("GET", "/api/v1/nodes")
        except ApiError as e:
            if e.status == FORBIDDEN:
                return None
            raise
        return topology.largest_node_gpus(nodes.get("items") or [], spec.node_selector or {})

    async def _engine_pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return await self._pods(namespace, name, names.COMPONENT_ENGINE)

    async def _pods(self, namespace: str, name: str, component: str) -> list[dict[str, Any]]:
        selector = names.selector_labels(name, component)
        text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        return await self.api.list(core_path(namespace, "pods"), text)

    async def _engine_urls(self, namespace: str, name: str) -> list[str]:
        pods = await self._engine_pods(namespace, name)
        ips = sorted(p["status"]["podIP"] for p in pods if status_mod.is_ready(p))
        return [f"http://{ip}:{names.ENGINE_PORT}" for ip in ips]

    async def _ensure_ray_clusters(
        self,
        body: Mapping[str, Any],
        spec: InferenceDeploymentSpec,
        owner: Owner,
        plan: topology.Topology,
        replicas: int,
    ) -> None:
        for replica in range(replicas):
            await self.ensure(body, workloads.ray_cluster(spec, owner, plan, replica))
        path = group_path(constants.RAY_GROUP, constants.RAY_VERSION, owner.namespace,
                          constants.RAYCLUSTER.plural)  # fmt: skip
        existing = await self.api.list(path, f"{names.LABEL_DEPLOYMENT}={owner.name}")
        wanted = {names.ray_cluster_name(owner.name, i) for i in range(replicas)}
        for cluster in existing:
            if cluster["metadata"]["name"] not in wanted:
                await self.api.delete(f"{path}/{cluster['metadata']['name']}")

    async def _write_status(
        self,
        body: Mapping[str, Any],
        pods: list[dict[str, Any]],
        router_ready: bool | None,
        endpoint: str | None,
        served_model: str | None,
        ray_cluster: str | None,
        replicas: int,
        problem: status_mod.Problem | None,
    ) -> None:
        previous = body.get("status") or {}
        meta = body["metadata"]
        new = status_mod.build_status(
            previous=previous,
            generation=int(meta.get("generation") or 0),
            desired_replicas=replicas,
            engine_pods=pods,
            router_ready=router_ready,
            endpoint=endpoint,
            served_model=served_model,
            ray_cluster=ray_cluster,
            problem=problem,
            now=now_rfc3339(),
        )
        if not status_changed(previous, new):
            return
        # Conditional on what was read: the autoscaler writes status.replicas concurrently, and
        # a decision it made meanwhile must fail this write (409, retried), not be overwritten.
        await self.patch_status(
            meta["namespace"],
            meta["name"],
            replace_patch(previous, new),
            meta.get("resourceVersion"),
        )
        before = status_mod.condition(previous, constants.CONDITION_DEGRADED) or {}
        after = status_mod.condition(new, constants.CONDITION_DEGRADED) or {}
        if after.get("status") == "True" and after.get("reason") != before.get("reason"):
            await self.event(body, "Warning", after["reason"], after.get("message", ""))
        ready = status_mod.condition(new, constants.CONDITION_READY) or {}
        was = status_mod.condition(previous, constants.CONDITION_READY) or {}
        if ready.get("status") != was.get("status"):
            await self.event(body, "Normal", ready["reason"], ready.get("message", ""))

    # -- autoscaling -------------------------------------------------------------------------

    def _track_autoscaling(self, key: Key, spec: InferenceDeploymentSpec) -> None:
        if spec.autoscaling is None:
            self.autoscalers.pop(key, None)
            return
        scaler = self.autoscalers.get(key)
        if scaler is None:
            self.autoscalers[key] = Autoscaler(spec.autoscaling)
        else:
            scaler.spec = spec.autoscaling

    async def _autoscale_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for key in list(self.autoscalers):
                try:
                    await self.autoscale(*key)
                except Exception:
                    logger.exception("Autoscaling of %s/%s failed", *key)

    async def autoscale(self, namespace: str, name: str) -> None:
        scaler = self.autoscalers.get((namespace, name))
        body = await self.api.get(self.path(namespace, name))
        if scaler is None or body is None:
            return
        previous = body.get("status") or {}
        current = int(previous.get("replicas") or 0)
        engines = [p for p in await self._engine_pods(namespace, name) if status_mod.is_ready(p)]
        samples = await enginemetrics.scrape_all(
            _metrics_urls(engines, names.ENGINE_PORT, names.METRICS_PATH)
        )
        demand = NO_DEMAND
        if scaler.spec.scale_to_zero:
            routers = await self._pods(namespace, name, names.COMPONENT_ROUTER)
            readings = await enginemetrics.fetch_all(
                _metrics_urls(routers, names.ROUTER_METRICS_PORT, names.METRICS_PATH),
                routermetrics.parse,
            )
            demand = scaler.observe_router(readings)
        # Replicas that are still starting give no samples: the count is kept, the demand noted.
        decision = scaler.decide(current, samples, time.monotonic(), demand)
        now = now_rfc3339()
        patch: dict[str, Any] = {}
        if samples:
            patch["observedMetric"] = {
                "name": scaler.spec.metric, "value": decision.value, "time": now
            }  # fmt: skip
        if scaler.spec.scale_to_zero:
            patch["observedDemand"] = status_mod.observed_demand(
                demand, scaler.idle_for(time.monotonic()), datetime.now(UTC)
            )
        if decision.changes(current):
            patch["replicas"] = decision.replicas
            patch["lastScalingDecision"] = {
                "time": now,
                "fromReplicas": current,
                "toReplicas": decision.replicas,
                "reason": decision.reason,
            }
            direction = "up" if decision.replicas > current else "down"
            self.metrics.scaling_decisions.labels(namespace, name, direction).inc()
            logger.info("Scaling %s/%s: %s", namespace, name, decision.reason)
            await self.event(body, "Normal", "Scaled", decision.reason)
        if patch:
            await self.patch_status(namespace, name, patch)


def _metrics_urls(pods: list[dict[str, Any]], port: int, path: str) -> dict[str, str]:
    """/metrics URLs of the pods that have an address and are not stopping, by pod name."""
    return {
        p["metadata"]["name"]: f"http://{p['status']['podIP']}:{port}{path}"
        for p in pods
        if (p.get("status") or {}).get("podIP") and not p["metadata"].get("deletionTimestamp")
    }


# -- registration -------------------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry, metrics: OperatorMetrics) -> None:
    def make(configuration: Configuration, identity: str) -> Controller:
        return Controller(controller.kube_client(configuration, metrics, KIND), metrics, identity)

    register_queue_controller(
        registry, KIND, make, names.LABEL_DEPLOYMENT,
        [("v1", "pods"), ("apps/v1", "deployments")],
    )  # fmt: skip
    reconcile.register_phase_tracking(registry, KIND, metrics, status_mod.series)
