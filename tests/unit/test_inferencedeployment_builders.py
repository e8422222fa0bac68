"""InferenceDeployment: spec parsing, topology, builders, status and autoscaling decisions."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from arenastack_operator import constants, security
from arenastack_operator.conditions import status_changed
from arenastack_operator.inferencedeployment import (
    engine,
    enginemetrics,
    names,
    topology,
    workloads,
)
from arenastack_operator.inferencedeployment import status as status_mod
from arenastack_operator.inferencedeployment.autoscaler import Autoscaler
from arenastack_operator.inferencedeployment.spec import (
    OWNED_ROUTER_PATTERN,
    InferenceDeploymentSpec,
    owned_flags,
)
from arenastack_operator.inferencedeployment.workloads import Owner

OWNER = Owner("qwen", "ns", "uid-1")


def make(**spec: Any) -> InferenceDeploymentSpec:
    spec.setdefault("model", {"huggingFace": {"repoId": "Qwen/Qwen2.5-0.5B-Instruct"}})
    return InferenceDeploymentSpec.model_validate(spec)


def argv(container: dict[str, Any]) -> list[str]:
    return [*container["command"], *container["args"]]


# -- engine command -----------------------------------------------------------------------------


def test_engine_command_is_vllms_openai_server_with_typed_flags() -> None:
    spec = make(
        model={
            "huggingFace": {"repoId": "Qwen/Qwen2.5-0.5B-Instruct", "revision": "v1"},
            "servedModelName": "qwen",
            "dtype": "bfloat16",
        },
        engine={
            "maxModelLen": 4096,
            "enablePrefixCaching": False,
            "extraArgs": ["--enforce-eager"],
        },
    )
    plan = topology.plan(spec, 8)
    container = workloads.engine_deployment(spec, OWNER, plan, 2)["spec"]["template"]["spec"][
        "containers"
    ][0]
    command = argv(container)
    assert command[:3] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    flags = " ".join(command[3:])
    assert "--model Qwen/Qwen2.5-0.5B-Instruct --revision v1 --served-model-name qwen" in flags
    assert "--port 8000" in flags and "--dtype bfloat16" in flags
    assert "--max-model-len 4096" in flags and "--no-enable-prefix-caching" in flags
    assert "--distributed-executor-backend uni" in flags
    assert command[-1] == "--enforce-eager"  # extra args last, unchanged


@pytest.mark.parametrize(
    ("router", "extra", "expected"),
    [
        ({}, [], 1),  # the default router policy is cacheAware
        ({"policy": "roundRobin"}, [], 0),
        ({"enabled": False}, [], 0),
        ({}, ["--enable-scale-out"], 1),  # given by the user: not repeated
    ],
)
def test_cache_aware_router_gets_replicas_that_render_prompts(router, extra, expected) -> None:
    """vllm-router's cache-aware policy routes by prefix only when replicas serve /render."""
    spec = make(router=router, engine={"extraArgs": extra})
    args = engine.engine_args(spec, engine.default_executor(spec))
    assert args.count("--enable-scale-out") == expected


def test_gpu_requests_follow_tensor_times_pipeline_parallel() -> None:
    spec = make(engine={"tensorParallelSize": 2, "pipelineParallelSize": 2})
    plan = topology.plan(spec, 8)
    assert (plan.layout, plan.gpus) == ("pod", 4)
    deployment = workloads.engine_deployment(spec, OWNER, plan, 1)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"][names.GPU_RESOURCE] == 4
    assert container["resources"]["requests"][names.GPU_RESOURCE] == 4
    assert "--distributed-executor-backend mp" in " ".join(container["args"])


def test_cpu_replica_requests_no_gpu() -> None:
    spec = make(gpusPerReplica=0, resources={"limits": {"cpu": "2"}})
    plan = topology.plan(spec, None)
    container = workloads.engine_deployment(spec, OWNER, plan, 1)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["resources"] == {"limits": {"cpu": "2"}}


@pytest.mark.parametrize(
    "args", [["--port=9000"], ["--max_model_len", "10"], ["-tp", "2"], ["--model"]]
)
def test_owned_flags_are_refused_naming_them(args: list[str]) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        make(engine={"extraArgs": args})
    assert args[0] in str(info.value)
    assert owned_flags(args) == [args[0]]


def test_unowned_flags_pass() -> None:
    assert owned_flags(["--enforce-eager", "--kv-cache-memory-bytes", "64M", "--model-impl"]) == []


def test_volume_model_is_mounted_read_only() -> None:
    spec = make(model={"volume": {"claimName": "weights", "path": "llama"}})
    pod = workloads.engine_pod_template(spec, OWNER, topology.plan(spec, 8))["spec"]
    container = pod["containers"][0]
    assert container["args"][:2] == ["--model", "/models/llama"]
    assert {
        "name": "model",
        "persistentVolumeClaim": {"claimName": "weights", "readOnly": True},
    } in pod["volumes"]
    assert engine.served_model_name(spec.model) == "llama"


def test_model_cache_claim_created_and_mounted() -> None:
    spec = make(modelCache={"size": "50Gi", "storageClassName": "fast"})
    claim = workloads.cache_claim(spec, OWNER)
    assert claim is not None
    assert claim["metadata"]["name"] == "qwen-model-cache"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    pod = workloads.engine_pod_template(spec, OWNER, topology.plan(spec, 8))["spec"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": names.CACHE_VOLUME, "mountPath": names.CACHE_MOUNT} in mounts
    assert workloads.cache_claim(make(modelCache={"claimName": "mine"}), OWNER) is None


def test_engine_change_changes_the_template_hash_but_lora_list_does_not() -> None:
    def template_hash(**spec: Any) -> str:
        s = make(**spec)
        template = workloads.engine_pod_template(s, OWNER, topology.plan(s, 8))
        return template["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH]

    base = template_hash(lora={"adapters": [{"name": "a", "source": "/a"}]})
    assert template_hash(lora={"adapters": [{"name": "b", "source": "/b"}]}) == base
    assert template_hash(lora={"adapters": []}, engine={"maxNumSeqs": 8}) != base


def test_rolling_update_replaces_one_replica_at_a_time() -> None:
    spec = make()
    deployment = workloads.engine_deployment(spec, OWNER, topology.plan(spec, 8), 3)
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models"


# -- topology and multi-node --------------------------------------------------------------------


def test_replica_larger_than_a_node_becomes_a_raycluster() -> None:
    spec = make(engine={"tensorParallelSize": 8, "pipelineParallelSize": 2})
    plan = topology.plan(spec, 8)
    assert (plan.layout, plan.nodes, plan.gpus_per_node, plan.workers) == ("ray", 2, 8, 1)
    cluster = workloads.ray_cluster(spec, OWNER, plan, 0)
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    assert cluster["metadata"]["name"] == "qwen-ray-0"
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    script = head["args"][0]
    assert script.startswith("ray start --head --port=6379")
    assert "--num-gpus=8" in script
    assert "exec python3 -m vllm.entrypoints.openai.api_server" in script
    assert "--distributed-executor-backend ray" in script
    assert "--tensor-parallel-size 8 --pipeline-parallel-size 2" in script
    assert head["resources"]["limits"][names.GPU_RESOURCE] == 8
    (group,) = cluster["spec"]["workerGroupSpecs"]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 1
    worker = group["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"][names.GPU_RESOURCE] == 8
    # The head keeps the engine's command; the workers get the generated `ray start`.
    head_meta = cluster["spec"]["headGroupSpec"]["template"]["metadata"]
    assert head_meta["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    assert "ray.io/overwrite-container-cmd" not in cluster["metadata"].get("annotations", {})
    assert "annotations" not in group["template"]["metadata"]
    labels = cluster["spec"]["headGroupSpec"]["template"]["metadata"]["labels"]
    assert labels[constants.LABEL_COMPONENT] == names.COMPONENT_ENGINE


def test_distributed_none_too_big_is_insufficient() -> None:
    plan = topology.plan(make(engine={"tensorParallelSize": 16}, distributed="none"), 8)
    assert plan.layout == "pod" and plan.insufficient and "16 GPUs" in plan.insufficient
    plan = topology.plan(make(), 0)
    assert plan.insufficient and "no eligible node" in plan.insufficient


def test_cpu_ray_uses_one_node_per_stage() -> None:
    plan = topology.plan(
        make(gpusPerReplica=0, distributed="ray", engine={"pipelineParallelSize": 2}), None
    )
    assert (plan.layout, plan.nodes, plan.gpus_per_node) == ("ray", 2, 0)


def test_referenced_raycluster_engine_joins_it() -> None:
    spec = make(rayClusterRef={"name": "shared"}, engine={"tensorParallelSize": 16})
    plan = topology.plan(spec, 8)
    assert plan.layout == "rayRef"
    container = workloads.engine_pod_template(spec, OWNER, plan)["spec"]["containers"][0]
    assert container["args"][0].startswith(
        "ray start --address=shared-head-svc.ns.svc.cluster.local:6379 --num-gpus=0 && exec "
    )
    assert names.GPU_RESOURCE not in str(container["resources"])


@pytest.mark.parametrize("ray_ref", [False, True])
def test_engines_drop_every_capability_but_keep_the_images_user(ray_ref: bool) -> None:
    spec = make(rayClusterRef={"name": "shared"}) if ray_ref else make()
    plan = topology.plan(spec, 8)
    container = workloads.engine_pod_template(spec, OWNER, plan)["spec"]["containers"][0]
    context = container["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["allowPrivilegeEscalation"] is False
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    # vLLM's official image runs as root and writes its caches in the image.
    assert "runAsUser" not in context and "readOnlyRootFilesystem" not in context


def test_largest_node_respects_node_selector() -> None:
    nodes = [
        {"metadata": {"labels": {"pool": "a"}}, "status": {"allocatable": {"nvidia.com/gpu": "4"}}},
        {"metadata": {"labels": {"pool": "b"}}, "status": {"allocatable": {"nvidia.com/gpu": "8"}}},
        {"metadata": {"labels": {"pool": "b"}}, "spec": {"unschedulable": True},
         "status": {"allocatable": {"nvidia.com/gpu": "16"}}},
    ]  # fmt: skip
    assert topology.largest_node_gpus(nodes, {}) == 8
    assert topology.largest_node_gpus(nodes, {"pool": "a"}) == 4
    assert topology.largest_node_gpus(nodes, {"pool": "c"}) == 0


# -- router -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "flag"),
    [("cacheAware", "cache_aware"), ("powerOfTwo", "power_of_two"),
     ("roundRobin", "round_robin"), ("consistentHash", "consistent_hash")],
)  # fmt: skip
def test_router_policy_mapping(policy: str, flag: str) -> None:
    deployment = workloads.router_deployment(make(router={"policy": policy}), OWNER)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert container["command"] == ["vllm-router"]
    assert args[args.index("--policy") + 1] == flag
    assert "--service-discovery" in args
    assert args[args.index("--service-discovery-namespace") + 1] == "ns"
    selector = args[args.index("--selector") + 1 :]
    assert f"{names.LABEL_DEPLOYMENT}=qwen" in selector


def test_static_router_lists_workers() -> None:
    spec = make(router={"discovery": "static"})
    args = workloads.router_args(spec, OWNER, ["http://10.0.0.1:8000", "http://10.0.0.2:8000"])
    assert args[args.index("--worker-urls") + 1 :] == [
        "http://10.0.0.1:8000",
        "http://10.0.0.2:8000",
    ]
    assert "--service-discovery" not in args


@pytest.mark.parametrize("discovery", ["labelSelector", "static"])
def test_router_extra_args_come_before_the_multi_valued_flags(discovery: str) -> None:
    extra = ["--balance-abs-threshold", "4", "--cache-threshold=0.5"]
    spec = make(router={"discovery": discovery, "extraArgs": extra})
    args = workloads.router_args(spec, OWNER, ["http://10.0.0.1:8000"])
    last = "--selector" if discovery == "labelSelector" else "--worker-urls"
    start = args.index(extra[0])
    assert args[start : start + len(extra)] == extra
    assert start + len(extra) <= args.index(last)
    assert not [a for a in args[args.index(last) + 1 :] if a in extra]


@pytest.mark.parametrize(
    "args", [["--policy=round_robin"], ["--worker_urls", "http://x"], ["--retry-max-retries", "9"]]
)
def test_owned_router_flags_are_refused_naming_them(args: list[str]) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        make(router={"extraArgs": args})
    assert f"owns: {args[0]} (use the typed fields of spec.router" in str(info.value)
    assert owned_flags(args, OWNED_ROUTER_PATTERN) == [args[0]]
    # An engine flag is the engine's business, not the router's, and the other way round.
    assert owned_flags(args) == []


def test_endpoint_is_the_routers_openai_base_url() -> None:
    assert workloads.endpoint(make(), OWNER) == "http://qwen-router.ns.svc.cluster.local:8000/v1"
    assert (
        workloads.endpoint(make(router={"enabled": False}), OWNER)
        == "http://qwen-engine.ns.svc.cluster.local:8000/v1"
    )


def test_router_pods_run_restricted_whatever_the_image() -> None:
    pod = workloads.router_deployment(make(router={"image": "someone/router:1"}), OWNER)
    pod_spec = pod["spec"]["template"]["spec"]
    assert pod_spec["securityContext"]["runAsUser"] == security.PRODUCT_UID
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    context = pod_spec["containers"][0]["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_router_rbac_lets_it_watch_pods_only() -> None:
    sa, role, binding = workloads.router_rbac(OWNER)
    assert sa["kind"] == "ServiceAccount"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    assert binding["subjects"][0]["name"] == sa["metadata"]["name"]


# -- status -------------------------------------------------------------------------------------


def pod(name: str, *, ready: bool = False, unschedulable: str | None = None,
        crashed: str | None = None) -> dict[str, Any]:  # fmt: skip
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": unschedulable})  # fmt: skip
    statuses = []
    if crashed:
        terminated = {"exitCode": 1, "message": crashed}
        statuses.append({"name": "vllm", "restartCount": 2,
                         "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                         "lastState": {"terminated": terminated}})  # fmt: skip
    return {"metadata": {"name": name}, "status": {"conditions": conditions,
                                                   "containerStatuses": statuses}}  # fmt: skip


def build(pods: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        previous={}, generation=3, desired_replicas=2, engine_pods=pods, router_ready=True,
        endpoint="http://x/v1", served_model="qwen", ray_cluster=None, problem=None,
        now="2026-11-28T00:00:00Z",
    )  # fmt: skip
    args.update(kwargs)
    return status_mod.build_status(**args)


def conditions_of(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_status_ready_when_replicas_serve() -> None:
    status = build([pod("a", ready=True), pod("b", ready=True)])
    assert (status["replicas"], status["readyReplicas"], status["observedGeneration"]) == (2, 2, 3)
    assert status["servedModel"] == "qwen" and status["endpoint"] == "http://x/v1"
    assert conditions_of(status) == {
        "Ready": ("True", "Serving"),
        "Progressing": ("False", "Stable"),
        "Degraded": ("False", "AsExpected"),
    }


def test_status_insufficient_gpu_from_the_schedulers_refusal() -> None:
    message = "0/8 nodes are available: 4 Insufficient nvidia.com/gpu."
    status = build([pod("a", unschedulable=message)])
    assert conditions_of(status)["Degraded"] == ("True", "InsufficientGPU")
    assert conditions_of(status)["Ready"] == ("False", "NoReadyReplica")


def test_status_model_load_failed() -> None:
    status = build([pod("a", crashed="OSError: no such model")])
    assert conditions_of(status)["Degraded"] == ("True", "ModelLoadFailed")
    degraded = status_mod.condition(status, "Degraded")
    assert degraded is not None and "no such model" in degraded["message"]


def test_status_unchanged_when_only_transition_time_would_move() -> None:
    first = build([pod("a", ready=True)])
    again = build([pod("a", ready=True)], previous=first, now="2026-11-28T01:00:00Z")
    assert not status_changed(first, again)
    assert status_changed(first, build([], previous=first))


# -- engine metrics and autoscaling -------------------------------------------------------------

METRICS = """\
# HELP vllm:num_requests_waiting Number of requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="m"}} {waiting}
# HELP vllm:num_requests_running Number of requests running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="m"}} {running}
# HELP vllm:kv_cache_usage_perc KV-cache usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="m"}} {kv}
# HELP vllm:time_to_first_token_seconds TTFT.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.1",model_name="m"}} {b1}
vllm:time_to_first_token_seconds_bucket{{engine="0",le="1.0",model_name="m"}} {b2}
vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="m"}} {b3}
vllm:time_to_first_token_seconds_count{{engine="0",model_name="m"}} {b3}
vllm:time_to_first_token_seconds_sum{{engine="0",model_name="m"}} 1.0
"""


def sample(waiting: float = 0, running: float = 0, kv: float = 0, buckets=(0, 0, 0)):
    b1, b2, b3 = buckets
    return enginemetrics.parse(
        METRICS.format(waiting=waiting, running=running, kv=kv, b1=b1, b2=b2, b3=b3)
    )


def test_parse_reads_gauges_and_histogram() -> None:
    s = sample(waiting=3, running=2, kv=0.25, buckets=(1, 4, 4))
    assert (s.waiting, s.running, s.kv_cache_usage) == (3, 2, 0.25)
    assert s.ttft.buckets == ((0.1, 1.0), (1.0, 4.0), (float("inf"), 4.0))
    # 3 of 4 observations lie in (0.1, 1]: the median is interpolated inside it.
    assert s.ttft.quantile(0.5) == pytest.approx(0.1 + 0.9 * (2 - 1) / 3)


def test_ttft_quantile_over_requests_since_last_reading() -> None:
    before = {"a": sample(buckets=(10, 10, 10))}
    now = {"a": sample(buckets=(10, 12, 12))}
    merged = enginemetrics.merged_ttft(now, before)
    assert merged.count == 2
    assert merged.quantile(0.9) > 0.1


def scaler(**spec: Any) -> Autoscaler:
    spec.setdefault("maxReplicas", 4)
    spec.setdefault("target", 2)
    return Autoscaler(make(autoscaling=spec).autoscaling)  # type: ignore[arg-type]


def test_burst_scales_up_at_once_and_down_after_the_window() -> None:
    s = scaler(scaleDownStabilizationSeconds=30)
    burst = {"a": sample(waiting=8, running=4)}
    up = s.decide(1, burst, now=0)
    assert up.replicas == 4 and up.value == 8  # ceil(1 x 8 / 2), capped at maxReplicas
    idle = {f"r{i}": sample() for i in range(4)}
    assert s.decide(4, idle, now=10).replicas == 4  # within the window the burst still counts
    assert s.decide(4, idle, now=29).replicas == 4
    down = s.decide(4, idle, now=41)
    assert down.replicas == 1
    assert "waitingRequests" in down.reason


def test_within_tolerance_nothing_changes() -> None:
    s = scaler(scaleDownStabilizationSeconds=0)
    assert s.decide(2, {"a": sample(waiting=2.1), "b": sample(waiting=2)}, now=0).replicas == 2


def test_kv_cache_and_ttft_metrics() -> None:
    kv = scaler(metric="kvCacheUsage", target=0.5, scaleDownStabilizationSeconds=0)
    assert kv.decide(2, {"a": sample(kv=1.0), "b": sample(kv=1.0)}, now=0).replicas == 4
    ttft = scaler(metric="timeToFirstToken", target=0.2, ttftPercentile=90)
    ttft.decide(1, {"a": sample(buckets=(0, 0, 0))}, now=0)
    slow = ttft.decide(1, {"a": sample(buckets=(0, 10, 10))}, now=1)
    assert slow.value > 0.2 and slow.replicas > 1


def test_scale_to_zero_only_when_idle_and_allowed() -> None:
    s = scaler(minReplicas=0, scaleToZero=True, scaleToZeroIdleSeconds=0)
    assert s.decide(1, {"a": sample(running=1)}, now=0).replicas == 1
    assert s.decide(1, {"a": sample()}, now=1).replicas == 0
    keep = scaler(minReplicas=1, scaleDownStabilizationSeconds=0)
    assert keep.decide(2, {"a": sample(), "b": sample()}, now=0).replicas == 1


# -- LoRA adapters ------------------------------------------------------------------------------


def test_lora_diff_loads_missing_and_unloads_dropped_adapters() -> None:
    from arenastack_operator.inferencedeployment import lora

    spec = make(lora={"adapters": [{"name": "sql", "source": "/a/sql"},
                                   {"name": "chat", "source": "/a/chat"}]})  # fmt: skip
    assert spec.lora is not None
    models = {"data": [{"id": "base", "parent": None}, {"id": "chat", "parent": "base"},
                       {"id": "old", "parent": "base"},
                       {"id": "other", "parent": "elsewhere"}]}  # fmt: skip
    served = lora.served_adapters(models, "base")
    assert served == {"chat", "old"}
    changes = lora.diff(spec.lora.adapters, served)
    assert [a.name for a in changes.load] == ["sql"] and changes.unload == ["old"]
    assert not lora.diff(spec.lora.adapters, {"sql", "chat"})


def test_lora_engine_flags_and_runtime_updates() -> None:
    spec = make(lora={"adapters": [], "maxLoras": 2, "maxLoraRank": 16})
    container = workloads.engine_pod_template(spec, OWNER, topology.plan(spec, 8))["spec"][
        "containers"
    ][0]
    args = " ".join(container["args"])
    assert "--enable-lora --max-loras 2 --max-lora-rank 16" in args
    assert {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"} in container["env"]
