"""Schedules: which ticks are due, and the one job each tick submits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from schemas import JobAlreadyExists, decide, fold
from schemas.schedules import (
    CreateSchedule,
    DeleteSchedule,
    Schedule,
    ScheduleSpec,
    encode_schedule_command,
    evolve_schedule,
    parse_schedule_command,
    tick_command,
    ticks_due,
)

T0 = datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc)


def schedule(cron: str = "*/5 * * * *", zone: str = "UTC", **kw) -> Schedule:
    spec = ScheduleSpec(cron=cron, timezone=zone, job_type="noop")
    return Schedule(
        schedule_id="s-1", tenant="acme", spec=spec, created_at=kw.get("created_at", T0), last_tick=kw.get("last_tick")
    )


def test_ticks_after_creation_up_to_now_are_due_oldest_first():
    ticks = ticks_due(schedule(), T0 + timedelta(minutes=11))

    assert ticks == [datetime(2026, 1, 1, 12, 5, tzinfo=timezone.utc), datetime(2026, 1, 1, 12, 10, tzinfo=timezone.utc)]


def test_ticks_resume_after_the_last_submitted_one_so_none_is_missed_or_doubled():
    ticks = ticks_due(schedule(last_tick=datetime(2026, 1, 1, 12, 5, tzinfo=timezone.utc)), T0 + timedelta(minutes=16))

    assert [t.minute for t in ticks] == [10, 15]


def test_the_cron_is_read_in_the_schedules_time_zone_across_a_dst_change():
    created = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc)  # 01:30 in Berlin, before clocks go forward
    ticks = ticks_due(schedule("0 * * * *", "Europe/Berlin", created_at=created), created + timedelta(hours=2))

    assert ticks == [datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc), datetime(2026, 3, 29, 2, 0, tzinfo=timezone.utc)]


def test_a_tick_submits_one_job_whose_id_is_the_same_every_time():
    tick = datetime(2026, 1, 1, 12, 5, tzinfo=timezone.utc)
    first = tick_command(schedule(), tick, T0 + timedelta(minutes=5))
    again = tick_command(schedule(), tick, T0 + timedelta(minutes=9))

    assert first.job_id == again.job_id and first.command_id == again.command_id
    assert first.options.labels["schedule"] == "s-1"
    job = fold(decide(first, None))
    assert decide(again, job) == [], "the same tick again is a command already applied"
    with pytest.raises(JobAlreadyExists):
        decide(again.model_copy(update={"command_id": "other"}), job)


def test_a_deleted_schedule_has_no_ticks():
    created = evolve_schedule(
        None, CreateSchedule(command_id="c1", schedule_id="s-1", tenant="acme", issued_at=T0, spec=schedule().spec)
    )
    deleted = evolve_schedule(created, DeleteSchedule(command_id="c2", schedule_id="s-1", tenant="acme", issued_at=T0))

    assert ticks_due(deleted, T0 + timedelta(hours=1)) == []


def test_a_recorded_tick_moves_the_schedule_on_and_an_older_one_changes_nothing():
    from schemas.schedules import ticked

    tick = datetime(2026, 1, 1, 12, 10, tzinfo=timezone.utc)
    moved = evolve_schedule(schedule(), ticked(schedule(), tick, T0))

    assert moved.last_tick == tick
    assert evolve_schedule(moved, ticked(moved, tick - timedelta(minutes=5), T0)) == moved


def test_a_sixth_field_is_seconds():
    ticks = ticks_due(schedule("* * * * * */10"), T0 + timedelta(seconds=30))

    assert [t.second for t in ticks] == [40, 50, 0]


@pytest.mark.parametrize(("cron", "zone"), [("every minute", "UTC"), ("* * *", "UTC"), ("* * * * *", "Mars/Olympus")])
def test_bad_cron_or_zone_is_refused(cron, zone):
    with pytest.raises(ValidationError):
        ScheduleSpec(cron=cron, timezone=zone, job_type="noop")


def test_schedule_commands_round_trip():
    command = CreateSchedule(command_id="c1", schedule_id="s-1", tenant="acme", issued_at=T0, spec=schedule().spec)

    assert parse_schedule_command(encode_schedule_command(command)) == command


def _command(kind, at: datetime, command_id: str = "c"):
    return kind(command_id=command_id, schedule_id="s-1", tenant="acme", issued_at=at)


def test_a_paused_schedule_has_no_ticks_and_resumed_skips_what_fell_meanwhile():
    from schemas.schedules import PauseSchedule, ResumeSchedule

    paused = evolve_schedule(schedule(), _command(PauseSchedule, T0 + timedelta(minutes=1)))
    again = evolve_schedule(paused, _command(PauseSchedule, T0 + timedelta(minutes=2)))
    resumed = evolve_schedule(paused, _command(ResumeSchedule, T0 + timedelta(minutes=32)))

    assert ticks_due(paused, T0 + timedelta(hours=1)) == [] and again == paused
    due = ticks_due(resumed, T0 + timedelta(minutes=45))
    assert due == [T0.replace(second=0) + timedelta(minutes=m) for m in (35, 40, 45)], "from the resume on, none caught up"
    assert evolve_schedule(resumed, _command(ResumeSchedule, T0 + timedelta(hours=2))) == resumed


def test_a_trigger_submits_one_job_per_trigger_labelled_as_the_ticks_are():
    from schemas.schedules import trigger_command, trigger_job_id

    submit = trigger_command(schedule(), "t-1", T0)

    assert submit.job_id == trigger_job_id("s-1", "t-1") == trigger_command(schedule(), "t-1", T0).job_id
    assert submit.job_id != trigger_command(schedule(), "t-2", T0).job_id
    assert submit.options.labels == {"schedule": "s-1"} and submit.job_id != tick_command(schedule(), T0, T0).job_id
