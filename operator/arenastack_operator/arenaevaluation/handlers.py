"""kopf handlers for ArenaEvaluation: watch events in, runs out.

Each spec is one run: a Job named after the evaluation and the generation that started it, and
annotated with the hash of the spec, so an operator restarted at any moment finds the Job it
made instead of making another. A spec change starts a new run (the Jobs of earlier runs are
deleted with their pods), except `suspend`, which pauses and resumes the same run. The Job is
created once every contestant and the judge can be reached: InferenceDeployments must be
Ready, and until they are the evaluation waits and says for which. Deleting the evaluation
garbage-collects the runner's Job, pods, ConfigMap and RBAC through owner references.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import kopf
import pydantic
from kubernetes.client import Configuration

from arenastack_operator import constants, controller, reconcile
from arenastack_operator.arenaevaluation import builders, names
from arenastack_operator.arenaevaluation import spec as s
from arenastack_operator.arenaevaluation import status as status_mod
from arenastack_operator.arenaevaluation.builders import Owner, Target
from arenastack_operator.conditions import now_rfc3339, status_changed
from arenastack_operator.controller import describe_invalid, key_of, replace_patch
from arenastack_operator.kubeclient import CONFLICT, ApiError, KubeClient, core_path, group_path
from arenastack_operator.metrics import OperatorMetrics
from arenastack_operator.queuecontroller import register_queue_controller

KIND = constants.ARENAEVALUATION
logger = logging.getLogger("arenastack_operator.arenaevaluation")

# InferenceDeployments are not the evaluation's children, so their readiness is polled.
WAIT_POLL_S: Final = 5.0
_WARNING_PHASES: Final = (s.PHASE_FAILED, s.PHASE_WAITING)


def _jobs_path(namespace: str, name: str | None = None) -> str:
    return group_path("batch", "v1", namespace, "jobs", name)


def _deployment_path(namespace: str, name: str) -> str:
    ref = constants.INFERENCEDEPLOYMENT
    return group_path(ref.group, ref.version, namespace, ref.plural, name)


def _ready(body: Mapping[str, Any]) -> bool:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == constants.CONDITION_READY:
            return condition.get("status") == "True"
    return False


def judge_name(spec: s.ArenaEvaluationSpec) -> str:
    judge = spec.judge
    if judge.inference_deployment_ref is not None:
        return judge.inference_deployment_ref.name
    assert judge.endpoint is not None
    return judge.endpoint.model


class Controller(controller.Controller):
    kind = KIND
    workers = 4
    logger = logger

    def __init__(
        self,
        api: KubeClient,
        metrics: OperatorMetrics,
        identity: str,
        image: str = constants.DEFAULT_EVALUATION_IMAGE,
        arena_url: str | None = None,
    ) -> None:
        super().__init__(api, metrics, identity)
        self.image = image
        self.arena_url = arena_url

    async def reconcile_once(self, namespace: str, name: str) -> None:
        body = await self.api.get(self.path(namespace, name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return  # owner references garbage-collect the runs
        meta = body["metadata"]
        uid, generation = meta["uid"], int(meta.get("generation") or 1)
        try:
            spec = s.ArenaEvaluationSpec.model_validate(body.get("spec") or {})
        except pydantic.ValidationError as e:
            problem = status_mod.Problem(status_mod.REASON_INVALID_SPEC, describe_invalid(e))
            await self._write_status(body, Owner(name, namespace, uid, generation), None, None,
                                     problem)  # fmt: skip
            return
        # The run this spec asks for: the Job made for it (found again after any restart), or
        # a new one numbered by this generation.
        wanted = builders.run_hash(spec)
        jobs = [j for j in await self.api.list(_jobs_path(namespace), _selector(name))
                if _owned_by(j, uid)]  # fmt: skip
        job = next((j for j in jobs if _annotation(j, names.ANNOTATION_RUN_HASH) == wanted), None)
        run = int(job["metadata"]["labels"][names.LABEL_RUN]) if job else generation
        owner = Owner(name, namespace, uid, run)
        await self._stop_earlier_runs(body, owner, [j for j in jobs if j is not job])
        problem: status_mod.Problem | None = None
        waiting: list[str] = []
        if job is None:
            job, problem, waiting = await self._start_run(body, spec, owner)
        elif bool((job.get("spec") or {}).get("suspend")) != spec.suspend:
            job_name = job["metadata"]["name"]
            job = await self.api.merge_patch(
                _jobs_path(namespace, job_name), {"spec": {"suspend": spec.suspend}}
            )
            verb = "Suspended" if spec.suspend else "Resumed"
            await self.event(body, "Normal", f"{verb}Run", f"{verb.lower()} Job {job_name}")
        await self._write_status(body, owner, spec, job, problem, waiting)
        if problem is not None and problem.phase == s.PHASE_WAITING:
            self.queue.add_after(key_of(body), WAIT_POLL_S)

    async def _start_run(
        self, body: Mapping[str, Any], spec: s.ArenaEvaluationSpec, owner: Owner
    ) -> tuple[dict[str, Any] | None, status_mod.Problem | None, list[str]]:
        """(the new Job, or None with why it waits or cannot start, what it waits for)."""
        if spec.suspend:
            problem = status_mod.Problem(
                status_mod.REASON_SUSPENDED,
                "spec.suspend is true: the run starts when it is set to false",
                s.PHASE_SUSPENDED,
            )
            return None, problem, []
        arena_url = (spec.arena.url if spec.arena else None) or self.arena_url
        if not arena_url:
            return (
                None,
                status_mod.Problem(
                    status_mod.REASON_ARENA_NOT_CONFIGURED,
                    "spec.arena.url is not set and the operator has no default arena service "
                    "(install the chart with arena.enabled=true, or set spec.arena.url)",
                ),
                [],
            )
        contestants, judge, missing, not_ready = await self._resolve(owner.namespace, spec)
        if missing:
            return (
                None,
                status_mod.Problem(
                    status_mod.REASON_CONTESTANT_NOT_FOUND,
                    "no InferenceDeployment " + ", ".join(missing) + " in this namespace",
                    s.PHASE_WAITING,
                ),
                missing,
            )
        if not_ready:
            return None, status_mod.waiting(not_ready, judge_not_ready=judge is None), not_ready
        assert judge is not None
        for child in (
            builders.service_account(owner),
            builders.role(owner),
            builders.role_binding(owner),
        ):
            await self.ensure(body, child)
        config, secrets = builders.run_config(spec, owner, contestants, judge, arena_url)
        await self.ensure(body, builders.config_map(owner, config))
        desired = builders.job(spec, owner, self.image, secrets)
        try:
            job = await self.api.create(_jobs_path(owner.namespace), desired)
        except ApiError as e:
            if e.status != CONFLICT:
                raise
            job = await self.api.get(_jobs_path(owner.namespace, desired["metadata"]["name"]))
        else:
            await self.event(
                body,
                "Normal",
                "CreatedJob",
                f"run {owner.run}: created Job {desired['metadata']['name']} for "
                f"{len(contestants)} contestants judged by {judge.model}",
            )
        return job, None, []

    async def _resolve(
        self, namespace: str, spec: s.ArenaEvaluationSpec
    ) -> tuple[list[Target], Target | None, list[str], list[str]]:
        """(contestants, judge or None while it is not Ready, missing, not Ready)."""
        missing: list[str] = []
        not_ready: list[str] = []

        async def resolve(
            label: str,
            name: str,
            ref: Any,
            endpoint: s.EndpointSpec | None,
        ) -> Target | None:
            if endpoint is not None:
                return Target(name, endpoint.base_url, endpoint.model, endpoint.api_key_secret_ref)
            deployment = await self.api.get(_deployment_path(namespace, ref.name))
            if deployment is None:
                missing.append(f"{label} {ref.name}")
                return None
            status = deployment.get("status") or {}
            if not _ready(deployment) or not status.get("endpoint"):
                not_ready.append(f"{label} {ref.name}")
                return None
            model = status.get("servedModel") or ref.name
            return Target(name, status["endpoint"], model, vllm=True)

        contestants = []
        for c in spec.contestants:
            target = await resolve("contestant", c.name, c.inference_deployment_ref, c.endpoint)
            if target is not None:
                contestants.append(target)
        j = spec.judge
        judge = await resolve("judge", judge_name(spec), j.inference_deployment_ref, j.endpoint)
        return contestants, judge, missing, not_ready

    async def _stop_earlier_runs(
        self, body: Mapping[str, Any], owner: Owner, jobs: list[dict[str, Any]]
    ) -> None:
        """A spec change starts a new run: the Jobs (with their pods) and configurations of
        earlier runs go."""
        for job in jobs:
            job_name = job["metadata"]["name"]
            gone = await self.api.delete(
                _jobs_path(owner.namespace, job_name),
                uid=job["metadata"]["uid"],
                propagation="Background",
            )
            if gone:
                await self.event(body, "Normal", "StoppedEarlierRun",
                                 f"deleted Job {job_name}: the spec changed, run {owner.run} "
                                 "replaces it")  # fmt: skip
        path = core_path(owner.namespace, "configmaps")
        selector = f"{_selector(owner.name)},{names.LABEL_RUN}!={owner.run}"
        for config in await self.api.list(path, selector):
            if _owned_by(config, owner.uid):
                await self.api.delete(f"{path}/{config['metadata']['name']}")

    async def _write_status(
        self,
        body: Mapping[str, Any],
        owner: Owner,
        spec: s.ArenaEvaluationSpec | None,
        job: Mapping[str, Any] | None,
        problem: status_mod.Problem | None,
        waiting: list[str] | None = None,
    ) -> None:
        previous = body.get("status") or {}
        runner_message = None
        if job is not None and status_mod.job_phase(job)[0] == s.PHASE_FAILED:
            pods = await self.api.list(
                core_path(owner.namespace, "pods"), f"job-name={job['metadata']['name']}"
            )
            runner_message = status_mod.termination_message(pods)
        new = status_mod.build_status(
            previous=previous,
            generation=int(body["metadata"].get("generation") or 1),
            run=owner.run,
            judge_name=judge_name(spec) if spec is not None else None,
            job_name=names.run_name(owner.name, owner.run),
            job=job,
            problem=problem,
            waiting_for=waiting or (),
            runner_message=runner_message,
            now=now_rfc3339(),
        )
        if not status_changed(previous, new):
            return
        # Conditional on what was read: the runner writes its progress concurrently, and what
        # it wrote meanwhile must fail this write (409, retried), not be dropped.
        written = await self.patch_status(
            owner.namespace,
            owner.name,
            replace_patch(previous, new),
            body["metadata"].get("resourceVersion"),
        )
        if written and (new["phase"], new.get("reason")) != (
            previous.get("phase"),
            previous.get("reason"),
        ):
            type_ = "Warning" if new["phase"] in _WARNING_PHASES else "Normal"
            await self.event(body, type_, new["reason"], f"{new['phase']}: {new['message']}")


def _selector(evaluation: str) -> str:
    return f"{names.LABEL_EVALUATION}={evaluation}"


def _annotation(obj: Mapping[str, Any], key: str) -> str | None:
    return (obj["metadata"].get("annotations") or {}).get(key)


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


# -- registration -------------------------------------------------------------------------------


def register(
    registry: kopf.OperatorRegistry,
    metrics: OperatorMetrics,
    image: str = constants.DEFAULT_EVALUATION_IMAGE,
    arena_url: str | None = None,
) -> None:
    def make(configuration: Configuration, identity: str) -> Controller:
        return Controller(
            controller.kube_client(configuration, metrics, KIND),
            metrics,
            identity,
            image,
            arena_url,
        )

    register_queue_controller(registry, KIND, make, names.LABEL_EVALUATION, [("batch/v1", "jobs")])
    reconcile.register_phase_tracking(registry, KIND, metrics, status_mod.series)
