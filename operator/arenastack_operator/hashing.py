"""One content hash for every object the operator compares with what it last applied."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def spec_hash(parts: Mapping[str, Any]) -> str:
    data = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:16]
