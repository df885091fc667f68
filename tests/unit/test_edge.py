"""Whatever a producer sends, the edge refuses it with a 422 naming the field, or
accepts something every later stage can carry.

"Every later stage" is the path a poison record used to break: the command's
JSON on the log, the decider (including its deadline arithmetic), the event
JSON and hash chain, the BSON of the read models, the API's view, and for
schedules the cron ticks. The bodies are decoded JSON with extreme values in
every field: huge and 64-bit-edge integers, NaN and infinities, lone
surrogates, NUL, times whose offset pushes them past year 9999, zone folders,
cron expressions that never fire.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import bson
import orjson
import pytest
from bson.codec_options import CodecOptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas import (
    CancelJob,
    CompleteJob,
    FailJob,
    GrantSlot,
    JobStatus,
    StartJob,
    SubmitJob,
    decide,
    encode_command,
    fold,
    parse_command,
    parse_event,
)
from schemas.api import CancelRequest, JobView, ScheduleRequest, ScheduleView
from schemas.schedules import (
    CreateSchedule,
    encode_schedule_command,
    evolve_schedule,
    parse_schedule_command,
    tick_command,
    ticks_due,
)
from schemas.timers import due_commands
from schemas.values import INT64_MAX, LATEST, Moment, document_problems, json_problems, label_key_problem, later, storable
from services.adapters.readmodel import event_document, job_document, job_from_document, schedule_document
from services.common.modules import load_job_types
from services.ingest.problems import Problem
from services.ingest.routes.queries import _until
from services.ingest.routes.schedules import schedule_spec
from services.ingest.submissions import parse_request, submit_command

JOB_TYPES = load_job_types(["schemas.builtin"])
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
BSON = CodecOptions(tz_aware=True)
EDGE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- values at the edges of what JSON, Python, BSON and the decider hold -----------------

weird_text = st.sampled_from(["\ud800", "a\udfffb", "\x00", "$x", "a.b", "", "x" * 300, "Europe", "²", "①", "🙂"])
texts = st.one_of(st.text(max_size=20), weird_text, st.text(st.characters(categories=["Cs", "Cc", "Lu"]), max_size=5))
ints = st.one_of(
    st.integers(-10, 10_000),
    st.sampled_from([INT64_MAX, INT64_MAX + 1, -(2**63), -(2**63) - 1, 2**64, 10**30, -(10**30)]),
)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e308, 5e-324]))
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)).map(
    lambda delta: timezone(timedelta(minutes=int(delta.total_seconds() // 60)))
)
times = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59-14:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59.999999+00:00",
            "0001-01-01T00:00:00+01:00",
            "0001-01-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "not a time",
        ]
    ),
    st.datetimes(timezones=offsets).map(datetime.isoformat),
)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
json_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)), max_leaves=8
)
anything = st.one_of(scalars, times, json_values)


def maybe(strategy):
    """Mostly ``strategy``, sometimes any JSON value at all."""
    return st.one_of(strategy, strategy, strategy, strategy, strategy, anything)


typed_payloads = st.one_of(
    st.fixed_dictionaries({"type": st.just("noop")}, optional={"payload": st.just({})}),
    st.fixed_dictionaries({"type": st.just("sleep"), "payload": st.fixed_dictionaries({"seconds": maybe(st.floats(0, 3600))})}),
    st.fixed_dictionaries(
        {"type": st.just("fail"), "payload": st.fixed_dictionaries({}, optional={"message": texts, "retryable": st.booleans()})}
    ),
    st.fixed_dictionaries(
        {"type": st.just("flaky"), "payload": st.fixed_dictionaries({}, optional={"failures": maybe(st.integers(0, 100))})}
    ),
    st.fixed_dictionaries({"type": anything}, optional={"payload": st.dictionaries(texts, json_values, max_size=3)}),
)
options = st.fixed_dictionaries(
    {},
    optional={
        "max_attempts": maybe(st.integers(1, 100)),
        "backoff": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "base_s": maybe(st.floats(0, 86_400)),
                    "factor": maybe(st.floats(1, 10)),
                    "max_s": maybe(st.floats(0, 7 * 86_400)),
                    "jitter": maybe(st.floats(0, 1)),
                },
            )
        ),
        "timeout_s": maybe(st.one_of(st.floats(0.001, 7 * 86_400), floats, ints)),
        "run_at": maybe(times),
        "priority": maybe(st.sampled_from(["high", "normal", "low"])),
        "labels": maybe(st.dictionaries(texts, texts, max_size=4)),
        "concurrency_key": maybe(texts),
        "concurrency_limit": maybe(st.integers(1, 10_000)),
        "on_conflict": maybe(st.sampled_from(["queue", "reject"])),
    },
)
submit_bodies = st.tuples(typed_payloads, options).map(lambda parts: {**parts[0], **parts[1]})
crons = st.one_of(
    st.sampled_from(
        ["* * * * *", "0 0 31 2 *", "0 0 30 2 *", "0 0 29 2 *", "0 2 * * *", "*/5 * * * * */10", "61 * * * *", "L * * * *"]
    ),
    texts,
)
zones = st.one_of(
    st.sampled_from(["UTC", "Europe/Berlin", "Europe", "Etc", "Etc/GMT+14", "Pacific/Kiritimati", "x" * 300]), texts
)
schedule_bodies = st.fixed_dictionaries({"cron": crons, "job": submit_bodies}, optional={"timezone": zones})


# --- the stages after the edge ------------------------------------------------------------


def carried_by_bson(document: dict) -> dict:
    return bson.decode(bson.encode(document), codec_options=BSON)


def assert_travels(submit: SubmitJob) -> None:
    """The command goes through the log, the decider, a whole attempt and the read model."""
    assert parse_command(encode_command(submit)) == submit
    job = None
    history = []

    def apply(command) -> None:
        nonlocal job
        parsed = parse_command(encode_command(command))
        events = decide(parsed, job)
        for event in events:
            assert parse_event(event.to_bytes()) == event
            carried_by_bson(event_document(event))
        history.extend(events)
        job = fold(events, job)
        job_from_document(carried_by_bson(job_document(job)))
        JobView.of(job).model_dump_json()

    apply(submit)
    common = dict(job_id=submit.job_id, tenant=submit.tenant)
    for round_ in range(3):  # wake (run_at or backoff), slot, run; a failure, retried
        if job.status is JobStatus.PENDING and job.due_at is not None:
            (wake,) = due_commands(job, job.due_at)
            apply(wake)
        if job.awaiting_slot:
            apply(GrantSlot(command_id=f"grant-{round_}", issued_at=job.updated_at, **common))
        assert job.status is JobStatus.QUEUED
        at = job.updated_at
        attempt = dict(attempt=job.attempt, runner_id="runner", issued_at=at, **common)
        apply(StartJob(command_id=f"start-{round_}", **attempt))
        for expiry in due_commands(job, LATEST, lease_expires_at=later(at, 30)):
            parse_command(encode_command(expiry))
        if round_ == 2 or job.attempts_left == 0:
            apply(CompleteJob(command_id="done", result={"echo": submit.payload}, **attempt))
            break
        apply(FailJob(command_id=f"fail-{round_}", error="boom \ud800"[:4], **attempt))
    assert job.status is JobStatus.SUCCEEDED
    assert fold(parse_event(event.to_bytes()) for event in history) == job


def submitted(body) -> SubmitJob | None:
    """What ingest makes of a decoded ``POST /jobs`` body: a command, or ``None`` for a 422."""
    try:
        request = parse_request(body)
        return submit_command(JOB_TYPES, request, tenant="t", job_id="job-1", issued_at=NOW)
    except Problem as problem:
        assert problem.status == 422 and problem.errors, problem.body("/jobs")
        assert all(error["field"] is not None for error in problem.errors)
        orjson.dumps(problem.body("/jobs"))  # the answer itself can be sent
        return None


# --- properties -----------------------------------------------------------------------------


@EDGE
@given(submit_bodies)
def test_a_submit_is_refused_with_a_field_or_travels_everywhere(body):
    submit = submitted(body)
    if submit is not None:
        assert_travels(submit)


@EDGE
@given(schedule_bodies)
def test_a_schedule_is_refused_with_a_field_or_ticks(body):
    try:
        if list(json_problems(body)):
            return
        spec = schedule_spec(JOB_TYPES, ScheduleRequest.model_validate(body))
    except ValidationError:
        return
    except Problem as problem:
        assert problem.status == 422 and problem.errors
        return
    create = CreateSchedule(command_id="c", schedule_id="s", tenant="t", issued_at=NOW, spec=spec)
    schedule = evolve_schedule(None, parse_schedule_command(encode_schedule_command(create)))
    carried_by_bson(schedule_document(schedule))
    ScheduleView.of(schedule).model_dump_json()
    ticks = ticks_due(schedule, NOW + timedelta(days=3000))
    assert ticks, "an accepted schedule fires within the horizon"
    assert_travels(tick_command(schedule, ticks[0], ticks[0]))


@EDGE
@given(st.fixed_dictionaries({}, optional={"reason": maybe(texts), "grace_s": maybe(st.one_of(floats, ints))}))
def test_a_cancel_is_refused_or_decided(body):
    if list(json_problems(body)):
        return
    try:
        request = CancelRequest.model_validate(body)
    except ValidationError:
        return
    submit = submitted({"type": "noop", "run_at": "9999-12-31T23:59:59Z"})
    job = fold(decide(submit, None))
    (wake,) = due_commands(job, job.due_at)
    job = fold(decide(wake, job), job)
    job = fold(
        decide(StartJob(command_id="s", job_id="job-1", tenant="t", issued_at=job.updated_at, attempt=1, runner_id="r"), job), job
    )
    cancel = CancelJob(command_id="x", job_id="job-1", tenant="t", issued_at=job.updated_at, **request.model_dump())
    events = decide(parse_command(encode_command(cancel)), job)
    for event in events:
        carried_by_bson(event_document(event))


@EDGE
@given(st.one_of(st.text(max_size=30), times, ints.map(str), st.sampled_from(["99999999999999999999999", "²", "①", "-1", " 1"])))
def test_until_is_a_seq_or_a_time_or_a_422(until):
    try:
        query = _until(until)
    except Problem as problem:
        assert problem.status == 422 and problem.errors[0]["field"] == "query.until"
        return
    carried_by_bson({"q": query})


@EDGE
@given(times)
def test_a_time_filter_is_a_moment_or_refused(value):
    try:
        moment = TypeAdapter(Moment).validate_python(value)
    except ValidationError:
        return
    carried_by_bson({"created_at": {"$gte": moment}})


@EDGE
@given(texts)
def test_a_label_filter_key_is_refused_or_a_field_path(key):
    if label_key_problem(key) is None:
        carried_by_bson({f"options.labels.{key}": "x"})


@EDGE
@given(json_values)
def test_json_fit_values_are_carried_by_the_log_and_document_fit_ones_by_bson(value):
    if list(json_problems(value)):
        return
    assert orjson.loads(orjson.dumps(value)) == value
    if not list(document_problems(value)):
        carried_by_bson({"value": storable(value)})


# --- the shapes that broke a stack, one by one ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "noop", "run_at": "9999-12-31T23:59:59-14:00"}, "run_at"),
        ({"type": "noop", "labels": {"team": "\ud800"}}, "labels.team"),
        ({"type": "fail", "payload": {"message": "\ud800"}}, "payload.message"),
        ({"type": "noop", "max_attempts": float("nan")}, "max_attempts"),
        ({"type": "noop", "timeout_s": float("inf")}, "timeout_s"),
        ({"type": "flaky", "payload": {"failures": 2**64}}, "payload.failures"),
    ],
)
def test_each_poison_submit_is_a_422_naming_its_field(body, field):
    with pytest.raises(Problem) as refused:
        parse_request(body) if "payload" not in body else submit_command(
            JOB_TYPES, parse_request(body), tenant="t", job_id="j", issued_at=NOW
        )
    assert refused.value.status == 422
    assert field in [error["field"] for error in refused.value.errors]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "0 0 31 2 *", "job": {"type": "noop"}}, "cron"),
        ({"cron": "* * * * *", "timezone": "Europe", "job": {"type": "noop"}}, "timezone"),
        ({"cron": "* * * * *", "timezone": "Etc", "job": {"type": "noop"}}, "timezone"),
        ({"cron": "* * * * *", "timezone": "x" * 300, "job": {"type": "noop"}}, "timezone"),
        ({"cron": "* * * * *", "job": {"type": "noop", "labels": {str(i): "x" for i in range(32)}}}, "job.labels"),
    ],
)
def test_each_poison_schedule_is_a_422_naming_its_field(body, field):
    with pytest.raises(Problem) as refused:
        schedule_spec(JOB_TYPES, ScheduleRequest.model_validate(body))
    assert field in [error["field"] for error in refused.value.errors]


def test_a_deadline_past_year_9999_saturates():
    assert later(datetime(9999, 12, 31, tzinfo=timezone.utc), 7 * 86_400) == LATEST
