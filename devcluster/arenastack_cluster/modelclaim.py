"""Weights for engine pods from the host's model cache (vllmenv.models_root()).

Pods see only their volumes, so the cache is handed to them the way a user hands replicas
weights already on a volume: a PersistentVolume over the cache folder, bound to a
claim in the deployment's namespace (there is no provisioner here; a volume binds one claim,
so each namespace has its own volume).
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

from arenastack_cluster.cluster import LocalCluster
from arenastack_cluster.vllmenv import models_root
from arenastack_operator.inferencedeployment import names

CLAIM = "models"
# Marks the volume made for a namespace, so that it goes when the namespace does.
VOLUME_OF_LABEL = "arenastack.dev/models-of"


def _bind(cluster: LocalCluster, namespace: str) -> None:
    pv = {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{CLAIM}", "labels": {VOLUME_OF_LABEL: namespace}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
                 "storageClassName": "", "persistentVolumeReclaimPolicy": "Retain",
                 "hostPath": {"path": str(models_root()), "type": "Directory"}},
    }  # fmt: skip
    claim = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": namespace},
        "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "",
                 "volumeName": pv["metadata"]["name"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    }  # fmt: skip
    items = {"apiVersion": "v1", "kind": "List", "items": [pv, claim]}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(items))


def release(cluster: LocalCluster, namespace: str) -> None:
    """Deletes the volume made for `namespace` (retained, so a namespace's deletion keeps it)."""
    cluster.kubectl("delete", "pv", "-l", f"{VOLUME_OF_LABEL}={namespace}", "--wait=false",
                    check=False)  # fmt: skip


def _relative(path: Path) -> str:
    return str(path.resolve().relative_to(models_root().resolve()))


def model_source(cluster: LocalCluster, namespace: str, model: Path) -> dict[str, Any]:
    """spec.model's source for `model`, a folder of the model cache: a path on the claim
    over the cache (made on first use)."""
    _bind(cluster, namespace)
    return {"volume": {"claimName": CLAIM, "path": _relative(model)}}


def engine_path(path: Path) -> str:
    """Where an engine pod whose model came from model_source sees `path`, a file or folder of
    the model cache (a LoRA adapter's source, for instance)."""
    return posixpath.join(names.MODEL_MOUNT, _relative(path))
