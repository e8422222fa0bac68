"""Structured logs: one JSON object per line for everything, kopf's own records included."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# kopf attaches these to its per-object records: `k8s_ref` is reported as `object`; `settings` is
# an internal object and `k8s_skip` an event-posting flag, neither is useful in a log line.
_KOPF_INTERNAL_ATTRS = ("k8s_skip", "k8s_ref", "settings")

# kopf runs in its own thread (see main.py), where it warns that it cannot install signal
# handlers. Signals are handled by our main thread, so the warning is noise.
_SUPPRESSED_MESSAGES = frozenset({"OS signals are ignored: running not in the main thread."})


class JsonLogFormatter(JsonFormatter):
    def __init__(self, static_fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, *_KOPF_INTERNAL_ATTRS],
            static_fields=dict(static_fields or {}),
            timestamp=True,
        )

    def add_fields(
        self,
        log_record: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        super().add_fields(log_record, record, message_dict)
        ref = getattr(record, "k8s_ref", None)
        if ref:
            log_record["object"] = {k: v for k, v in ref.items() if v is not None}


class _SuppressKnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in _SUPPRESSED_MESSAGES


def setup_logging(
    level: str = "INFO",
    *,
    stream: TextIO | None = None,
    static_fields: Mapping[str, Any] | None = None,
) -> logging.Handler:
    """Route every logger (kopf, aiohttp, kubernetes, ours) through one JSON handler on stderr."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLogFormatter(static_fields))
    handler.addFilter(_SuppressKnownNoise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    # asyncio's debug chatter and per-request access lines would drown the operator's records.
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # kopf reports every successful handler call (one per watch event of every pod the operator
    # follows) at INFO; keep those for DEBUG and let the handlers log what they actually did.
    kopf_objects = logging.getLogger("kopf.objects")
    kopf_objects.setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
    return handler
