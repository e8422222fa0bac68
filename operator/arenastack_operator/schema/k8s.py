"""Kubernetes' own object schemas, for the types that arenastack's CRDs embed.

The schemas come from the OpenAPI v3 documents that Kubernetes publishes in its
source tree (`api/openapi-spec/v3/` of the Go module `k8s.io/kubernetes`). The
``extract`` function converts the closure of a few root types into CRD-structural
form and the result is committed as a snapshot, so that CRD generation is
deterministic and needs neither Go nor a running apiserver.

Converting to structural form means:
- ``allOf: [{$ref}]`` wrappers become plain ``$ref`` (refs stay in the snapshot;
  the CRD generator inlines them);
- Quantity and IntOrString become ``x-kubernetes-int-or-string`` (Quantity
  with the Kubernetes quantity pattern, as ``kubectl`` would reject otherwise
  only at pod creation);
- descriptions are dropped (the embedded pod template alone would otherwise
  push a CRD with two templates towards etcd's object size limit), as are
  defaults, except the defaults of list-map keys that are not required,
  which a structural schema needs;
- extensions that a CRD schema does not accept (patch strategy, unions, GVK)
  are dropped; list-type and map-type markers are kept;
- an embedded ``ObjectMeta`` is reduced to the fields that the apiserver keeps
  for embedded metadata (name, namespace, labels, annotations, finalizers...).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

KUBERNETES_VERSION = "v1.34.4"
SNAPSHOT = Path(__file__).with_name(f"k8s-{KUBERNETES_VERSION}.json")

# The OpenAPI documents, relative to the module's root, and the root types
# that arenastack embeds (short names are the last dotted component).
OPENAPI_DOCUMENTS = (
    "api/openapi-spec/v3/api__v1_openapi.json",
    "api/openapi-spec/v3/apis__networking.k8s.io__v1_openapi.json",
)
ROOT_TYPES = (
    "io.k8s.api.core.v1.PodTemplateSpec",
    "io.k8s.api.core.v1.Service",
    "io.k8s.api.core.v1.ResourceRequirements",
    "io.k8s.api.core.v1.EnvVar",
    "io.k8s.api.core.v1.EnvVarSource",
    "io.k8s.api.core.v1.EnvFromSource",
    "io.k8s.api.core.v1.VolumeMount",
    "io.k8s.api.core.v1.SecurityContext",
    "io.k8s.api.core.v1.Toleration",
    "io.k8s.api.core.v1.Affinity",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.networking.v1.NetworkPolicyIngressRule",
    "io.k8s.api.networking.v1.NetworkPolicyEgressRule",
    "io.k8s.api.networking.v1.IngressTLS",
)

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
# What the apiserver keeps of metadata that is embedded in another object.
EMBEDDED_META_FIELDS = ("annotations", "finalizers", "generateName", "labels", "name", "namespace")
# The serialization grammar of resource.Quantity (k8s.io/apimachinery).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
KEPT_FORMATS = frozenset({"int32", "int64", "double", "float", "byte", "date-time"})
KEPT_EXTENSIONS = frozenset(
    {"x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type"}
)
VALUE_KEYS = frozenset(
    {"type", "items", "properties", "additionalProperties", "required", "format", "enum"}
)
REF_PREFIX = "#/definitions/"


def short_name(full: str) -> str:
    return full.rsplit(".", 1)[-1]


def int_or_string(pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
    }
    if pattern:
        schema["pattern"] = pattern
    return schema


def quantity() -> dict[str, Any]:
    return int_or_string(QUANTITY_PATTERN)


def _ref_target(node: dict[str, Any]) -> str | None:
    if "$ref" in node:
        return node["$ref"].rsplit("/", 1)[-1]
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0]:
        return all_of[0]["$ref"].rsplit("/", 1)[-1]
    return None


class _Converter:
    def __init__(self, schemas: dict[str, dict[str, Any]]) -> None:
        self.schemas = schemas
        self.out: dict[str, dict[str, Any]] = {}

    def add(self, full: str) -> str:
        name = short_name(full)
        if name in self.out:
            return name
        if full not in self.schemas:
            raise KeyError(f"{full} is not in the OpenAPI documents")
        self.out[name] = {}  # placeholder first: the type graph has cycles
        if full == OBJECT_META:
            self.out[name] = self._embedded_meta()
        else:
            self.out[name] = self._node(self.schemas[full])
        return name

    def _embedded_meta(self) -> dict[str, Any]:
        meta = self.schemas[OBJECT_META]
        props = {k: self._node(meta["properties"][k]) for k in EMBEDDED_META_FIELDS}
        # Manifests printed by Go clients carry `creationTimestamp: null` in templates;
        # strict field validation would refuse them if the field were undeclared.
        props["creationTimestamp"] = {"type": "string", "format": "date-time", "nullable": True}
        return {"type": "object", "properties": dict(sorted(props.items()))}

    def _node(self, node: dict[str, Any]) -> dict[str, Any]:
        target = _ref_target(node)
        if target is not None:
            if target == QUANTITY:
                return quantity()
            if target == INT_OR_STRING:
                return int_or_string()
            return {"$ref": REF_PREFIX + self.add(target)}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {k: self._node(v) for k, v in sorted(value.items())}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = self._node(value)
            elif key == "required":
                out[key] = sorted(value)
            elif key == "format":
                if value in KEPT_FORMATS:
                    out[key] = value
            elif key in VALUE_KEYS or key in KEPT_EXTENSIONS:
                out[key] = copy.deepcopy(value)
        self._keep_list_map_key_defaults(node, out)
        return out

    def _keep_list_map_key_defaults(self, node: dict[str, Any], out: dict[str, Any]) -> None:
        keys = node.get("x-kubernetes-list-map-keys")
        if not keys:
            return
        item_ref = _ref_target(node["items"])
        item = self.schemas[item_ref] if item_ref else node["items"]
        required = set(item.get("required", ()))
        defaults = {
            k: item["properties"][k]["default"]
            for k in keys
            if k not in required and "default" in item["properties"].get(k, {})
        }
        if defaults:
            # Recorded on the list; the generator puts each on the key property
            # of the inlined item, since the item type is shared elsewhere.
            out["x-arenastack-list-map-key-defaults"] = defaults


def extract(module_dir: Path) -> dict[str, Any]:
    """Return the structural snapshot for ROOT_TYPES from a k8s.io/kubernetes module tree."""
    schemas: dict[str, dict[str, Any]] = {}
    for rel in OPENAPI_DOCUMENTS:
        doc = json.loads((module_dir / rel).read_text())
        schemas.update(doc["components"]["schemas"])
    converter = _Converter(schemas)
    roots = [converter.add(full) for full in ROOT_TYPES]
    return {
        "source": f"k8s.io/kubernetes@{KUBERNETES_VERSION}: " + ", ".join(OPENAPI_DOCUMENTS),
        "roots": roots,
        "definitions": dict(sorted(converter.out.items())),
    }


def dump_snapshot(snapshot: dict[str, Any]) -> str:
    return json.dumps(snapshot, indent=1, sort_keys=True) + "\n"


@cache
def _definitions() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text())["definitions"]


def definitions() -> dict[str, Any]:
    """The committed snapshot's definitions (a copy the caller may change)."""
    return copy.deepcopy(_definitions())
