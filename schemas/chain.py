"""The per-job hash chain that makes the log tamper-evident.

``hash = sha256(canonical(event without "hash"))`` where the canonical form is
the event's CloudEvents JSON object with sorted keys, no insignificant
whitespace and UTF-8 text. ``prevhash`` is part of what is hashed, so changing
any byte of any event breaks its own link and every link after it.

Verification works on the decoded JSON object, not on Python models, so any
auditor can recompute it in any language.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64
"""``prevhash`` of a job's first event."""


def canonical(event: dict[str, Any]) -> bytes:
    body = {key: value for key, value in event.items() if key != "hash"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def event_hash(event: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()
