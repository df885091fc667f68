"""Read-your-writes: jobs (and schedules) this ingest accepted but the projector has not folded yet.

A client that got a 202 may GET the job at once. Until the projection has it,
ingest answers from the accepted command, folded by the decider's own rules
(state PENDING, version 0) instead of a 404. Bounded; with several ingest
replicas the guarantee holds for the replica that accepted the job (see
docs/architecture.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from schemas import Job, SubmitJob, decide, evolve
from schemas.schedules import Schedule

FRESH_S = 5.0
"""A job accepted this recently, whose first event the log's tail has not
brought back yet, is answered as accepted without asking the read model:
the read model cannot be ahead of a tail that has heard nothing of it
unless that tail lags by seconds (a waiter reads the read model anyway
when the tail stays silent)."""


class AcceptedJobs:
    """The accepted commands, folded into a job only when one is read: most are
    projected before anybody asks, and deciding costs a third of a batch submit."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._commands: OrderedDict[str, tuple[SubmitJob, float]] = OrderedDict()

    def remember(self, command: SubmitJob) -> None:
        if self._capacity <= 0:
            return
        self._commands[command.job_id] = (command, time.monotonic())
        while len(self._commands) > self._capacity:
            self._commands.popitem(last=False)

    def get(self, job_id: str, tenant: str, within_s: float | None = None) -> Job | None:
        """The job as accepted (PENDING, version 0); with ``within_s``, only if accepted that recently."""
        found = self._commands.get(job_id)
        if found is None:
            return None
        command, accepted_at = found
        if command.tenant != tenant or (within_s is not None and time.monotonic() - accepted_at > within_s):
            return None
        submitted = decide(command, None)[0]
        return evolve(None, submitted).model_copy(update={"version": 0})


class AcceptedSchedules:
    """Read-your-writes for schedules, as for jobs: the accepted, not yet projected ones."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._schedules: OrderedDict[str, Schedule] = OrderedDict()

    def remember(self, schedule: Schedule) -> None:
        self._schedules[schedule.schedule_id] = schedule
        while len(self._schedules) > self._capacity:
            self._schedules.popitem(last=False)

    def get(self, schedule_id: str, tenant: str) -> Schedule | None:
        schedule = self._schedules.get(schedule_id)
        return schedule if schedule is not None and schedule.tenant == tenant else None

    def deleted_ids(self) -> set[str]:
        """Schedules this replica accepted a deletion of: gone from listings at once."""
        return {schedule_id for schedule_id, schedule in self._schedules.items() if schedule.deleted_at is not None}
