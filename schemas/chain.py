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
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


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
    event's ``hash`` (``GENESIS`` first) and that each ``hash`` is right.

    A seq seen before is a redelivery only if it is the same event, byte for
    byte: its hash must be the one recorded for that seq and must match its
    content. Anything else repeating a seq is a forgery."""

    events: int = 0
    foreign: int = 0
    """Records that are not job events at all (not a JSON object): every consumer
    dead-letters them, so they change no job; counted, not a break."""
    jobs: dict[str, list[str]] = field(default_factory=dict)
    """job id → the hash of each of its events so far, seq 1 first"""
    broken: list[BrokenLink] = field(default_factory=list)
    _broken_jobs: set[str] = field(default_factory=set)

    def add(self, event: dict[str, Any]) -> BrokenLink | None:
        self.events += 1
        job_id, seq = str(event.get("subject")), event.get("seq")
        if job_id in self._broken_jobs:
            return None  # report each job's first break only
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            return self._break(job_id, None, "no seq")
        hashes = self.jobs.setdefault(job_id, [])
        if seq <= len(hashes):
            if event.get("hash") != hashes[seq - 1] or event_hash(event) != hashes[seq - 1]:
                return self._break(job_id, seq, f"seq {seq} appears twice with different content")
            return None  # a redelivery: the same event again
        if seq != len(hashes) + 1:
            return self._break(job_id, seq, f"seq {seq} follows seq {len(hashes)}: an event is missing")
        if event.get("prevhash") != (hashes[-1] if hashes else GENESIS):
            return self._break(job_id, seq, "prevhash is not the previous event's hash")
        if event.get("hash") != event_hash(event):
            return self._break(job_id, seq, "hash does not match the event's content")
        hashes.append(event["hash"])
        return None

    def _break(self, job_id: str, seq: int | None, reason: str) -> BrokenLink:
        link = BrokenLink(job_id, seq, reason)
        self.broken.append(link)
        self._broken_jobs.add(job_id)
        return link
