"""Images map to local runtimes through one config file (hack/localnode-images.yaml).

The mapping chooses only the environment a container's command runs in (a
virtual environment's bin/ first on PATH, plus environment variables); the
command is the pod's own, or the image's entrypoint when the pod gives none.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from arenastack_cluster.layout import REPO_ROOT


class ImageNotMapped(LookupError):
    """The image has no entry in the images config file."""

    reason = "ImageNotMapped"


class RuntimeMissing(ImageNotMapped):
    """The image maps to a runtime whose virtual environment has not been made."""

    reason = "RuntimeMissing"


@dataclass(frozen=True)
class Runtime:
    name: str
    venv: Path | None
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    # The image's VOLUME folders (like /data of redis): each container gets an empty one of
    # its own there, as a container engine gives an anonymous volume.
    volumes: tuple[str, ...] = ()

    def environ(self) -> dict[str, str]:
        """The image's own environment (like ENV lines of a Dockerfile)."""
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        env = {"PATH": path, "HOME": "/root", "LANG": "C.UTF-8"}
        if self.venv is not None:
            env["PATH"] = f"{self.venv / 'bin'}:{path}"
            env["VIRTUAL_ENV"] = str(self.venv)
        env.update(self.env)
        return env


@dataclass(frozen=True)
class ImageMap:
    path: Path
    rules: tuple[tuple[tuple[str, ...], Runtime], ...]

    @classmethod
    def load(cls, path: Path) -> ImageMap:
        data = yaml.safe_load(path.read_text()) or {}
        runtimes: dict[str, Runtime] = {}
        for name, spec in (data.get("runtimes") or {}).items():
            venv = spec.get("venv")
            runtimes[name] = Runtime(
                name=name,
                venv=(REPO_ROOT / os.path.expanduser(venv)).resolve() if venv else None,
                env={k: str(v) for k, v in (spec.get("env") or {}).items()},
            )
        rules = []
        for i, rule in enumerate(data.get("images") or []):
            rt_name = rule.get("runtime")
            if rt_name not in runtimes:
                raise ValueError(f"{path}: images[{i}] names unknown runtime {rt_name!r}")
            rt = runtimes[rt_name]
            if "entrypoint" in rule or "cmd" in rule or "volumes" in rule:
                rt = Runtime(
                    rt.name,
                    rt.venv,
                    rt.env,
                    tuple(rule.get("entrypoint") or ()),
                    tuple(rule.get("cmd") or ()),
                    tuple(rule.get("volumes") or ()),
                )
            patterns = rule["match"]
            rules.append((tuple([patterns] if isinstance(patterns, str) else patterns), rt))
        return cls(path, tuple(rules))

    def resolve(self, image: str) -> Runtime:
        for patterns, runtime in self.rules:
            if any(fnmatch.fnmatchcase(image, p) for p in patterns):
                if runtime.venv is not None and not (runtime.venv / "bin").is_dir():
                    raise RuntimeMissing(
                        f"image {image!r} maps to runtime {runtime.name!r} in {self.path}, "
                        f"but its environment {runtime.venv} does not exist; create it with "
                        f"hack/localnode-runtimes.sh {runtime.name}"
                    )
                return runtime
        raise ImageNotMapped(
            f"image {image!r} has no mapping in {self.path}; add a pattern for it there"
        )
