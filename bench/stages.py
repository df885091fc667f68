"""Where a job's latency goes: the hops between the records of one job.

Every command and event carries the time its producer appended it (the Kafka
record timestamp). For the jobs of the latency scenario the gap between two
consecutive records of the same job is one hop: the consumer noticing the
record, the service's work, and the produce of the next record. The client's
own clock brackets the two ends (the POST, and the job seen SUCCEEDED in the
read model). All clocks are this machine's.
"""

from __future__ import annotations

import statistics

from pydantic import ValidationError

from schemas import parse_command, parse_event, topics
from services.adapters.log import log_entries
from services.common.settings import ConnectionSettings

HOPS = (
    ("ingest: POST → SubmitJob appended", "posted", "SubmitJob"),
    ("decider: SubmitJob → JobQueued", "SubmitJob", "JobQueued"),
    ("runner: JobQueued → StartJob (claim)", "JobQueued", "StartJob"),
    ("decider: StartJob → JobStarted", "StartJob", "JobStarted"),
    ("runner: JobStarted → CompleteJob (run)", "JobStarted", "CompleteJob"),
    ("decider: CompleteJob → JobSucceeded", "CompleteJob", "JobSucceeded"),
    ("watcher: JobSucceeded appended → read", "JobSucceeded", "visible"),
)


async def record_times(settings: ConnectionSettings, job_ids: set[str]) -> dict[str, dict[str, float]]:
    """job id → record type → first append time (s since the epoch), for ``job_ids``."""
    times: dict[str, dict[str, float]] = {}
    for topic, parse in ((topics.COMMANDS, parse_command), (topics.EVENTS, parse_event)):
        async for entry in log_entries(settings, topic=topic):
            try:
                record = parse(entry.value)
            except (ValidationError, ValueError, TypeError):
                continue
            if record.job_id in job_ids:
                times.setdefault(record.job_id, {}).setdefault(type(record).__name__, entry.timestamp / 1000)
    return times


def breakdown(times: dict[str, dict[str, float]]) -> list[dict]:
    """Median and p95 of each hop over the jobs that have both ends of it, in ms."""
    rows = []
    for name, start, end in HOPS:
        gaps = sorted((marks[end] - marks[start]) * 1000 for marks in times.values() if start in marks and end in marks)
        if gaps:
            p95 = gaps[min(len(gaps) - 1, int(0.95 * len(gaps)))]
            rows.append({"hop": name, "p50_ms": statistics.median(gaps), "p95_ms": p95, "jobs": len(gaps)})
    return rows
