"""Runners announce themselves on ``jobs.workers``: who runs, where, how busy.

Each runner appends a :class:`WorkerBeat` every ``interval_s`` and a
:class:`WorkerStopped` when it stops cleanly, keyed by its runner id. The topic
is compacted (the last record of each runner) and forgets a runner a day
after its last record. A reader folds it into the live workers: a runner
whose last beat is older than :data:`STALE_BEATS` intervals is gone (killed,
or cut off from the broker); its attempts' leases run out and they are retried.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.values import Moment

STALE_BEATS = 3
"""Beats a runner may miss before readers count it gone."""


class WorkerBeat(BaseModel):
    """A runner is alive: what it is and what it does now."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["jobledger.worker.beat"] = "jobledger.worker.beat"
    runner_id: str = Field(description="host:pid unless JOBLEDGER_RUNNER_ID names it; the lease holder in jobledger.job.started")
    host: str
    pid: int
    concurrency: int = Field(ge=1, description="attempts it runs at most at once")
    running: int = Field(ge=0, description="attempts it runs now")
    job_types: list[str] = Field(description="the job types it has handlers for")
    started_at: Moment
    beat_at: Moment
    interval_s: float = Field(gt=0, description="the next beat comes this much later")


class WorkerStopped(BaseModel):
    """A runner stopped cleanly; its running attempts were handed back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["jobledger.worker.stopped"] = "jobledger.worker.stopped"
    runner_id: str
    stopped_at: Moment


WorkerRecord = Annotated[Union[WorkerBeat, WorkerStopped], Field(discriminator="type")]
_WORKER_RECORD: TypeAdapter[WorkerBeat | WorkerStopped] = TypeAdapter(WorkerRecord)


def parse_worker_record(value: bytes) -> WorkerBeat | WorkerStopped:
    return _WORKER_RECORD.validate_json(value)


def evolve_workers(workers: dict[str, WorkerBeat], record: WorkerBeat | WorkerStopped) -> None:
    """Fold one record into ``workers`` (runner id → its last beat)."""
    if isinstance(record, WorkerBeat):
        workers[record.runner_id] = record
    else:
        workers.pop(record.runner_id, None)


def live_workers(workers: dict[str, WorkerBeat], now: datetime) -> list[WorkerBeat]:
    """The runners whose last beat is recent enough, by runner id."""
    return sorted(
        (beat for beat in workers.values() if (now - beat.beat_at).total_seconds() <= STALE_BEATS * beat.interval_s),
        key=lambda beat: beat.runner_id,
    )
