"""Standard status conditions (metav1.Condition shape) and their timestamps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any


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


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    ok: bool,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """`upsert_condition` for a condition that is either True or False."""
    status = "True" if ok else "False"
    return upsert_condition(
        conditions, type_=type_, status=status, reason=reason, message=message,
        generation=generation, now=now,
    )  # fmt: skip


def status_changed(previous: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `new` differs from `previous` in more than condition timestamps: a status at
    rest is never rewritten."""

    def comparable(status: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(status)
        out["conditions"] = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in status.get("conditions") or []
        ]
        return out

    return comparable(previous) != comparable(new)
