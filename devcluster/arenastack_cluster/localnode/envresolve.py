"""Container environment resolution, following the kubelet's rules.

Order: the image's environment, then envFrom sources in order, then env entries
in order, each later definition replacing an earlier one. ``$(VAR)`` in a value
expands from what is defined before it; ``$$`` is a literal ``$``; references to
undefined variables stay as written. Command and args expand from the final
environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from arenastack_cluster.localnode import quantity

# (kind, namespace, name) -> data (secrets already base64-decoded) or None when missing.
Lookup = Callable[[str, str, str], dict[str, str] | None]

_FIELD_INDEX = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(ValueError):
    """The container cannot be configured (the kubelet's CreateContainerConfigError)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "$" or i + 1 == len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end == -1:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def field_value(pod: dict, path: str) -> str:
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs", [])),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs", [])),
    }
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    match = _FIELD_INDEX.match(path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(
    pod: dict, container_name: str, ref: dict, allocatable: Mapping[str, str]
) -> str:
    name = ref.get("containerName") or container_name
    containers = pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])
    container = next((c for c in containers if c["name"] == name), None)
    if container is None:
        raise ConfigError(f"resourceFieldRef names unknown container {name!r}")
    kind, _, res = ref["resource"].partition(".")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(res)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(res)
    if raw is None:
        # Unset limits read as the node's allocatable, as on a real node.
        raw = allocatable.get(res, "0") if kind == "limits" else "0"
    divisor = quantity.parse(ref.get("divisor") or "1")
    if divisor == 0:
        divisor = Fraction(1)
    return str(quantity.ceil_div(quantity.parse(raw), divisor))


def _key_ref(ref: dict, kind: str, namespace: str, lookup: Lookup) -> str | None:
    data = lookup(kind, namespace, ref["name"])
    if data is None or ref["key"] not in data:
        if ref.get("optional"):
            return None
        what = f"{kind} {namespace}/{ref['name']}"
        raise ConfigError(
            f"{what} not found" if data is None else f"key {ref['key']!r} not in {what}"
        )
    return data[ref["key"]]


@dataclass
class EnvContext:
    pod: dict
    lookup: Lookup
    allocatable: Mapping[str, str]
    # Variables every container gets first (service links, KUBERNETES_SERVICE_*).
    base: Mapping[str, str]


def container_env(ctx: EnvContext, container: dict, image_env: Mapping[str, str]) -> dict[str, str]:
    ns = ctx.pod["metadata"]["namespace"]
    env: dict[str, str] = {**image_env, **ctx.base}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            if key not in source:
                continue
            ref = source[key]
            data = ctx.lookup(kind, ns, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"{kind} {ns}/{ref['name']} not found")
            env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        src = var["valueFrom"]
        value: str | None
        if "fieldRef" in src:
            value = field_value(ctx.pod, src["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in src:
            value = resource_value(
                ctx.pod, container["name"], src["resourceFieldRef"], ctx.allocatable
            )
        elif "configMapKeyRef" in src:
            value = _key_ref(src["configMapKeyRef"], "configmap", ns, ctx.lookup)
        elif "secretKeyRef" in src:
            value = _key_ref(src["secretKeyRef"], "secret", ns, ctx.lookup)
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom {sorted(src)}")
        if value is not None:
            env[name] = value
    return env


def command_line(
    container: dict, env: Mapping[str, str], entrypoint: tuple[str, ...], cmd: tuple[str, ...]
) -> list[str]:
    """Docker's rule: command replaces ENTRYPOINT (and drops CMD); args replace CMD."""
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = list(command) + list(args or [])
    else:
        argv = list(entrypoint) + list(args if args is not None else cmd)
    if not argv:
        raise ConfigError(
            f"container {container['name']!r} has no command and its image no entrypoint"
        )
    return [expand(a, env) for a in argv]
