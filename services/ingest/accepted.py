"""Read-your-writes: jobs this ingest accepted but the projector has not folded yet.

A client that got a 202 may GET the job at once. Until the projection has it,
ingest answers from the accepted command, folded by the decider's own rules
(state PENDING, version 0) instead of a 404. Bounded; with several ingest
replicas the guarantee holds for the replica that accepted the job (see
docs/architecture.md).
"""

from __future__ import annotations

from collections import OrderedDict

from schemas import Job, SubmitJob, decide, evolve


class AcceptedJobs:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def remember(self, command: SubmitJob) -> None:
        if self._capacity <= 0:
            return
        submitted = decide(command, None)[0]
        self._jobs[command.job_id] = evolve(None, submitted).model_copy(update={"version": 0})
        while len(self._jobs) > self._capacity:
            self._jobs.popitem(last=False)

    def get(self, job_id: str, tenant: str) -> Job | None:
        job = self._jobs.get(job_id)
        if job is None or job.tenant != tenant:
            return None
        return job
