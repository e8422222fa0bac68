"""The committed CRDs are a fresh generation from the typed definitions, they are
structural, and KubeRay's samples fit the generated RayCluster schema."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Annotated, Any, Literal

import jsonschema
import pytest
import yaml
from compat_data import (
    compat_rayclusters,
    expectation,
    invalid_cases,
    rayclusters_in,
    require_compat_manifests,
    require_sample,
)
from pydantic import Field

from arenastack_operator import crdgen
from arenastack_operator.raycluster.spec import RayClusterSpec
from arenastack_operator.schema import k8s
from arenastack_operator.schema.base import ApiModel, PodTemplateSpec, cel, rules
from arenastack_operator.schema.structural import SchemaError, check_structural, structural_schema

CRDS = {info.ref.kind: crdgen.build_crd(info) for info in crdgen.ALL_CRDS}


def root_schema(kind: str) -> dict[str, Any]:
    return CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{*}}")


def test_committed_crds_match_a_fresh_generation():
    stale = crdgen.stale_files(crdgen.generate())
    assert not stale, (
        f"{[str(p.relative_to(crdgen.REPO_ROOT)) for p in stale]} differ from the typed "
        f"definitions: run `{crdgen.GENERATOR}` (or `make crds`) and commit the result"
    )


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(crdgen, "CRD_DIR", tmp_path)
    monkeypatch.setattr(crdgen, "REPO_ROOT", tmp_path)
    assert crdgen.main(["--check"]) == 1
    assert crdgen.main([]) == 0
    assert crdgen.main(["--check"]) == 0
    victim = next(tmp_path.glob("rayclusters.*.yaml"))
    victim.write_text(victim.read_text().replace("minReplicas", "minreplicas", 1))
    assert crdgen.main(["--check"]) == 1


def test_generation_is_deterministic():
    assert crdgen.generate() == crdgen.generate()


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_schema_is_structural(kind: str):
    schema = root_schema(kind)
    check_structural(schema)
    text = json.dumps(schema)
    for forbidden in ('"$ref"', '"title"', '"$defs"', '"x-arenastack-'):
        assert forbidden not in text, f"{kind}: {forbidden} left in the schema"
    for path, node in walk(schema):
        # Only a template's creationTimestamp may be null (Go clients print it so).
        assert not node.get("nullable") or path.endswith("metadata.creationTimestamp"), path
        assert node.get("default", "") is not None, f"{kind}{path}: null default"
        for rule in node.get("x-kubernetes-validations", ()):
            assert rule.get("message"), f"{kind}{path}: CEL rule without a message"


def test_check_structural_rejects_non_structural_nodes():
    with pytest.raises(SchemaError, match="no type"):
        check_structural({"type": "object", "properties": {"x": {"description": "untyped"}}})
    with pytest.raises(SchemaError, match="anyOf"):
        check_structural({"anyOf": [{"type": "string"}, {"type": "null"}], "type": "string"})


# KubeRay's RayJob reports jobStatus and jobDeploymentStatus, no conditions; ours is the same.
KUBERAY_STATUS_WITHOUT_CONDITIONS = {"RayJob"}


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_crd_conventions(kind: str):
    crd = CRDS[kind]
    spec = crd["spec"]
    version = spec["versions"][0]
    assert spec["preserveUnknownFields"] is False
    assert version["subresources"] == {"status": {}}
    assert "arenastack" in spec["names"]["categories"]
    assert spec["names"]["shortNames"]
    assert any(
        c["jsonPath"] == ".metadata.creationTimestamp" for c in version["additionalPrinterColumns"]
    )
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert "observedGeneration" in status
    if kind in KUBERAY_STATUS_WITHOUT_CONDITIONS:
        assert "conditions" not in status
        return
    assert status["conditions"]["x-kubernetes-list-type"] == "map"


@pytest.mark.parametrize("info", crdgen.ALL_CRDS, ids=lambda i: i.ref.kind)
def test_every_field_of_our_types_is_documented(info):
    """So that `kubectl explain` teaches the API (embedded Kubernetes types excepted)."""
    for model in (info.spec, info.status):
        raw = model.model_json_schema(by_alias=True)
        for name, definition in [(model.__name__, raw), *raw.get("$defs", {}).items()]:
            assert definition.get("description"), f"{name} has no docstring"
            for field, prop in definition.get("properties", {}).items():
                described = [prop, *prop.get("anyOf", ())]
                assert any(p.get("description") for p in described), f"{name}.{field}: undocumented"


def test_crds_stay_far_below_the_etcd_object_limit():
    for kind, crd in CRDS.items():
        assert crdgen.stored_size(crd) < crdgen.MAX_STORED_BYTES, kind


def test_raycluster_keeps_kuberay_names_defaults_and_columns():
    schema = root_schema("RayCluster")
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["headGroupSpec"]
    assert {
        "rayVersion", "enableInTreeAutoscaling", "autoscalerOptions", "headServiceAnnotations",
        "headGroupSpec", "workerGroupSpecs", "gcsFaultToleranceOptions", "suspend", "managedBy",
        "upgradeStrategy", "authOptions",
    } <= set(spec["properties"])  # fmt: skip
    group = spec["properties"]["workerGroupSpecs"]["items"]
    assert group["required"] == ["groupName", "template"]
    defaults = {k: v.get("default") for k, v in group["properties"].items()}
    assert defaults["replicas"] == 0
    assert defaults["minReplicas"] == 0
    assert defaults["maxReplicas"] == 2**31 - 1
    assert defaults["numOfHosts"] == 1
    auto = spec["properties"]["autoscalerOptions"]["properties"]
    assert set(auto) >= {
        "version", "image", "imagePullPolicy", "resources", "env", "envFrom",
        "securityContext", "idleTimeoutSeconds", "upscalingMode", "volumeMounts",
    }  # fmt: skip
    assert auto["upscalingMode"]["enum"] == ["Default", "Aggressive", "Conservative"]
    status = schema["properties"]["status"]["properties"]
    assert {
        "state", "desiredCPU", "desiredMemory", "desiredGPU", "desiredTPU", "head", "endpoints",
        "readyWorkerReplicas", "availableWorkerReplicas", "desiredWorkerReplicas",
        "minWorkerReplicas", "maxWorkerReplicas", "lastUpdateTime", "observedGeneration",
    } <= set(status)  # fmt: skip
    columns = [
        c["name"] for c in CRDS["RayCluster"]["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    assert columns[:3] == ["desired workers", "available workers", "ready workers"]
    assert {"cpus", "gpus", "status", "age"} <= set(columns)
    assert CRDS["RayCluster"]["spec"]["names"]["categories"] == ["all", "arenastack"]


def test_pod_templates_use_the_kubernetes_schema():
    group = root_schema("RayCluster")["properties"]["spec"]["properties"]["workerGroupSpecs"]
    pod = group["items"]["properties"]["template"]["properties"]["spec"]
    containers = pod["properties"]["containers"]
    assert pod["required"] == ["containers"]
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    ports = containers["items"]["properties"]["ports"]
    assert ports["items"]["properties"]["protocol"]["default"] == "TCP"
    cpu = containers["items"]["properties"]["resources"]["properties"]["limits"]
    assert cpu["additionalProperties"]["x-kubernetes-int-or-string"] is True
    assert "description" not in json.dumps(pod), "descriptions inside pod templates are dropped"
    meta = group["items"]["properties"]["template"]["properties"]["metadata"]["properties"]
    assert {"labels", "annotations"} <= set(meta) and "managedFields" not in meta


def test_snapshot_matches_the_kubernetes_openapi_documents():
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed; the snapshot is checked where it is")
    modcache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True)
    module = Path(modcache.stdout.strip()) / f"k8s.io/kubernetes@{k8s.KUBERNETES_VERSION}"
    if not module.is_dir():
        pytest.skip(f"{module} is not downloaded (the Go module cache is optional for unit tests)")
    fresh = k8s.dump_snapshot(k8s.extract(module))
    assert fresh == k8s.SNAPSHOT.read_text(), (
        f"run `{crdgen.GENERATOR} extract-k8s` and commit {k8s.SNAPSHOT.name}"
    )


def validator(kind: str) -> jsonschema.Draft4Validator:
    # CRD schemas are OpenAPI v3.0 (boolean exclusiveMinimum): JSON Schema draft 4 semantics.
    return jsonschema.Draft4Validator(root_schema(kind))


COMPAT = compat_rayclusters()


@pytest.mark.parametrize(("path", "index"), COMPAT, ids=[f"{p.stem}-{i}" for p, i in COMPAT])
def test_kuberay_samples_fit_the_schema(path: Path, index: int):
    obj = rayclusters_in(require_sample(path))[index]
    errors = sorted(validator("RayCluster").iter_errors(obj), key=str)
    assert not errors, f"{path.name}: " + "; ".join(
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )
    # The typed definition reads them too, with KubeRay's defaults.
    spec = RayClusterSpec.model_validate(obj["spec"])
    for group in spec.worker_group_specs or ():
        assert group.num_of_hosts == 1 and group.min_replicas <= group.max_replicas


def test_every_compat_file_holds_a_raycluster():
    assert all(rayclusters_in(p) for p in require_compat_manifests())


SCHEMA_LEVEL = ("Required value", "should be", "Unsupported value", "Too long", "should match")


@pytest.mark.parametrize("path", invalid_cases(), ids=lambda p: p.stem)
def test_schema_level_invalid_rayclusters_fail_the_jsonschema_precheck(path: Path):
    """The corpus's schema (non-CEL) cases are caught by the plain schema too; the
    apiserver test (tests/integration/test_crd_schema.py) covers every case."""
    _, message = expectation(path)
    obj = yaml.safe_load(path.read_text())
    errors = list(validator("RayCluster").iter_errors(obj))
    if any(fragment in message for fragment in SCHEMA_LEVEL):
        assert errors, f"{path.name}: accepted by the schema"


def test_invalid_corpus_is_large_enough():
    assert len(invalid_cases()) >= 20


class _Inner(ApiModel):
    """Inner."""

    model_config = {"json_schema_extra": rules(cel("self.a > 0", "a must be positive"))}

    a: int = Field(description="A.")


class _Outer(ApiModel):
    """Outer."""

    inner: Annotated[_Inner, Field(json_schema_extra=rules(cel("self == oldSelf", "frozen")))] = (
        Field(description="Field description wins.")
    )
    optional_fraction: float | None = Field(default=None, gt=0, le=1, description="F.")
    fixed: Literal["only"] = Field(default="only", description="C.")
    template: PodTemplateSpec | None = Field(default=None, description="T.")


def test_structural_conversion_of_a_typed_definition():
    schema = structural_schema(_Outer)
    inner = schema["properties"]["inner"]
    assert inner["description"] == "Field description wins."
    assert [r["message"] for r in inner["x-kubernetes-validations"]] == [
        "a must be positive",
        "frozen",
    ]
    fraction = schema["properties"]["optionalFraction"]
    assert fraction == {
        "minimum": 0, "exclusiveMinimum": True, "maximum": 1, "description": "F.", "type": "number"
    }  # fmt: skip
    assert schema["properties"]["fixed"]["enum"] == ["only"]
    assert schema["properties"]["fixed"]["type"] == "string"
    assert schema["properties"]["template"]["properties"]["spec"]["required"] == ["containers"]
    assert schema["required"] == ["inner"]


def test_typed_definitions_use_camel_case_on_the_wire():
    spec = RayClusterSpec.model_validate(
        {"headGroupSpec": {"template": {}}, "enableInTreeAutoscaling": True}
    )
    assert spec.enable_in_tree_autoscaling is True
    assert spec.to_json() == {"headGroupSpec": {"template": {}}, "enableInTreeAutoscaling": True}
