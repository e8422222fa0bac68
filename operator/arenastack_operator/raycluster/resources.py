"""Kubernetes quantities as Ray and KubeRay's status use them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from kubernetes.utils import parse_quantity

CPU: Final = "cpu"
MEMORY: Final = "memory"
TPU: Final = "google.com/tpu"
NEURON_CORE: Final = "aws.amazon.com/neuroncore"
# Devices Ray does not detect in a pod: their limits become these Ray resources.
ACCELERATOR_RAY_NAMES_OF: Final = {NEURON_CORE: "neuron_cores", TPU: "TPU"}
ACCELERATOR_RAY_NAMES: Final = frozenset(ACCELERATOR_RAY_NAMES_OF.values())
_BINARY_SUFFIXES: Final = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30),
                           ("Mi", 2**20), ("Ki", 2**10))  # fmt: skip


class QuantityError(ValueError):
    """A quantity that Kubernetes would not accept; the message names where it was."""


def parse(value: str | int | float, where: str) -> Decimal:
    try:
        return Decimal(parse_quantity(value))
    except (ValueError, InvalidOperation, TypeError):
        raise QuantityError(f"{where}: {value!r} is not a valid quantity") from None


def ceil_int(value: Decimal) -> int:
    """Kubernetes' Quantity.Value(): rounded up, as KubeRay derives --num-cpus from 500m -> 1."""
    return math.ceil(value)


def is_gpu(resource: str) -> bool:
    """KubeRay counts any resource whose name ends in `gpu` (nvidia.com/gpu, amd.com/gpu)."""
    return resource.endswith("gpu")


def gpu_limit(limits: Mapping[str, Any], where: str) -> Decimal | None:
    for name in sorted(limits):
        if is_gpu(name):
            value = parse(limits[name], f"{where}.{name}")
            if value:
                return value
    return None


def custom_accelerator(limits: Mapping[str, Any], where: str) -> tuple[str, Decimal] | None:
    """(Ray resource name, count) of the first accelerator limit, in KubeRay's order (the
    limits' names sorted), that is not zero."""
    for name in sorted(limits):
        if name in ACCELERATOR_RAY_NAMES_OF:
            value = parse(limits[name], f"{where}.{name}")
            if value:
                return ACCELERATOR_RAY_NAMES_OF[name], value
    return None


def effective(resources: Mapping[str, Any] | None, name: str, where: str) -> Decimal | None:
    """The limit of `name`, else its request (what Ray sizes itself by)."""
    resources = resources or {}
    for kind in ("limits", "requests"):
        value = (resources.get(kind) or {}).get(name)
        if value is not None:
            return parse(value, f"{where}.{kind}.{name}")
    return None


def requested(resources: Mapping[str, Any] | None, where: str) -> dict[str, Decimal]:
    """What a container asks the scheduler for: requests, with limits standing in for missing
    requests (the apiserver defaults requests to limits the same way)."""
    resources = resources or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: parse(value, f"{where}.{name}") for name, value in merged.items()}


def format_cpu(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return f"{math.ceil(value * 1000)}m"


def format_bytes(value: Decimal) -> str:
    whole = math.ceil(value)
    for suffix, size in _BINARY_SUFFIXES:
        if whole and whole % size == 0:
            return f"{whole // size}{suffix}"
    return str(whole)


def format_count(value: Decimal) -> str:
    return str(math.ceil(value))
