"""The security context of the pods the operator runs from the project's own images.

The restricted Pod Security Standard, applied in the manifest and again by the images (each
Dockerfile ends in `USER 65532:65532`): a fixed non-root user, no privilege escalation, no
capabilities, a read-only root file system and the runtime's default seccomp profile. The uid
is set explicitly so that a user's own image for the same role runs non-root too.

Engines run images the project does not make (vLLM's official image runs as root and writes
its caches under the root file system): they get what holds for any image, no privilege
escalation, no capabilities and the default seccomp profile, but keep the image's user.
"""

from __future__ import annotations

from typing import Any, Final

PRODUCT_UID: Final = 65532  # the non-root user of every arenastack image (images/*/Dockerfile)


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": PRODUCT_UID,
        "runAsGroup": PRODUCT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def engine_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
