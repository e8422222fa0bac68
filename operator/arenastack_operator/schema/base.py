"""Building blocks shared by the typed API definitions of every custom resource.

A typed definition is a pydantic model whose JSON schema (by alias) is turned
into a CRD schema by ``arenastack_operator.crdgen``. The pieces here carry
what pydantic cannot say by itself: embedded Kubernetes types, CEL rules, list
and map semantics, int32 bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from arenastack_operator import constants

INT32_MAX = 2**31 - 1
# An object field whose own fields have defaults: the apiserver fills them in
# only when the object exists, so it defaults to {} (pydantic's default_factory
# does not appear in the JSON schema).
EMPTY_OBJECT_DEFAULT: dict[str, Any] = {"default": {}}
# Marker key that the CRD generator replaces by an embedded Kubernetes schema.
K8S_TYPE_KEY = "x-arenastack-k8s-type"

Int32 = Annotated[int, Field(ge=-(2**31), le=INT32_MAX, json_schema_extra={"format": "int32"})]
NonNegativeInt32 = Annotated[int, Field(ge=0, le=INT32_MAX, json_schema_extra={"format": "int32"})]
PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX, json_schema_extra={"format": "int32"})]
Int64 = Annotated[int, Field(json_schema_extra={"format": "int64"})]
StringMap = dict[str, str]
# RFC 3339 timestamps as Kubernetes writes them; kept as strings in Python.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Quantity = Annotated[str | int, WithJsonSchema({K8S_TYPE_KEY: "Quantity"})]


def k8s(type_name: str) -> Any:
    """Annotation for a field holding a Kubernetes type, kept as plain JSON data.

    The generator substitutes Kubernetes' own schema for ``type_name`` (a short
    name from the snapshot, e.g. ``PodTemplateSpec``).
    """
    return WithJsonSchema({K8S_TYPE_KEY: type_name})


PodTemplateSpec = Annotated[dict[str, Any], k8s("PodTemplateSpec")]
ResourceRequirements = Annotated[dict[str, Any], k8s("ResourceRequirements")]
SecurityContext = Annotated[dict[str, Any], k8s("SecurityContext")]
EnvVarSource = Annotated[dict[str, Any], k8s("EnvVarSource")]
EnvVars = Annotated[list[dict[str, Any]], k8s("EnvVar[]")]
EnvFromSources = Annotated[list[dict[str, Any]], k8s("EnvFromSource[]")]
VolumeMounts = Annotated[list[dict[str, Any]], k8s("VolumeMount[]")]
Tolerations = Annotated[list[dict[str, Any]], k8s("Toleration[]")]
Affinity = Annotated[dict[str, Any], k8s("Affinity")]
ServiceObject = Annotated[dict[str, Any], k8s("Service")]


def cel(
    rule: str, message: str, field_path: str | None = None, reason: str | None = None
) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def rules(*entries: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules, for a model config or a Field."""
    return {"x-kubernetes-validations": list(entries)}


def immutable(name: str) -> dict[str, Any]:
    return rules(cel("self == oldSelf", f"{name} is immutable"))


def list_map(*keys: str) -> dict[str, Any]:
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


class ApiModel(BaseModel):
    """Base of every typed definition: camelCase on the wire, snake_case in Python.

    Unknown fields are ignored rather than refused: the apiserver already
    prunes them, and an operator must keep working when a newer CRD adds one.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=False
    )

    def to_json(self) -> dict[str, Any]:
        """The object as it appears in the Kubernetes API (aliases, unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One aspect of the object's current state (metav1.Condition)."""

    type: str = Field(
        description="Type of the condition, in CamelCase (e.g. Ready).",
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    observed_generation: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="The .metadata.generation the condition was set from.",
        json_schema_extra={"format": "int64"},
    )
    last_transition_time: Timestamp = Field(
        description="When the condition last changed from one status to another."
    )
    reason: str = Field(
        description="Machine-readable CamelCase reason for the last transition.",
        max_length=1024,
        pattern=r"^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)?$",
    )
    message: str = Field(
        default="", description="Human-readable details of the transition.", max_length=32768
    )


Conditions = Annotated[
    list[Condition],
    Field(
        description="Latest observations of the object's state, one per type.",
        json_schema_extra=list_map("type"),
    ),
]


class LocalObjectReference(ApiModel):
    """A reference to an object by name in the same namespace."""

    name: str = Field(description="Name of the referenced object.", min_length=1, max_length=253)


class SecretKeyReference(ApiModel):
    """A key of a Secret in the same namespace."""

    name: str = Field(description="Name of the Secret.", min_length=1, max_length=253)
    key: str = Field(description="Key inside the Secret.", min_length=1, max_length=253)


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: Literal["integer", "number", "string", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class CrdInfo:
    """What the CRD generator needs besides the typed spec and status."""

    ref: constants.KindRef
    spec: type[ApiModel]
    status: type[ApiModel]
    description: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = (constants.CATEGORY,)
    printer_columns: tuple[PrinterColumn, ...] = ()
    # CEL rules on the whole object (they may read metadata.name).
    root_rules: tuple[dict[str, str], ...] = ()
    spec_required: bool = True

    @property
    def singular(self) -> str:
        return self.ref.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.ref.plural}.{self.ref.group}"
