"""Token authentication (authOptions.mode token, Ray >= 2.52): the Secret that holds a
cluster's token and how a token is read back (no I/O).

Ray checks the token on every GCS, raylet and dashboard request; pods get it from the Secret
as RAY_AUTH_TOKEN (pods.auth_env), and the RayJob controller reads it to call the Jobs API.
The token is never written to a status, an event or a log.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any, Final

from arenastack_operator.raycluster import names
from arenastack_operator.raycluster.model import Cluster

TOKEN_BYTES: Final = 32  # KubeRay's: 32 random bytes, base64


def new_token() -> str:
    return base64.b64encode(secrets.token_bytes(TOKEN_BYTES)).decode()


def build_secret(cluster: Cluster, token: str) -> dict[str, Any]:
    """`<cluster>`: the generated token, owned by the cluster so that it goes with it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": cluster.auth_secret_name,
            "namespace": cluster.namespace,
            "labels": {names.LABEL_CLUSTER: cluster.name},
            "ownerReferences": [cluster.owner_reference],
        },
        "stringData": {names.AUTH_TOKEN_KEY: token},
    }


def token_of(secret: Mapping[str, Any] | None) -> str | None:
    """The token a Secret holds, or None if it holds none."""
    value = ((secret or {}).get("data") or {}).get(names.AUTH_TOKEN_KEY)
    return base64.b64decode(value).decode() if value else None
