"""LoRA adapters on running replicas, through vLLM's adapter-loading API (no restart).

The engine starts with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING; the operator then
loads the spec's adapters on every ready replica and unloads those the spec no longer lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from arenastack_operator.inferencedeployment import names
from arenastack_operator.inferencedeployment.spec import LoraAdapter

LOAD_PATH: Final = "/v1/load_lora_adapter"
UNLOAD_PATH: Final = "/v1/unload_lora_adapter"
TIMEOUT_S: Final = 30.0


@dataclass(frozen=True)
class Changes:
    load: list[LoraAdapter] = field(default_factory=list)
    unload: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.load or self.unload)


def served_adapters(models: Mapping[str, Any], base: str) -> set[str]:
    """Adapter names a replica's /v1/models lists on top of the base model."""
    return {
        str(m["id"])
        for m in models.get("data") or []
        if m.get("parent") == base and m.get("id") != base
    }


def diff(wanted: Sequence[LoraAdapter], served: set[str]) -> Changes:
    names_wanted = {a.name for a in wanted}
    return Changes(
        load=[a for a in wanted if a.name not in served],
        unload=sorted(served - names_wanted),
    )


async def sync_replica(
    session: aiohttp.ClientSession, base_url: str, base: str, wanted: Sequence[LoraAdapter]
) -> Changes:
    """Bring one replica's adapters in line with `wanted`; returns what it changed."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with session.get(base_url + names.MODELS_PATH, timeout=timeout) as response:
        response.raise_for_status()
        changes = diff(wanted, served_adapters(await response.json(), base))
    for adapter in changes.load:
        body = {"lora_name": adapter.name, "lora_path": adapter.source}
        async with session.post(base_url + LOAD_PATH, json=body, timeout=timeout) as response:
            if response.status >= 400:
                raise RuntimeError(f"loading {adapter.name}: {await response.text()}")
    for name in changes.unload:
        async with session.post(
            base_url + UNLOAD_PATH, json={"lora_name": name}, timeout=timeout
        ) as response:
            if response.status >= 400:
                raise RuntimeError(f"unloading {name}: {await response.text()}")
    return changes
