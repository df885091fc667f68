"""Read-your-writes: jobs this ingest accepted but the projector has not folded yet.

A client that got a 202 may GET the job at once. Until the projection has it,
ingest answers from the accepted command (state PENDING, version 0) instead of
a 404. Bounded; with several ingest replicas the guarantee holds for the
replica that accepted the job (see docs/api.md).
"""

from __future__ import annotations

from collections import OrderedDict

from schemas import JobStatus, SubmitJob
from services.ingest.models import JobLinks, JobView, job_path


class AcceptedJobs:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._commands: OrderedDict[str, SubmitJob] = OrderedDict()

    def remember(self, command: SubmitJob) -> None:
        if self._capacity <= 0:
            return
        self._commands[command.job_id] = command
        while len(self._commands) > self._capacity:
            self._commands.popitem(last=False)

    def get(self, job_id: str, tenant: str) -> JobView | None:
        command = self._commands.get(job_id)
        if command is None or command.tenant != tenant:
            return None
        return JobView(
            id=command.job_id,
            type=command.job_type,
            state=JobStatus.PENDING,
            payload=command.payload,
            attempt=0,
            created_at=command.issued_at,
            updated_at=command.issued_at,
            version=0,
            links=JobLinks(self=job_path(command.job_id)),
        )
