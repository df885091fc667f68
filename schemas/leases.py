"""Leases, and when each job the decider owns next needs it: run_at, backoff,
timeout, cancel grace, lease.

Leases are the one piece of job state outside the log (heartbeats emit no
events), so they are kept here, beside the pure decider rather than in the
job: a restored RUNNING job gets a fresh lease from the moment it was
restored, so a restart never fails a live attempt early. No I/O and no clock:
every method takes ``now``.
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta

from schemas.commands import ExpireAttempt, ExpiryReason, Heartbeat, ReportProgress
from schemas.errors import NotDue
from schemas.job import Job
from schemas.timers import next_deadline, running_units

RENEWS_LEASE = (Heartbeat, ReportProgress)
"""The commands that show a runner is alive: each renews its attempt's lease."""


class Deadlines:
    """A heap with lazy deletion. An entry is only a hint; when it pops, the
    job's deadlines are computed again from its current state, so stale
    entries cost a lookup and no more."""

    RECHECK_S = 5.0
    """After a timer command was sent, look again this much later (it may have been refused)."""

    def __init__(self, lease_s: float) -> None:
        self.lease = timedelta(seconds=lease_s)
        self._heap: list[tuple[datetime, str]] = []
        self._leases: dict[str, dict[str | None, datetime]] = {}
        """job id → step (``None``: a plain job) → when its running attempt's lease ends"""

    def track(self, job: Job, now: datetime) -> None:
        held = self._leases.pop(job.job_id, {})
        leases = {unit: held.get(unit, now + self.lease) for unit in running_units(job)}
        if leases:
            self._leases[job.job_id] = leases
        when = next_deadline(job, leases)
        if when is not None:
            heapq.heappush(self._heap, (when, job.job_id))

    def renew(self, job: Job, now: datetime, step: str | None = None) -> None:
        self._leases.setdefault(job.job_id, {})[step] = now + self.lease
        self.track(job, now)

    def lease_of(self, job_id: str, step: str | None = None) -> datetime | None:
        return self._leases.get(job_id, {}).get(step)

    def leases(self, job_id: str) -> dict[str | None, datetime]:
        return self._leases.get(job_id, {})

    def forget(self, job_id: str) -> None:
        self._leases.pop(job_id, None)

    def due(self, now: datetime) -> list[str]:
        job_ids = []
        while self._heap and self._heap[0][0] <= now:
            job_ids.append(heapq.heappop(self._heap)[1])
        return list(dict.fromkeys(job_ids))

    def recheck(self, job_id: str, now: datetime) -> None:
        heapq.heappush(self._heap, (now + timedelta(seconds=self.RECHECK_S), job_id))


def require_lease_ended(command, deadlines: Deadlines) -> None:
    """A ``lost`` expiry is judged again when it is decided: heartbeats ahead of
    it in the partition (a backlog delays both) may have renewed the lease since
    the timer sent it."""
    if isinstance(command, ExpireAttempt) and command.reason is ExpiryReason.LOST:
        lease = deadlines.lease_of(command.job_id, command.step)
        if lease is not None and lease > command.issued_at:
            raise NotDue(command.job_id, f"the lease of job {command.job_id} was renewed after the expiry was sent")
