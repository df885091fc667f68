"""Audit tools: read the job log, verify its hash chains, export it.

They read ``jobs.events`` itself (or an exported copy), never the read models:
an auditor checks the log of record.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from schemas.chain import ChainCheck

CSV_COLUMNS = ["subject", "seq", "type", "time", "tenant", "id", "causationid", "correlationid", "prevhash", "hash", "data"]


def file_records(path: Path) -> Iterator[bytes]:
    """The lines of an exported JSONL copy of the log."""
    with path.open("rb") as file:
        for line in file:
            if line.strip():
                yield line.rstrip(b"\n")


def verify(chain: ChainCheck, raw: bytes, where: str) -> None:
    """Add one record to ``chain``. A record that is not a JSON object is no
    job's event (every consumer dead-letters it): counted as foreign, since it
    changes no job's history."""
    event = decoded(raw)
    if event is None:
        chain.events += 1
        chain.foreign += 1
        return
    chain.add(event)


def decoded(raw: bytes) -> dict[str, Any] | None:
    """The record as a JSON object, or ``None`` if it is not one."""
    try:
        event = json.loads(raw)
    except ValueError:  # UnicodeDecodeError is one
        return None
    return event if isinstance(event, dict) else None


def selected(event: dict[str, Any], job: str | None, since: datetime | None, until: datetime | None) -> bool:
    if job is not None and event.get("subject") != job:
        return False
    if since is not None or until is not None:
        try:
            at = datetime.fromisoformat(str(event.get("time")).replace("Z", "+00:00"))
        except ValueError:
            return False  # no time to select by
        if at.tzinfo is None:
            return False
        if since is not None and at < since:
            return False
        if until is not None and at > until:
            return False
    return True


class Exporter:
    """Writes events as JSONL (the record bytes, unchanged) or CSV (one column per attribute)."""

    def __init__(self, out: TextIO, fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self.count = 0
        if fmt == "csv":
            self.csv = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            self.csv.writeheader()

    def write(self, raw: bytes, event: dict[str, Any]) -> None:
        self.count += 1
        if self.fmt == "jsonl":
            self.out.write(raw.decode() + "\n")
        else:
            self.csv.writerow({**event, "data": json.dumps(event.get("data"), sort_keys=True, ensure_ascii=False)})
