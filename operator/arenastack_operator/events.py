"""Kubernetes events on the resources the operator manages, written the same way by every
reconciler: core/v1 Events naming the operator replica that saw the change."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from arenastack_operator import constants
from arenastack_operator.conditions import now_rfc3339
from arenastack_operator.constants import KindRef
from arenastack_operator.kubeclient import ApiError, KubeClient, core_path

logger = logging.getLogger(__name__)
MESSAGE_MAX = 1024


def event_body(
    kind: KindRef, meta: Mapping[str, Any], type_: str, reason: str, message: str, identity: str
) -> dict[str, Any]:
    now = now_rfc3339()
    return {
        "metadata": {
            "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": kind.api_version,
            "kind": kind.kind,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:MESSAGE_MAX],
        "source": {"component": constants.OPERATOR_NAME},
        "reportingComponent": constants.OPERATOR_NAME,
        "reportingInstance": identity,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


async def record(
    api: KubeClient,
    kind: KindRef,
    meta: Mapping[str, Any],
    type_: str,
    reason: str,
    message: str,
    identity: str,
) -> None:
    """Post one event; losing an event is not worth failing a reconcile for."""
    try:
        await api.create(
            core_path(meta["namespace"], "events"),
            event_body(kind, meta, type_, reason, message, identity),
        )
    except ApiError as err:
        logger.warning(
            "Event %s on %s/%s not recorded: %s", reason, meta["namespace"], meta["name"], err
        )
