"""Turn a typed definition (pydantic model) into a structural CRD schema.

A CRD schema must be structural: every node has a type, no ``$ref``, no
``anyOf`` with ``null`` (an optional field is simply not required), no
``title``; OpenAPI v3.0 spellings (``exclusiveMinimum: true``). Embedded
Kubernetes types are replaced by their schema from the committed snapshot.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from arenastack_operator.schema import k8s
from arenastack_operator.schema.base import K8S_TYPE_KEY

LIST_MAP_KEY_DEFAULTS = "x-arenastack-list-map-key-defaults"
VALIDATIONS = "x-kubernetes-validations"
DROPPED_KEYS = frozenset({"title", "$defs", "discriminator"})


class SchemaError(ValueError):
    """A typed definition cannot be expressed as a structural schema."""


class _Inliner:
    def __init__(self, pydantic_defs: dict[str, Any]) -> None:
        self.pydantic_defs = pydantic_defs
        self.k8s_defs = k8s.definitions()
        self.stack: list[str] = []

    def _deref(self, ref: str) -> dict[str, Any]:
        if ref in self.stack:
            raise SchemaError(f"recursive type {ref}: structural schemas cannot express it")
        if ref.startswith("#/$defs/"):
            return self.pydantic_defs[ref.removeprefix("#/$defs/")]
        if ref.startswith(k8s.REF_PREFIX):
            return self.k8s_defs[ref.removeprefix(k8s.REF_PREFIX)]
        raise SchemaError(f"unknown reference {ref}")

    def _k8s_type(self, name: str) -> dict[str, Any]:
        if name == "Quantity":
            return k8s.quantity()
        if name.endswith("[]"):
            return {"type": "array", "items": {"$ref": k8s.REF_PREFIX + name[:-2]}}
        if name not in self.k8s_defs:
            raise SchemaError(f"{name} is not in the Kubernetes schema snapshot")
        return {"$ref": k8s.REF_PREFIX + name}

    def convert(self, node: dict[str, Any]) -> dict[str, Any]:
        node = dict(node)
        if K8S_TYPE_KEY in node:
            node = {**self._k8s_type(node.pop(K8S_TYPE_KEY)), **node}
        if "$ref" in node:
            ref = node.pop("$ref")
            target = self._deref(ref)
            self.stack.append(ref)
            try:
                inlined = self.convert(target)
            finally:
                self.stack.pop()
            return _merge(inlined, self.convert(node)) if node else inlined
        if "anyOf" in node and any(b.get("type") == "null" for b in node["anyOf"]):
            return self.convert(self._drop_null(node))
        if "allOf" in node and len(node["allOf"]) == 1:
            node = {**node.pop("allOf")[0], **node}
            return self.convert(node)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in DROPPED_KEYS or (key == "default" and value is None):
                continue
            if key == "properties":
                out[key] = {k: self.convert(v) for k, v in sorted(value.items())}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = self.convert(value)
            elif key == "additionalProperties":
                if value is True:
                    raise SchemaError("free-form objects are not allowed; use a typed field")
            elif key == "anyOf":
                out[key] = [self.convert(v) for v in value]
            elif key == "const":
                out["enum"] = [value]
            elif key == "exclusiveMinimum" and not isinstance(value, bool):
                out["minimum"], out["exclusiveMinimum"] = value, True
            elif key == "exclusiveMaximum" and not isinstance(value, bool):
                out["maximum"], out["exclusiveMaximum"] = value, True
            elif key == "required":
                out[key] = sorted(value)
            elif key == LIST_MAP_KEY_DEFAULTS:
                continue
            else:
                out[key] = copy.deepcopy(value)
        if LIST_MAP_KEY_DEFAULTS in node:
            for prop, default in node[LIST_MAP_KEY_DEFAULTS].items():
                out["items"]["properties"][prop]["default"] = default
        if "enum" in out and "type" not in out:
            out["type"] = _enum_type(out["enum"])
        if "properties" in out and "type" not in out:
            out["type"] = "object"
        return out

    @staticmethod
    def _drop_null(node: dict[str, Any]) -> dict[str, Any]:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(branches) == 1:
            return {**branches[0], **rest}
        return {**rest, "anyOf": branches}


def _merge(inlined: dict[str, Any], siblings: dict[str, Any]) -> dict[str, Any]:
    """A referenced type plus the field's own keys: the field's description and defaults
    win; CEL rules of both apply."""
    merged = {**inlined, **siblings}
    rules = [*inlined.get(VALIDATIONS, ()), *siblings.get(VALIDATIONS, ())]
    if rules:
        merged[VALIDATIONS] = rules
    return merged


def _enum_type(values: list[Any]) -> str:
    kinds = {type(v) for v in values}
    if kinds == {str}:
        return "string"
    if kinds == {int}:
        return "integer"
    raise SchemaError(f"enum values of mixed or unsupported types: {values}")


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of a typed definition, every reference inlined."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema = _Inliner(raw.get("$defs", {})).convert(raw)
    check_structural(schema)
    return schema


def check_structural(node: dict[str, Any], path: str = "") -> None:
    """Raise SchemaError where a node breaks the structural-schema rules."""
    where = path or "<root>"
    if "$ref" in node:
        raise SchemaError(f"{where}: $ref left after inlining")
    if "type" not in node and not (
        node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    ):
        raise SchemaError(f"{where}: no type")
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{where}: anyOf outside int-or-string")
    if "properties" in node and "additionalProperties" in node:
        raise SchemaError(f"{where}: both properties and additionalProperties")
    for name, child in node.get("properties", {}).items():
        check_structural(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        check_structural(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        check_structural(node["additionalProperties"], f"{path}{{*}}")
