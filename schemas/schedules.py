"""Schedules: a cron expression, a time zone and a job template.

A schedule lives on ``jobs.schedules`` (keyed by schedule id) as the commands
that created and deleted it. The processor folds them into its schedule
table and, for each tick that has come, submits one job whose id derives from
the schedule id and the tick time. That id is the schedule's idempotency key:
a tick submitted twice (a restart between the submit and the record of it)
is refused by the job decider as a job that already exists, so no tick is
doubled; and because the last submitted tick is kept, none is missed — after
an outage the missed ticks are submitted, oldest first (at most
``MAX_CATCH_UP`` of them).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from functools import cache
from typing import Annotated, Any, Literal, Union, overload
from zoneinfo import ZoneInfo, available_timezones

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from schemas.commands import SubmitJob
from schemas.options import MAX_LABELS, JobOptions
from schemas.pipelines import PipelineStep
from schemas.values import Moment, storable

MAX_CATCH_UP = 1000
"""Most ticks submitted at once after the scheduler was away."""

MAX_YEARS_BETWEEN_TICKS = 10
"""A schedule must fire at least this often. Without a year field a cron
expression repeats within eight years (29 February skips 2100) if it fires at
all, so this refuses exactly the expressions that never fire ('0 0 31 2 *')."""

SCHEDULE_LABEL = "schedule"
"""Label every tick's job carries: the id of its schedule."""

_HORIZON_START = datetime(2000, 1, 1, tzinfo=timezone.utc)

_TICK_NAMESPACE = uuid.UUID("c4a1e2f3-5b6d-4c7e-8f9a-0b1c2d3e4f50")


class ScheduleSpec(BaseModel):
    """When to run (``cron`` in ``timezone``) and what (a job template)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cron: str = Field(
        description="cron expression, e.g. '*/5 * * * *'; an optional sixth field, last, is seconds ('* * * * * */10')"
    )
    timezone: str = Field("UTC", description="IANA time zone the cron expression is read in")
    job_type: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict)
    options: JobOptions = Field(default_factory=JobOptions)
    steps: tuple[PipelineStep, ...] | None = Field(
        None, description="job_type pipeline: the planned steps each tick's pipeline runs"
    )

    _storable_payload = field_validator("payload")(storable)

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str) -> str:
        if len(cron.split()) not in (5, 6) or not croniter.is_valid(cron):
            raise ValueError(f"{cron!r} is not a cron expression (five fields, or six with seconds last)")
        try:
            croniter(cron, _HORIZON_START, max_years_between_matches=MAX_YEARS_BETWEEN_TICKS).get_next(datetime)
        except (ValueError, OverflowError):  # CroniterBadDateError is a ValueError
            raise ValueError(f"{cron!r} never fires (no time matches it in {MAX_YEARS_BETWEEN_TICKS} years)") from None
        return cron

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        if name not in _zones():
            raise ValueError(f"{name[:100]!r} is not an IANA time zone, e.g. 'Europe/Berlin' or 'UTC'")
        return name

    @model_validator(mode="after")
    def _room_for_the_schedule_label(self) -> "ScheduleSpec":
        labels = self.options.labels
        if SCHEDULE_LABEL not in labels and len(labels) >= MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS - 1} labels: each tick's job also gets the label {SCHEDULE_LABEL!r}")
        return self


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


class ScheduleCommand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str
    schedule_id: str
    tenant: str
    issued_at: Moment


class CreateSchedule(ScheduleCommand):
    type: Literal["CreateSchedule"] = "CreateSchedule"
    spec: ScheduleSpec


class DeleteSchedule(ScheduleCommand):
    type: Literal["DeleteSchedule"] = "DeleteSchedule"


class PauseSchedule(ScheduleCommand):
    """No tick submits a job until the schedule is resumed."""

    type: Literal["PauseSchedule"] = "PauseSchedule"


class ResumeSchedule(ScheduleCommand):
    """Tick again from now on: ticks that fell while it was paused are skipped, not caught up."""

    type: Literal["ResumeSchedule"] = "ResumeSchedule"


class ScheduleTicked(ScheduleCommand):
    """The job of ``tick`` was submitted (acknowledged): the next one is after it."""

    type: Literal["ScheduleTicked"] = "ScheduleTicked"
    tick: Moment


AnyScheduleCommand = Annotated[
    Union[CreateSchedule, DeleteSchedule, ScheduleTicked, PauseSchedule, ResumeSchedule],
    Field(discriminator="type"),
]
_SCHEDULE_COMMAND = TypeAdapter(AnyScheduleCommand)


class Schedule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule_id: str
    tenant: str
    spec: ScheduleSpec
    created_at: Moment
    deleted_at: Moment | None = None
    last_tick: Moment | None = Field(None, description="the latest tick whose job was submitted")
    paused_at: Moment | None = Field(None, description="paused since then: no tick submits a job")
    resumed_at: Moment | None = Field(None, description="resumed then: ticks up to it are skipped")


@overload
def evolve_schedule(schedule: Schedule | None, command: CreateSchedule) -> Schedule: ...
@overload
def evolve_schedule(schedule: Schedule, command: ScheduleCommand) -> Schedule: ...
@overload
def evolve_schedule(schedule: Schedule | None, command: ScheduleCommand) -> Schedule | None: ...
def evolve_schedule(schedule: Schedule | None, command: ScheduleCommand) -> Schedule | None:
    """The schedule after ``command``. Idempotent: creating one that exists,
    deleting one twice or recording an older tick changes nothing."""
    if isinstance(command, CreateSchedule):
        if schedule is not None:
            return schedule
        return Schedule(schedule_id=command.schedule_id, tenant=command.tenant, spec=command.spec, created_at=command.issued_at)
    if schedule is None:
        return None
    if isinstance(command, ScheduleTicked):
        if schedule.last_tick is not None and command.tick <= schedule.last_tick:
            return schedule
        return schedule.model_copy(update={"last_tick": command.tick})
    if schedule.deleted_at is not None:
        return schedule
    if isinstance(command, PauseSchedule):
        return schedule if schedule.paused_at is not None else schedule.model_copy(update={"paused_at": command.issued_at})
    if isinstance(command, ResumeSchedule):
        if schedule.paused_at is None:
            return schedule
        return schedule.model_copy(update={"paused_at": None, "resumed_at": command.issued_at})
    return schedule.model_copy(update={"deleted_at": command.issued_at})


def next_tick(schedule: Schedule, after: datetime | None = None) -> datetime:
    start = after or max(filter(None, (schedule.last_tick, schedule.resumed_at)), default=schedule.created_at)
    zone = ZoneInfo(schedule.spec.timezone)
    return croniter(schedule.spec.cron, start.astimezone(zone)).get_next(datetime).astimezone(timezone.utc)


def ticks_due(schedule: Schedule, now: datetime) -> list[datetime]:
    """Ticks after the last submitted one (or the creation) up to ``now``, oldest first."""
    if schedule.deleted_at is not None or schedule.paused_at is not None:
        return []
    ticks: list[datetime] = []
    tick = next_tick(schedule)
    while tick <= now and len(ticks) < MAX_CATCH_UP:
        ticks.append(tick)
        tick = next_tick(schedule, tick)
    return ticks


def ticked(schedule: Schedule, tick: datetime, now: datetime) -> ScheduleTicked:
    return ScheduleTicked(
        command_id=str(uuid.uuid5(_TICK_NAMESPACE, f"{schedule.schedule_id}@{tick.isoformat()}/ticked")),
        schedule_id=schedule.schedule_id,
        tenant=schedule.tenant,
        issued_at=now,
        tick=tick,
    )


def tick_job_id(schedule_id: str, tick: datetime) -> str:
    return str(uuid.uuid5(_TICK_NAMESPACE, f"{schedule_id}@{tick.isoformat()}"))


def tick_command(schedule: Schedule, tick: datetime, now: datetime) -> SubmitJob:
    """The job of one tick. Same schedule and tick, same job id and command id."""
    spec = schedule.spec
    job_id = tick_job_id(schedule.schedule_id, tick)
    labels = {**spec.options.labels, SCHEDULE_LABEL: schedule.schedule_id}
    return SubmitJob(
        command_id=str(uuid.uuid5(_TICK_NAMESPACE, f"{job_id}/submit")),
        job_id=job_id,
        tenant=schedule.tenant,
        issued_at=now,
        correlation_id=schedule.schedule_id,
        job_type=spec.job_type,
        payload=spec.payload,
        options=spec.options.model_copy(update={"labels": labels}),
        idempotency_key=f"schedule:{schedule.schedule_id}@{tick.isoformat()}",
        steps=spec.steps,
    )


def trigger_command(schedule: Schedule, trigger_id: str, now: datetime) -> SubmitJob:
    """The job a trigger (a request to run the schedule's job now, ``trigger_id``) submits: a tick's job, its
    id derived from the trigger rather than a tick, so the same trigger sent twice submits once."""
    job_id = trigger_job_id(schedule.schedule_id, trigger_id)
    return tick_command(schedule, now, now).model_copy(
        update={
            "job_id": job_id,
            "command_id": str(uuid.uuid5(_TICK_NAMESPACE, f"{job_id}/submit")),
            "idempotency_key": f"schedule:{schedule.schedule_id}:trigger:{trigger_id}",
        }
    )


def trigger_job_id(schedule_id: str, trigger_id: str) -> str:
    return str(uuid.uuid5(_TICK_NAMESPACE, f"{schedule_id}/trigger/{trigger_id}"))


def parse_schedule_command(raw: bytes | str) -> CreateSchedule | DeleteSchedule | ScheduleTicked | PauseSchedule | ResumeSchedule:
    return _SCHEDULE_COMMAND.validate_json(raw)


def encode_schedule_command(command: ScheduleCommand) -> bytes:
    return command.model_dump_json().encode()
