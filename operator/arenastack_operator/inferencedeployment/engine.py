"""The vLLM engine command and container: the same command on a GPU node and on the local node.

Pure functions of the typed spec; no I/O.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Sequence
from typing import Any, Final, Literal

from arenastack_operator import security
from arenastack_operator.inferencedeployment import names
from arenastack_operator.inferencedeployment.spec import (
    DEFAULT_HF_TOKEN_KEY,
    InferenceDeploymentSpec,
    ModelSpec,
)

Executor = Literal["uni", "mp", "ray"]
PYTHON: Final = "python3"
# A replica loads its weights before /health answers; allow it this long before liveness counts.
STARTUP_PERIOD_S: Final = 5
STARTUP_FAILURES: Final = 360  # 30 minutes: big models download slowly
READINESS_PERIOD_S: Final = 2
LIVENESS_PERIOD_S: Final = 10
# Lets the router and the Service drop a stopping replica before it refuses connections.
PRESTOP_SLEEP_S: Final = 5
TERMINATION_GRACE_S: Final = 60
# vLLM refuses the adapter-loading API unless this is set.
RUNTIME_LORA_ENV: Final = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"


SCALE_OUT_FLAG = "--enable-scale-out"


def model_argument(model: ModelSpec) -> str:
    """What --model receives: a hub repository id or a directory."""
    if model.hugging_face is not None:
        return model.hugging_face.repo_id
    if model.volume is not None:
        return posixpath.normpath(posixpath.join(names.MODEL_MOUNT, model.volume.path.lstrip("/")))
    assert model.path is not None  # the schema requires exactly one source
    return model.path


def served_model_name(model: ModelSpec) -> str:
    """The name clients ask for: explicit, else the repository id or the directory's name."""
    if model.served_model_name:
        return model.served_model_name
    if model.hugging_face is not None:
        return model.hugging_face.repo_id
    return posixpath.basename(model_argument(model).rstrip("/")) or "model"


def gpus_per_replica(spec: InferenceDeploymentSpec) -> int:
    """Accelerators one replica needs: given, or tensor x pipeline parallel size."""
    if spec.gpus_per_replica is not None:
        return spec.gpus_per_replica
    return spec.engine.world_size


def default_executor(spec: InferenceDeploymentSpec) -> Executor:
    """Executor of a replica on one node: in-process for one worker, else multiprocessing."""
    return "uni" if spec.engine.world_size == 1 else "mp"


def _flag(args: list[str], name: str, value: object) -> None:
    if value is None or value is False:
        return
    args.append(f"--{name}")
    if value is not True:
        args.append(str(value))


def engine_args(spec: InferenceDeploymentSpec, executor: Executor) -> list[str]:
    """Arguments of `python3 -m vllm.entrypoints.openai.api_server`: typed fields first, then
    extraArgs unchanged (the schema refuses extraArgs that repeat an owned flag)."""
    model, engine = spec.model, spec.engine
    args: list[str] = []
    _flag(args, "model", model_argument(model))
    if model.hugging_face is not None:
        _flag(args, "revision", model.hugging_face.revision)
    _flag(args, "served-model-name", served_model_name(model))
    _flag(args, "tokenizer", model.tokenizer)
    _flag(args, "host", "0.0.0.0")
    _flag(args, "port", names.ENGINE_PORT)
    if model.dtype != "auto":
        _flag(args, "dtype", model.dtype)
    _flag(args, "quantization", model.quantization)
    _flag(args, "trust-remote-code", model.trust_remote_code)
    _flag(args, "tensor-parallel-size", engine.tensor_parallel_size)
    _flag(args, "pipeline-parallel-size", engine.pipeline_parallel_size)
    _flag(args, "distributed-executor-backend", executor)
    _flag(args, "max-model-len", engine.max_model_len)
    _flag(args, "gpu-memory-utilization", engine.gpu_memory_utilization)
    _flag(args, "max-num-seqs", engine.max_num_seqs)
    _flag(args, "max-num-batched-tokens", engine.max_num_batched_tokens)
    _flag(args, "block-size", engine.block_size)
    if engine.enable_prefix_caching is not None:
        _flag(
            args,
            "enable-prefix-caching" if engine.enable_prefix_caching else "no-enable-prefix-caching",
            True,
        )
    _flag(args, "kv-cache-dtype", engine.kv_cache_dtype)
    if spec.lora is not None:
        # Adapters themselves are loaded through the API (see lora.py), so changing the list
        # never changes the pod template and never restarts a replica.
        _flag(args, "enable-lora", True)
        _flag(args, "max-loras", spec.lora.max_loras)
        _flag(args, "max-lora-rank", spec.lora.max_lora_rank)
    extra = spec.engine.extra_args or []
    if spec.router.enabled and spec.router.policy == "cacheAware" and SCALE_OUT_FLAG not in extra:
        # vllm-router's cache-aware policy asks each replica to render the prompt before it
        # routes; vLLM serves /render only with this flag, and without it the router quietly
        # falls back to the least-loaded replica, losing the prefix affinity.
        _flag(args, SCALE_OUT_FLAG.removeprefix("--"), True)
    args.extend(extra)
    return args


def engine_command() -> list[str]:
    return [PYTHON, "-m", names.ENGINE_MODULE]


def shell_line(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def engine_env(spec: InferenceDeploymentSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    secret = spec.model.hub_secret_ref
    if secret is not None:
        env.append(
            {
                "name": DEFAULT_HF_TOKEN_KEY,
                "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}},
            }
        )
    if spec.model_cache is not None:
        env.append({"name": "HF_HOME", "value": names.CACHE_MOUNT})
    if spec.lora is not None:
        env.append({"name": RUNTIME_LORA_ENV, "value": "True"})
    env.extend(dict(e) for e in spec.env or [])
    return env


def resources(spec: InferenceDeploymentSpec, gpus: int) -> dict[str, Any]:
    """The container's resources with the GPU count set in requests and limits."""
    result: dict[str, Any] = json.loads(json.dumps(spec.resources or {}))
    if gpus > 0:
        for section in ("limits", "requests"):
            result.setdefault(section, {})[names.GPU_RESOURCE] = gpus
    return result


def _http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": names.ENGINE_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def probes() -> dict[str, Any]:
    """Ready only when the model is listed: /v1/models answers once the engine has loaded it."""
    return {
        "startupProbe": _http_probe(names.HEALTH_PATH, STARTUP_PERIOD_S, STARTUP_FAILURES),
        "readinessProbe": _http_probe(names.MODELS_PATH, READINESS_PERIOD_S, 2),
        "livenessProbe": _http_probe(names.HEALTH_PATH, LIVENESS_PERIOD_S, 6),
    }


def volumes(spec: InferenceDeploymentSpec, name: str) -> tuple[list[dict], list[dict]]:
    """(pod volumes, engine volume mounts): weights, download cache, shared memory."""
    vols: list[dict[str, Any]] = [{"name": names.SHM_VOLUME, "emptyDir": {"medium": "Memory"}}]
    mounts: list[dict[str, Any]] = [{"name": names.SHM_VOLUME, "mountPath": names.SHM_MOUNT}]
    if spec.model.volume is not None:
        claim = {"claimName": spec.model.volume.claim_name, "readOnly": True}
        vols.append({"name": names.MODEL_VOLUME, "persistentVolumeClaim": claim})
        mounts.append(
            {"name": names.MODEL_VOLUME, "mountPath": names.MODEL_MOUNT, "readOnly": True}
        )
    if spec.model_cache is not None:
        claim_name = spec.model_cache.claim_name or names.cache_claim_name(name)
        vols.append(
            {"name": names.CACHE_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}}
        )
        mounts.append({"name": names.CACHE_VOLUME, "mountPath": names.CACHE_MOUNT})
    return vols, mounts


def engine_container(
    spec: InferenceDeploymentSpec,
    name: str,
    gpus: int,
    executor: Executor,
    *,
    ray_start: str | None = None,
) -> dict[str, Any]:
    """The engine container; with `ray_start`, a shell first joins or starts the Ray node."""
    argv = [*engine_command(), *engine_args(spec, executor)]
    if ray_start is None:
        command, args = argv[:3], argv[3:]
    else:
        command, args = ["bash", "-c"], [f"{ray_start} && exec {shell_line(argv)}"]
    _, mounts = volumes(spec, name)
    container: dict[str, Any] = {
        "name": names.ENGINE_CONTAINER,
        "image": spec.image,
        "command": command,
        "args": args,
        "ports": [{"name": names.ENGINE_PORT_NAME, "containerPort": names.ENGINE_PORT}],
        "env": engine_env(spec),
        "resources": resources(spec, gpus),
        "volumeMounts": mounts,
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_S}}},
        "securityContext": security.engine_security_context(),
        **probes(),
    }
    if not container["env"]:
        del container["env"]
    return container


def placement(spec: InferenceDeploymentSpec) -> dict[str, Any]:
    """nodeSelector, tolerations and affinity of every engine pod."""
    result: dict[str, Any] = {}
    if spec.node_selector:
        result["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        result["tolerations"] = [dict(t) for t in spec.tolerations]
    if spec.affinity:
        result["affinity"] = dict(spec.affinity)
    return result
