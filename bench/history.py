"""Job histories written straight to the log or the read model, without running them."""

from __future__ import annotations

from datetime import datetime

from schemas import AnyEvent, CompleteJob, StartJob, SubmitJob, decide, fold


def noop_history(job_id: str, tenant: str, issued_at: datetime) -> list[AnyEvent]:
    """The four events of a no-op job that ran once (submitted, queued, started,
    succeeded), as the decider would have decided them: ids, seq and hash chain."""
    common = dict(job_id=job_id, tenant=tenant, issued_at=issued_at)
    job, events = None, []
    for command in (
        SubmitJob(command_id=f"{job_id}/s", job_type="noop", **common),
        StartJob(command_id=f"{job_id}/r", attempt=1, runner_id="history", **common),
        CompleteJob(command_id=f"{job_id}/c", attempt=1, runner_id="history", **common),
    ):
        decided = decide(command, job)
        events += decided
        job = fold(decided, job)
    return events
