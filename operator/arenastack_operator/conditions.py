"""Standard status conditions (metav1.Condition shape) and observedGeneration bookkeeping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import kopf

from arenastack_operator import constants


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))


def upsert_condition(
    conditions: Sequence[Mapping[str, Any]],
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """Return `conditions` with the one of `type_` set; lastTransitionTime moves only when the
    status changes, as the Kubernetes API conventions require."""
    result: list[dict[str, Any]] = []
    found = False
    for existing in conditions:
        if existing.get("type") != type_:
            result.append(dict(existing))
            continue
        found = True
        transition = existing.get("lastTransitionTime") or now
        if existing.get("status") != status:
            transition = now
        result.append(_condition(type_, status, reason, message, generation, transition))
    if not found:
        result.append(_condition(type_, status, reason, message, generation, now))
    return result


def _condition(
    type_: str, status: str, reason: str, message: str, generation: int | None, transition: str
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def mark_observed(
    body: kopf.Body, patch: kopf.Patch, *, identity: str, reason: str, message: str
) -> None:
    """Record that this generation was seen: status.observedGeneration, a Progressing condition,
    and which operator replica did it (an annotation under kopf's storage prefix, so writing it
    does not count as a change of the object)."""
    generation = body.metadata.get("generation")
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = upsert_condition(
        body.status.get("conditions") or [],
        type_=constants.CONDITION_PROGRESSING,
        status="True",
        reason=reason,
        message=message,
        generation=generation,
        now=now_rfc3339(),
    )
    patch.metadata.annotations[constants.ANNOTATION_RECONCILED_BY] = identity


# Until a kind's real reconciler lands, its handler only records that it saw each generation.
SKELETON_REASON = "Observed"


async def observe_only(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """The skeleton reconciler shared by all kinds; `memo.identity` is this replica's identity."""
    generation = body.metadata.get("generation")
    mark_observed(
        body,
        patch,
        identity=memo.identity,
        reason=SKELETON_REASON,
        message=f"generation {generation} observed by {memo.identity}",
    )
