"""Mount points made in the host's filesystem for containers, and their removal.

Containers share the host's root filesystem (each in its own mount namespace),
so a mountPath such as /var/run/secrets/kubernetes.io/serviceaccount must exist
on the host. The shim notes every path it creates; once no pod on the node
mounts a noted path any more, it is removed again, but only while it is still
an empty folder or an empty file (nothing else has put data there).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path


def created_by(pod_dir: Path) -> set[str]:
    """Paths the shims of one pod created (they write `<n>.status.created` files)."""
    out: set[str] = set()
    for f in pod_dir.glob("containers/*/*.created"):
        try:
            out.update(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return out


def with_parents(paths: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for p in paths:
        out.add(p)
        out.update(str(parent) for parent in Path(p).parents)
    return out


class Registry:
    """The node's noted mount points, kept in a file so an agent restart keeps them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    def _load(self) -> set[str]:
        try:
            return set(json.loads(self.path.read_text()))
        except (OSError, ValueError):
            return set()

    def sweep(self, new: Iterable[str], in_use: set[str]) -> None:
        with self.lock:
            noted = self._load() | set(new)
            # Deepest first, so a folder is empty by the time its parent is tried.
            for p in sorted(noted, key=lambda s: s.count("/"), reverse=True):
                if p in in_use:
                    continue
                noted.discard(p)
                path = Path(p)
                try:
                    if path.is_dir() and not path.is_symlink():
                        path.rmdir()
                    elif path.is_file() and path.stat().st_size == 0:
                        path.unlink()
                except OSError:
                    pass  # not empty any more: someone else's data now, leave it
            self.path.write_text(json.dumps(sorted(noted)))
