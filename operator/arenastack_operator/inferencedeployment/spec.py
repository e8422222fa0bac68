"""Typed definition of ``arenastack.io/v1alpha1`` InferenceDeployment (first draft).

"Serve this model with these engine settings": vLLM replicas with an
OpenAI-compatible endpoint behind vLLM's own router, autoscaled from the
engine's metrics, multi-node on Ray when one replica needs more than a node.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from arenastack_operator import constants
from arenastack_operator.schema.base import (
    EMPTY_OBJECT_DEFAULT,
    Affinity,
    ApiModel,
    Conditions,
    CrdInfo,
    EnvVars,
    Int64,
    LocalObjectReference,
    NonNegativeInt32,
    PositiveInt32,
    PrinterColumn,
    Quantity,
    ResourceRequirements,
    SecretKeyReference,
    StringMap,
    Timestamp,
    Tolerations,
    cel,
    list_map,
    rules,
)

# Pinned official vLLM image; the engine command is the same on every runtime.
DEFAULT_IMAGE = "vllm/vllm-openai:v0.32.0"
DEFAULT_HF_TOKEN_KEY = "HF_TOKEN"
# Engine flags the operator sets itself from typed fields; extraArgs may not set them.
OWNED_ENGINE_FLAGS = (
    "model",
    "revision",
    "served-model-name",
    "tokenizer",
    "host",
    "port",
    "dtype",
    "quantization",
    "trust-remote-code",
    "tensor-parallel-size",
    "pipeline-parallel-size",
    "max-model-len",
    "gpu-memory-utilization",
    "max-num-seqs",
    "max-num-batched-tokens",
    "block-size",
    "enable-prefix-caching",
    "no-enable-prefix-caching",
    "kv-cache-dtype",
    "download-dir",
    "distributed-executor-backend",
    "enable-lora",
    "lora-modules",
    "max-loras",
    "max-lora-rank",
)
# Router flags the operator sets from the spec (the retry flags hold requests during a cold
# start with scale to zero); vllm-router refuses a flag given twice, so extraArgs may not set them.
OWNED_ROUTER_FLAGS = (
    "host",
    "port",
    "policy",
    "prometheus-host",
    "prometheus-port",
    "service-discovery",
    "service-discovery-namespace",
    "service-discovery-port",
    "selector",
    "worker-urls",
    "retry-max-retries",
    "retry-initial-backoff-ms",
    "retry-max-backoff-ms",
    "retry-backoff-multiplier",
)


def owned_flags_pattern(flags: Sequence[str], short: Sequence[str] = ()) -> str:
    """A regex matching an argument that sets one of `flags` (--flag or --flag=value). vLLM's
    argument parser takes underscores for dashes (--max_model_len), so both spellings count."""
    alternatives = [f"--({'|'.join(flag.replace('-', '[-_]') for flag in flags)})", *short]
    return f"^({'|'.join(alternatives)})(=.*)?$"


OWNED_ENGINE_PATTERN = owned_flags_pattern(OWNED_ENGINE_FLAGS, short=("-tp", "-pp"))
OWNED_ROUTER_PATTERN = owned_flags_pattern(OWNED_ROUTER_FLAGS)
OWNED_FLAGS_MESSAGE = "extraArgs may not set flags the operator owns (use the typed fields)"
# Where the refusal points users for what the owned flags set.
ENGINE_TYPED_FIELDS = "spec.model and spec.engine"
ROUTER_TYPED_FIELDS = "spec.router and spec.autoscaling"
DEFAULT_ROUTER_IMAGE = "ghcr.io/arenastack/vllm-router:0.1.17"
MAX_EXTRA_ARGS = 64
MAX_ARG_LENGTH = 1024
MAX_ADAPTERS = 64
HF_REPO_PATTERN = r"^[A-Za-z0-9][-A-Za-z0-9_.]*(/[A-Za-z0-9][-A-Za-z0-9_.]*)?$"

Dtype = Literal["auto", "half", "float16", "bfloat16", "float", "float32"]
KvCacheDtype = Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"]
BlockSize = Literal[1, 8, 16, 32, 64, 128]
Distributed = Literal["auto", "none", "ray"]
ScalingMetric = Literal["waitingRequests", "kvCacheUsage", "timeToFirstToken"]
RouterPolicy = Literal["cacheAware", "powerOfTwo", "roundRobin", "consistentHash"]
Discovery = Literal["labelSelector", "static"]


class HuggingFaceSource(ApiModel):
    """A model repository on the Hugging Face hub."""

    repo_id: str = Field(
        description="Repository id, e.g. Qwen/Qwen2.5-0.5B-Instruct.",
        max_length=256,
        pattern=HF_REPO_PATTERN,
    )
    revision: str | None = Field(
        default=None, description="Branch, tag or commit (default: main).", max_length=256
    )


class VolumeSource(ApiModel):
    """Weights already on a PersistentVolumeClaim."""

    claim_name: str = Field(description="The claim holding the weights.", max_length=253)
    path: str = Field(
        default="/", description="Directory of the model inside the volume.", max_length=4096
    )


class ModelSpec(ApiModel):
    """Where the weights come from and how the engine loads them."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "[has(self.huggingFace), has(self.volume), has(self.path)]"
                ".filter(x, x).size() == 1",
                "set exactly one of model.huggingFace and model.volume (or model.path alone)",
            ),
            cel(
                "!has(self.hubSecretRef) || has(self.huggingFace)",
                "hubSecretRef is only used with huggingFace",
                ".hubSecretRef",
            ),
        )
    }

    hugging_face: HuggingFaceSource | None = Field(
        default=None, description="Download the weights from the Hugging Face hub."
    )
    volume: VolumeSource | None = Field(
        default=None, description="Load the weights from a directory on a volume."
    )
    path: str | None = Field(
        default=None,
        description="A directory the engine container can already read (baked into the image).",
        max_length=4096,
        pattern=r"^/",
    )
    served_model_name: str | None = Field(
        default=None,
        description="Model name clients ask for (default: the repository id or the directory).",
        max_length=256,
    )
    tokenizer: str | None = Field(
        default=None,
        description="Tokenizer repository or path (default: the model's).",
        max_length=4096,
    )
    dtype: Dtype = Field(default="auto", description="Data type of weights and activations.")
    quantization: str | None = Field(
        default=None,
        description="Quantization method of the weights (e.g. awq, gptq, fp8).",
        max_length=64,
        pattern=r"^[a-z0-9_-]+$",
    )
    trust_remote_code: bool = Field(
        default=False, description="Allow the model repository's own Python code to run."
    )
    hub_secret_ref: SecretKeyReference | None = Field(
        default=None,
        description=f"Secret key holding a hub token (the key is usually {DEFAULT_HF_TOKEN_KEY}).",
    )


def extra_args_type(pattern: str, typed_fields: str) -> Any:
    """The type of an extraArgs list whose items may not match `pattern`."""
    item = Annotated[
        str,
        Field(
            max_length=MAX_ARG_LENGTH,
            # On each item (not the list) so the error names the offending flag and its index,
            # within the apiserver's CEL cost budget.
            json_schema_extra=rules(
                {
                    "rule": f"!self.matches('{pattern}')",
                    "message": OWNED_FLAGS_MESSAGE,
                    "messageExpression": "'extraArgs may not set flags the operator owns: ' + "
                    f"self + ' (use the typed fields of {typed_fields})'",
                }
            ),
        ),
    ]
    return Annotated[list[item], Field(max_length=MAX_EXTRA_ARGS)] | None


def refuse_owned_flags(
    value: list[str] | None, pattern: str, typed_fields: str
) -> list[str] | None:
    # The CRD refuses these too; this catches objects stored before the rule existed.
    owned = owned_flags(value or [], pattern)
    if owned:
        raise ValueError(
            f"extraArgs may not set flags the operator owns: {', '.join(owned)} "
            f"(use the typed fields of {typed_fields})"
        )
    return value


ExtraArgs = extra_args_type(OWNED_ENGINE_PATTERN, ENGINE_TYPED_FIELDS)
RouterExtraArgs = extra_args_type(OWNED_ROUTER_PATTERN, ROUTER_TYPED_FIELDS)


class EngineSpec(ApiModel):
    """vLLM engine settings."""

    tensor_parallel_size: PositiveInt32 = Field(
        default=1, description="GPUs that each layer is split across."
    )
    pipeline_parallel_size: PositiveInt32 = Field(
        default=1, description="Pipeline stages (one replica spans tp x pp GPUs)."
    )
    max_model_len: PositiveInt32 | None = Field(
        default=None, description="Longest context in tokens (default: the model's)."
    )
    gpu_memory_utilization: float | None = Field(
        default=None,
        description="Fraction of GPU memory the engine may use (default 0.9).",
        gt=0,
        le=1,
    )
    max_num_seqs: PositiveInt32 | None = Field(
        default=None, description="Most sequences in one batch."
    )
    max_num_batched_tokens: PositiveInt32 | None = Field(
        default=None, description="Most tokens in one batch."
    )
    block_size: BlockSize | None = Field(
        default=None, description="Tokens per KV-cache block (PagedAttention)."
    )
    enable_prefix_caching: bool | None = Field(
        default=None, description="Reuse KV-cache blocks of shared prompt prefixes."
    )
    kv_cache_dtype: KvCacheDtype | None = Field(
        default=None, description="Data type of the KV cache."
    )
    extra_args: ExtraArgs = Field(
        default=None, description="More engine flags, passed through unchanged."
    )

    @field_validator("extra_args")
    @classmethod
    def _no_owned_flags(cls, value: list[str] | None) -> list[str] | None:
        return refuse_owned_flags(value, OWNED_ENGINE_PATTERN, ENGINE_TYPED_FIELDS)

    @property
    def world_size(self) -> int:
        """Accelerators one replica spans."""
        return self.tensor_parallel_size * self.pipeline_parallel_size


def owned_flags(args: list[str], pattern: str = OWNED_ENGINE_PATTERN) -> list[str]:
    """The arguments of `args` that set a flag the operator owns."""
    owned = re.compile(pattern)
    return [a for a in args if owned.match(a)]


class ModelCacheSpec(ApiModel):
    """The engine's download cache, kept across restarts."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "has(self.claimName) != has(self.size)",
                "set exactly one of modelCache.claimName (an existing claim) and modelCache.size "
                "(a claim the operator creates)",
            ),
            cel(
                "!has(self.storageClassName) || has(self.size)",
                "storageClassName is only used with size",
                ".storageClassName",
            ),
        )
    }

    claim_name: str | None = Field(
        default=None, description="An existing PersistentVolumeClaim to use.", max_length=253
    )
    size: Quantity | None = Field(
        default=None, description="Size of a claim the operator creates and owns."
    )
    storage_class_name: str | None = Field(
        default=None, description="Storage class of the claim the operator creates."
    )


class LoraAdapter(ApiModel):
    """A LoRA adapter served beside the base model."""

    name: str = Field(
        description="Model name clients use for the adapter.", min_length=1, max_length=128
    )
    source: str = Field(
        description="Hugging Face repository id or a path the replicas can read.",
        min_length=1,
        max_length=4096,
    )


class LoraSpec(ApiModel):
    """LoRA adapters; changes are applied to running replicas without a restart."""

    adapters: Annotated[
        list[LoraAdapter], Field(max_length=MAX_ADAPTERS, json_schema_extra=list_map("name"))
    ] = Field(description="Adapters to serve.")
    max_loras: PositiveInt32 | None = Field(
        default=None, description="Adapters active in one batch."
    )
    max_lora_rank: PositiveInt32 | None = Field(default=None, description="Largest adapter rank.")


class AutoscalingSpec(ApiModel):
    """Replica autoscaling from the engines' own /metrics."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas",
                ".minReplicas",
            ),
            cel(
                "self.minReplicas > 0 || self.scaleToZero",
                "minReplicas 0 needs scaleToZero: true",
                ".minReplicas",
            ),
            cel(
                "self.metric != 'kvCacheUsage' || self.target <= 1.0",
                "the kvCacheUsage target is a fraction in (0, 1]",
                ".target",
            ),
        )
    }

    min_replicas: NonNegativeInt32 = Field(default=1, description="Fewest replicas.")
    max_replicas: PositiveInt32 = Field(description="Most replicas.")
    metric: ScalingMetric = Field(
        default="waitingRequests",
        description="What to scale on: waitingRequests (per replica), kvCacheUsage (fraction) "
        "or timeToFirstToken (seconds, at ttftPercentile).",
    )
    target: float = Field(description="Target value of the metric.", gt=0)
    ttft_percentile: Literal[50, 90, 95, 99] = Field(
        default=90, description="Percentile of time to first token used by timeToFirstToken."
    )
    scale_up_stabilization_seconds: NonNegativeInt32 = Field(
        default=0, description="Window over which scale-up takes the lowest recommendation."
    )
    scale_down_stabilization_seconds: NonNegativeInt32 = Field(
        default=300, description="Window over which scale-down takes the highest recommendation."
    )
    scale_to_zero: bool = Field(
        default=False,
        description="Allow zero replicas when idle. The router stays up; a request reaching it "
        "at zero replicas starts one (read from the router's own /metrics) and is held while "
        "it starts.",
    )
    scale_to_zero_idle_seconds: NonNegativeInt32 = Field(
        default=300,
        description="With scaleToZero: how long no request may reach the router or an engine "
        "before the last replica goes.",
    )
    activation_timeout_seconds: PositiveInt32 = Field(
        default=300,
        description="With scaleToZero and the router: how long the router holds a request that "
        "finds no replica, retrying until one has started (a cold start), before answering 503.",
    )


class RouterSpec(ApiModel):
    """vLLM's router (vllm-router) in front of the replicas."""

    enabled: bool = Field(default=True, description="Deploy the router.")
    policy: RouterPolicy = Field(
        default="cacheAware",
        description="Routing policy: cacheAware, powerOfTwo, roundRobin or consistentHash.",
    )
    discovery: Discovery = Field(
        default="labelSelector",
        description="How the router finds replicas: labelSelector (watches pods) or static (a "
        "list the operator maintains).",
    )
    replicas: PositiveInt32 = Field(default=1, description="Router replicas.")
    image: str = Field(
        default=DEFAULT_ROUTER_IMAGE,
        description="Router image (runs the vllm-router command). It runs as uid 65532 with "
        "a read-only root file system and no capabilities, whatever the image's own user.",
        max_length=1024,
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Resources of the router container."
    )
    extra_args: RouterExtraArgs = Field(
        default=None,
        description="More vllm-router flags, passed through unchanged (for example "
        "--balance-abs-threshold or --cache-threshold to tune cache-aware routing).",
    )

    @field_validator("extra_args")
    @classmethod
    def _no_owned_flags(cls, value: list[str] | None) -> list[str] | None:
        return refuse_owned_flags(value, OWNED_ROUTER_PATTERN, ROUTER_TYPED_FIELDS)


class InferenceDeploymentSpec(ApiModel):
    """Desired state: a model served by vLLM replicas behind a router."""

    model_config = {
        "json_schema_extra": rules(
            cel(
                "!has(self.gpusPerReplica) || self.gpusPerReplica == 0 || "
                "self.gpusPerReplica == self.engine.tensorParallelSize * "
                "self.engine.pipelineParallelSize",
                "gpusPerReplica must equal engine.tensorParallelSize x "
                "engine.pipelineParallelSize (or be 0 for CPU)",
                ".gpusPerReplica",
            ),
            cel(
                "!has(self.rayClusterRef) || self.distributed != 'none'",
                "rayClusterRef needs distributed auto or ray",
                ".rayClusterRef",
            ),
        )
    }

    model: ModelSpec = Field(description="The model to serve.")
    engine: EngineSpec = Field(
        default_factory=EngineSpec,
        description="Engine settings.",
        json_schema_extra=EMPTY_OBJECT_DEFAULT,
    )
    replicas: NonNegativeInt32 = Field(
        default=1, description="Replicas when autoscaling is not set."
    )
    gpus_per_replica: NonNegativeInt32 | None = Field(
        default=None,
        description="GPUs of one replica (default: tensorParallelSize x pipelineParallelSize on "
        "GPU nodes).",
    )
    image: str = Field(default=DEFAULT_IMAGE, description="Engine image.", max_length=1024)
    resources: ResourceRequirements | None = Field(
        default=None, description="CPU and memory of each engine container (GPUs are added)."
    )
    env: EnvVars | None = Field(default=None, description="Extra environment of the engine.")
    node_selector: StringMap | None = Field(default=None, description="Node selector of replicas.")
    tolerations: Tolerations | None = Field(default=None, description="Tolerations of replicas.")
    affinity: Affinity | None = Field(default=None, description="Affinity of replicas.")
    model_cache: ModelCacheSpec | None = Field(
        default=None, description="Persistent download cache of the engine."
    )
    lora: LoraSpec | None = Field(default=None, description="LoRA adapters.")
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="Scale replicas from engine metrics."
    )
    router: RouterSpec = Field(
        default_factory=RouterSpec,
        description="The router in front.",
        json_schema_extra=EMPTY_OBJECT_DEFAULT,
    )
    distributed: Distributed = Field(
        default="auto",
        description="Multi-node execution: auto (a RayCluster when a replica needs more GPUs "
        "than a node has), ray (always) or none.",
    )
    ray_cluster_ref: LocalObjectReference | None = Field(
        default=None, description="Run on this existing RayCluster instead of creating one."
    )


class ObservedMetric(ApiModel):
    """The autoscaling metric as last read from the replicas."""

    name: ScalingMetric = Field(description="The metric.")
    value: float = Field(description="Its value, averaged over ready replicas.")
    time: Timestamp = Field(description="When it was read.")


class ScalingDecision(ApiModel):
    """The autoscaler's last decision."""

    time: Timestamp = Field(description="When it was made.")
    from_replicas: NonNegativeInt32 = Field(description="Replicas before.")
    to_replicas: NonNegativeInt32 = Field(description="Replicas after.")
    reason: str = Field(description="Why.", max_length=1024)


class ObservedDemand(ApiModel):
    """Requests seen at the router, the signal that scales up from zero replicas."""

    requests: float = Field(description="Requests routed to a replica since the last reading.")
    without_replica: float = Field(
        description="Attempts that found no replica since the last reading (the router retries "
        "a held request, so one request may count several times)."
    )
    last_request_time: Timestamp | None = Field(
        default=None, description="When a request was last seen at the router or an engine."
    )
    time: Timestamp = Field(description="When the router was read.")


class InferenceDeploymentStatus(ApiModel):
    """Observed state of the deployment."""

    replicas: NonNegativeInt32 | None = Field(default=None, description="Engine replicas.")
    ready_replicas: NonNegativeInt32 | None = Field(
        default=None, description="Replicas that serve the model (/health and /v1/models pass)."
    )
    endpoint: str | None = Field(default=None, description="OpenAI base URL of the router.")
    served_model: str | None = Field(default=None, description="Model name being served.")
    ray_cluster: str | None = Field(
        default=None, description="RayCluster used for multi-node replicas."
    )
    observed_metric: ObservedMetric | None = Field(
        default=None, description="Last autoscaling metric reading."
    )
    last_scaling_decision: ScalingDecision | None = Field(
        default=None, description="Last autoscaling decision."
    )
    observed_demand: ObservedDemand | None = Field(
        default=None, description="Last reading of the router's requests (with scaleToZero)."
    )
    conditions: Conditions | None = None
    observed_generation: Int64 | None = Field(
        default=None, description="The .metadata.generation this status describes."
    )


CRD = CrdInfo(
    ref=constants.INFERENCEDEPLOYMENT,
    spec=InferenceDeploymentSpec,
    status=InferenceDeploymentStatus,
    description="A model served by vLLM replicas behind vLLM's router, with an "
    "OpenAI-compatible endpoint.",
    short_names=("infdep", "idep"),
    printer_columns=(
        PrinterColumn("model", "string", ".status.servedModel"),
        PrinterColumn("ready", "integer", ".status.readyReplicas"),
        PrinterColumn("replicas", "integer", ".status.replicas", priority=1),
        PrinterColumn("endpoint", "string", ".status.endpoint"),
        PrinterColumn("age", "date", ".metadata.creationTimestamp"),
    ),
)
