"""Pure builders of an ArenaEvaluation's children: the runner's identity and rights, and one
run's configuration and Job. No I/O: handlers resolve contestants first (`Target`).

The run configuration (`run.json` in a ConfigMap) is the whole contract with the runner
(`python -m arenastack_arena.evaluation`): endpoints already resolved, secrets only named by the
environment variables the Job fills from Secret references, so the configuration itself holds
nothing secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from arenastack_operator import constants, security
from arenastack_operator.arenaevaluation import names
from arenastack_operator.arenaevaluation.spec import ArenaEvaluationSpec, JobSpec, Sampling
from arenastack_operator.hashing import spec_hash
from arenastack_operator.schema.base import SecretKeyReference

DEFAULT_RESOURCES: Final = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
DEFAULT_MAX_TOKENS: Final = 512


@dataclass(frozen=True)
class Owner:
    name: str
    namespace: str
    uid: str
    run: int  # the generation this run evaluates


@dataclass(frozen=True)
class Target:
    """A contestant or the judge, resolved to an OpenAI-compatible base URL and model."""

    name: str
    base_url: str
    model: str
    api_key: SecretKeyReference | None = None
    # True for InferenceDeployments: the engine is vLLM, whose structured output the judge uses.
    vllm: bool = False


def run_hash(spec: ArenaEvaluationSpec) -> str:
    """What identifies a run: the whole spec but `suspend`."""
    return spec_hash({k: v for k, v in spec.to_json().items() if k != "suspend"})


def labels(owner: Owner, run: bool = True) -> dict[str, str]:
    out = {
        constants.LABEL_NAME: "arenastack",
        constants.LABEL_COMPONENT: names.COMPONENT_RUNNER,
        constants.LABEL_MANAGED_BY: constants.OPERATOR_NAME,
        names.LABEL_EVALUATION: owner.name,
    }
    if run:
        out[names.LABEL_RUN] = str(owner.run)
    return out


def _metadata(owner: Owner, name: str, run: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner, run),
        "ownerReferences": [
            {
                "apiVersion": constants.ARENAEVALUATION.api_version,
                "kind": constants.ARENAEVALUATION.kind,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


# -- the runner's identity: it may read its evaluation and write its status, nothing else --


def service_account(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(owner, names.runner_name(owner.name), run=False),
    }


def role(owner: Owner) -> dict[str, Any]:
    ref = constants.ARENAEVALUATION
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(owner, names.runner_name(owner.name), run=False),
        "rules": [
            {
                "apiGroups": [ref.group],
                "resources": [ref.plural],
                "resourceNames": [owner.name],
                "verbs": ["get"],
            },
            {
                "apiGroups": [ref.group],
                "resources": [f"{ref.plural}/status"],
                "resourceNames": [owner.name],
                "verbs": ["get", "patch"],
            },
        ],
    }


def role_binding(owner: Owner) -> dict[str, Any]:
    name = names.runner_name(owner.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(owner, name, run=False),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
    }


# -- one run ---------------------------------------------------------------------------------


def _secret_env(secrets: dict[str, SecretKeyReference], env: str, ref: SecretKeyReference) -> str:
    secrets[env] = ref
    return env


def _key_env(index: int | str) -> str:
    return f"{names.ENV_KEY_PREFIX}{str(index).upper()}"


def _target(target: Target, sampling: Sampling | None, env: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": target.name, "baseURL": target.base_url, "model": target.model}
    if env:
        out["apiKeyEnv"] = env
    if sampling is not None:
        out.update(sampling.to_json())
    out.setdefault("maxTokens", DEFAULT_MAX_TOKENS)
    return out


def run_config(
    spec: ArenaEvaluationSpec,
    owner: Owner,
    contestants: list[Target],
    judge: Target,
    arena_url: str,
) -> tuple[dict[str, Any], dict[str, SecretKeyReference]]:
    """(run.json, the Secret references the Job exposes as environment variables)."""
    secrets: dict[str, SecretKeyReference] = {}
    by_name = {c.name: c for c in spec.contestants}
    entries = []
    for index, target in enumerate(contestants):
        contestant = by_name[target.name]
        env = _secret_env(secrets, _key_env(index), target.api_key) if target.api_key else None
        entry = _target(target, contestant.sampling, env)
        if contestant.price_per_million_tokens is not None:
            entry["pricePerMillionTokens"] = contestant.price_per_million_tokens
        if contestant.family:
            entry["family"] = contestant.family
        entries.append(entry)

    j = spec.judge
    judge_env = _secret_env(secrets, _key_env("judge"), judge.api_key) if judge.api_key else None
    judge_entry = _target(judge, None, judge_env)
    judge_entry.update(
        structuredOutput=j.structured_output if j.structured_output is not None else judge.vllm,
        scale=j.scale,
        strongWinWeight=j.strong_win_weight,
        bothOrders=j.both_orders,
        onDisagreement=j.on_disagreement,
        referenceGuided=j.reference_guided,
        temperature=j.temperature,
        maxTokens=j.max_tokens,
        retries=j.retries,
        timeoutSeconds=j.timeout_seconds,
        source=names.judge_source(judge.model),
    )
    if j.family:
        judge_entry["family"] = j.family
    if j.template is not None:
        judge_entry["templateFile"] = f"{names.TEMPLATE_MOUNT}/{j.template.config_map_ref.key}"

    arena: dict[str, Any] = {"url": arena_url}
    token = spec.arena.token_secret_ref if spec.arena else None
    if token is not None:
        arena["tokenEnv"] = _secret_env(secrets, names.ENV_ARENA_TOKEN, token)

    config = {
        "evaluation": {
            "namespace": owner.namespace,
            "name": owner.name,
            "uid": owner.uid,
            "run": owner.run,
        },
        "contestants": entries,
        "judge": judge_entry,
        "prompts": _prompts(spec),
        "battles": spec.battles.to_json(),
        "arena": arena,
        "concurrency": spec.concurrency,
    }
    return config, secrets


def _prompts(spec: ArenaEvaluationSpec) -> dict[str, Any]:
    prompts = spec.prompts
    if prompts.inline is not None:
        return {"inline": [p.to_json() for p in prompts.inline]}
    if prompts.config_map_ref is not None:
        return {"file": f"{names.PROMPTS_MOUNT}/{prompts.config_map_ref.key}"}
    if prompts.file is not None:
        return {"file": f"{names.VOLUME_FILE_MOUNT}/{prompts.file.path}"}
    assert prompts.from_arena is not None  # the CRD requires exactly one source
    return {"fromArena": prompts.from_arena.to_json()}


def config_map(owner: Owner, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(owner, names.run_name(owner.name, owner.run)),
        "data": {names.CONFIG_FILE: json.dumps(config, indent=1, sort_keys=True)},
    }


def _volumes(spec: ArenaEvaluationSpec, owner: Owner) -> tuple[list[dict], list[dict]]:
    run = names.run_name(owner.name, owner.run)
    volumes: list[dict[str, Any]] = [
        {"name": "run", "configMap": {"name": run}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "run", "mountPath": names.CONFIG_MOUNT, "readOnly": True},
        {"name": "scratch", "mountPath": names.SCRATCH_MOUNT},
    ]
    prompts = spec.prompts
    if prompts.config_map_ref is not None:
        volumes.append({"name": "prompts", "configMap": {"name": prompts.config_map_ref.name}})
        mounts.append({"name": "prompts", "mountPath": names.PROMPTS_MOUNT, "readOnly": True})
    if prompts.file is not None:
        claim = {"claimName": prompts.file.claim_name, "readOnly": True}
        volumes.append({"name": "prompt-file", "persistentVolumeClaim": claim})
        mounts.append(
            {"name": "prompt-file", "mountPath": names.VOLUME_FILE_MOUNT, "readOnly": True}
        )
    if spec.judge.template is not None:
        ref = spec.judge.template.config_map_ref
        volumes.append({"name": "template", "configMap": {"name": ref.name}})
        mounts.append({"name": "template", "mountPath": names.TEMPLATE_MOUNT, "readOnly": True})
    return volumes, mounts


def job(
    spec: ArenaEvaluationSpec,
    owner: Owner,
    image: str,
    secrets: dict[str, SecretKeyReference],
) -> dict[str, Any]:
    volumes, mounts = _volumes(spec, owner)
    env = [
        {"name": env, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
        for env, ref in sorted(secrets.items())
    ]
    settings = spec.job or JobSpec()
    container = {
        "name": names.RUNNER_CONTAINER,
        "image": settings.image or image,
        "command": ["python", "-m", names.RUNNER_MODULE],
        "args": ["--config", f"{names.CONFIG_MOUNT}/{names.CONFIG_FILE}"],
        "env": env,
        "volumeMounts": mounts,
        "resources": settings.resources or DEFAULT_RESOURCES,
        "securityContext": security.container_security_context(),
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": names.runner_name(owner.name),
        "restartPolicy": "Never",
        "securityContext": security.pod_security_context(),
        "containers": [container],
        "volumes": volumes,
    }
    job_spec: dict[str, Any] = {
        "backoffLimit": settings.backoff_limit,
        "suspend": spec.suspend,
        "template": {"metadata": {"labels": labels(owner)}, "spec": pod_spec},
    }
    if settings.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = settings.active_deadline_seconds
    meta = _metadata(owner, names.run_name(owner.name, owner.run))
    meta["annotations"] = {names.ANNOTATION_RUN_HASH: run_hash(spec)}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec}
