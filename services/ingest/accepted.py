"""Read-your-writes: jobs (and schedules) this ingest accepted but the projector has not folded yet.

A client that got a 202 may GET the job at once. Until the projection has it,
ingest answers from the accepted command, folded by the decider's own rules
(state PENDING, version 0) instead of a 404. Bounded; with several ingest
replicas the guarantee holds for the replica that accepted the job (see
docs/architecture.md).
"""

from __future__ import annotations

from collections import OrderedDict

from schemas import Job, SubmitJob, decide, evolve
from schemas.schedules import Schedule


class AcceptedJobs:
    """The accepted commands, folded into a job only when one is read: most are
    projected before anybody asks, and deciding costs a third of a batch submit."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._commands: OrderedDict[str, SubmitJob] = OrderedDict()

    def remember(self, command: SubmitJob) -> None:
        if self._capacity <= 0:
            return
        self._commands[command.job_id] = command
        while len(self._commands) > self._capacity:
            self._commands.popitem(last=False)

    def get(self, job_id: str, tenant: str) -> Job | None:
        command = self._commands.get(job_id)
        if command is None or command.tenant != tenant:
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
