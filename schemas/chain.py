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
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class BrokenLink:
    """Where a job's chain breaks, and how."""

    job_id: str
    seq: int | None
    reason: str


@dataclass
class ChainCheck:
    """Walks events (decoded CloudEvents JSON objects) in log order and checks,
    per job, that ``seq`` runs 1, 2, 3…, that each ``prevhash`` is the previous
    event's ``hash`` (``GENESIS`` first) and that each ``hash`` is right."""

    events: int = 0
    jobs: dict[str, tuple[int, str]] = field(default_factory=dict)
    broken: list[BrokenLink] = field(default_factory=list)

    def add(self, event: dict[str, Any]) -> BrokenLink | None:
        self.events += 1
        job_id, seq = str(event.get("subject")), event.get("seq")
        last_seq, last_hash = self.jobs.get(job_id, (0, GENESIS))
        if not isinstance(seq, int) or seq <= last_seq:
            return None if isinstance(seq, int) else self._break(job_id, None, "no seq")  # a redelivery is not a break
        if seq != last_seq + 1:
            return self._break(job_id, seq, f"seq {seq} follows seq {last_seq}: an event is missing")
        if event.get("prevhash") != last_hash:
            return self._break(job_id, seq, "prevhash is not the previous event's hash")
        if event.get("hash") != event_hash(event):
            return self._break(job_id, seq, "hash does not match the event's content")
        self.jobs[job_id] = (seq, event["hash"])
        return None

    def _break(self, job_id: str, seq: int | None, reason: str) -> BrokenLink:
        link = BrokenLink(job_id, seq, reason)
        self.broken.append(link)
        self.jobs[job_id] = (10**18, "")  # report each job's first break only
        return link
