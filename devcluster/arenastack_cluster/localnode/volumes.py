"""Pod volumes materialised as files under the pod's folder.

emptyDir is a folder (medium Memory too: no tmpfs, so sizeLimit is not
enforced); configMap, secret, downwardAPI and projected volumes are written
once at pod start, and service-account tokens are rewritten before they
expire. hostPath is the host's own path. Containers see every volume at its
mountPath through a bind mount in their own mount namespace (see shim.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from arenastack_cluster.localnode.envresolve import ConfigError, field_value, resource_value

# (kind, namespace, name) -> data as bytes, or None when the object is missing.
Fetch = Callable[[str, str, str], dict[str, bytes] | None]
# (namespace, serviceaccount, audience, expirationSeconds, pod) -> (token, expires_at)
TokenSource = Callable[[str, str, str | None, int, dict], tuple[str, float]]

DEFAULT_MODE = 0o644
TOKEN_REFRESH_FRACTION = 0.8


@dataclass
class TokenFile:
    path: Path
    audience: str | None
    expiration: int
    mode: int
    refresh_at: float = 0.0


@dataclass
class Volumes:
    paths: dict[str, Path] = field(default_factory=dict)
    tokens: list[TokenFile] = field(default_factory=list)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def _key_items(
    kind: str, ns: str, src: dict, fetch: Fetch, target: Path, default_mode: int
) -> None:
    data = fetch(kind, ns, src["name"])
    if data is None:
        if src.get("optional"):
            return
        raise ConfigError(f"{kind} {ns}/{src['name']} not found (volume source)")
    items = src.get("items")
    if not items:
        items = [{"key": k, "path": k} for k in data]
    for item in items:
        if item["key"] not in data:
            if src.get("optional"):
                continue
            raise ConfigError(f"key {item['key']!r} not in {kind} {ns}/{src['name']}")
        _write(target / item["path"], data[item["key"]], item.get("mode", default_mode))


def _downward_items(
    pod: dict, items: list[dict], target: Path, default_mode: int, allocatable: dict[str, str]
) -> None:
    for item in items:
        if "fieldRef" in item:
            value = field_value(pod, item["fieldRef"]["fieldPath"])
        else:
            first = pod["spec"]["containers"][0]["name"]
            value = resource_value(pod, first, item["resourceFieldRef"], allocatable)
        _write(target / item["path"], value.encode(), item.get("mode", default_mode))


def materialise(
    pod: dict, root: Path, fetch: Fetch, tokens: TokenSource, allocatable: dict[str, str]
) -> Volumes:
    ns = pod["metadata"]["namespace"]
    out = Volumes()
    for vol in pod["spec"].get("volumes") or []:
        name = vol["name"]
        if "hostPath" in vol:
            host = Path(vol["hostPath"]["path"])
            if vol["hostPath"].get("type") in ("DirectoryOrCreate",):
                host.mkdir(parents=True, exist_ok=True)
            out.paths[name] = host
            continue
        target = root / name
        target.mkdir(parents=True, exist_ok=True)
        out.paths[name] = target
        if "emptyDir" in vol:
            continue
        if "configMap" in vol:
            src = vol["configMap"]
            _key_items("configmap", ns, src, fetch, target, src.get("defaultMode", DEFAULT_MODE))
        elif "secret" in vol:
            src = {**vol["secret"], "name": vol["secret"]["secretName"]}
            _key_items("secret", ns, src, fetch, target, src.get("defaultMode", DEFAULT_MODE))
        elif "downwardAPI" in vol:
            src = vol["downwardAPI"]
            mode = src.get("defaultMode", DEFAULT_MODE)
            _downward_items(pod, src.get("items") or [], target, mode, allocatable)
        elif "projected" in vol:
            mode = vol["projected"].get("defaultMode", DEFAULT_MODE)
            for source in vol["projected"].get("sources") or []:
                if "configMap" in source:
                    _key_items("configmap", ns, source["configMap"], fetch, target, mode)
                elif "secret" in source:
                    _key_items("secret", ns, source["secret"], fetch, target, mode)
                elif "downwardAPI" in source:
                    items = source["downwardAPI"].get("items") or []
                    _downward_items(pod, items, target, mode, allocatable)
                elif "serviceAccountToken" in source:
                    sat = source["serviceAccountToken"]
                    out.tokens.append(
                        TokenFile(
                            target / sat["path"],
                            sat.get("audience"),
                            int(sat.get("expirationSeconds", 3607)),
                            mode,
                        )
                    )
        else:
            kinds = sorted(k for k in vol if k != "name")
            raise ConfigError(f"volume {name!r}: unsupported source {kinds} on the local node")
    refresh_tokens(pod, out, tokens, now=0.0)
    return out


def refresh_tokens(pod: dict, vols: Volumes, tokens: TokenSource, now: float) -> None:
    """Write each projected token whose refresh time has come (all of them at start)."""
    sa = pod["spec"].get("serviceAccountName") or "default"
    for tf in vols.tokens:
        if now < tf.refresh_at:
            continue
        token, expires_at = tokens(
            pod["metadata"]["namespace"], sa, tf.audience, tf.expiration, pod
        )
        _write(tf.path, token.encode(), tf.mode)

        left = max(expires_at - time.time(), 60)
        tf.refresh_at = time.monotonic() + left * TOKEN_REFRESH_FRACTION
