"""Every object the operator would create for a RayCluster manifest, without a cluster.

    python -m arenastack_operator.raycluster.render ray-cluster.yaml [--namespace NS]

prints the head pod, one worker pod per group, the head Service and (with in-tree autoscaling)
the autoscaler's ServiceAccount, Role and RoleBinding, as YAML. The unit tests compare this
output for KubeRay's sample manifests with golden files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from arenastack_operator.raycluster import autoscaler
from arenastack_operator.raycluster.model import Cluster, validate
from arenastack_operator.raycluster.pods import build_head_pod, build_worker_pod
from arenastack_operator.raycluster.service import build_head_service

# Stand-ins for what the apiserver assigns, so the output is reproducible.
PLACEHOLDER_UID = "00000000-0000-4000-8000-000000000000"
PLACEHOLDER_NAMESPACE = "default"


def render(body: Mapping[str, Any], namespace: str = PLACEHOLDER_NAMESPACE) -> list[dict[str, Any]]:
    """The children of one RayCluster object (raises InvalidSpec for a spec KubeRay refuses)."""
    meta = dict(body.get("metadata") or {})
    meta.setdefault("namespace", namespace)
    meta.setdefault("uid", PLACEHOLDER_UID)
    cluster = Cluster.from_body({**body, "metadata": meta})
    validate(cluster)
    objects = [build_head_pod(cluster)]
    objects += [build_worker_pod(cluster, g) for g in cluster.worker_groups]
    objects.append(build_head_service(cluster))
    if cluster.autoscaling:
        objects += autoscaler.build_rbac(cluster)
    return objects


def rayclusters(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "RayCluster"]


def dump(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=True, default_flow_style=False, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--namespace", default=PLACEHOLDER_NAMESPACE)
    args = parser.parse_args(argv)
    for body in rayclusters(args.manifest.read_text()):
        sys.stdout.write(dump(render(body, args.namespace)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
