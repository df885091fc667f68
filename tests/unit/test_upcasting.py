"""Old records replay unchanged into the new model: upcasting on read."""

from __future__ import annotations

import orjson

from schemas import JobStatus, JobSubmitted, fold, parse_event
from schemas.chain import GENESIS, ChainCheck, event_hash

V1_SUBMITTED = {
    "specversion": "1.0",
    "id": "e-1",
    "source": "/jobledger/processor",
    "type": "jobledger.job.submitted",
    "subject": "job-old",
    "time": "2026-11-22T10:00:00Z",
    "datacontenttype": "application/json",
    "schemaversion": 1,
    "seq": 1,
    "tenant": "acme",
    "causationid": "c-1",
    "correlationid": "c-1",
    "prevhash": GENESIS,
    "data": {"job_type": "sleep", "payload": {"seconds": 1}},
}
V1_SUBMITTED["hash"] = event_hash(V1_SUBMITTED)


def test_a_version_1_submitted_event_is_read_as_the_current_version_with_the_options_it_ran_with():
    event = parse_event(orjson.dumps(V1_SUBMITTED))

    assert isinstance(event, JobSubmitted)
    assert event.schema_version == JobSubmitted.SCHEMA_VERSION == 3
    assert event.data.options.max_attempts == 1, "v1 jobs were never retried"
    assert event.data.idempotency_key is None
    assert event.data.steps is None, "before v3 no job was a pipeline"
    job = fold([event])
    assert job.status is JobStatus.PENDING and job.payload == {"seconds": 1}


def test_an_upcast_event_keeps_its_recorded_form_so_its_hash_still_verifies():
    event = parse_event(orjson.dumps(V1_SUBMITTED))

    assert event.recorded() == V1_SUBMITTED
    assert event_hash(event.recorded()) == event.hash
    chain = ChainCheck()
    chain.add(event.recorded())
    assert chain.broken == []


def test_a_version_2_event_gains_only_what_version_3_added():
    v2 = {**V1_SUBMITTED, "schemaversion": 2, "data": {**V1_SUBMITTED["data"], "options": {"max_attempts": 5}}}

    event = parse_event(orjson.dumps(v2))

    assert event.data.options.max_attempts == 5
    assert event.data.steps is None
    assert event.recorded() == v2


def test_current_events_are_not_touched():
    current = {
        **V1_SUBMITTED,
        "schemaversion": 3,
        "data": {**V1_SUBMITTED["data"], "options": {"max_attempts": 5}, "steps": None},
    }

    event = parse_event(orjson.dumps(current))

    assert event.data.options.max_attempts == 5
    assert event.recorded() == event.wire_dict()


def test_failures_recorded_before_tracebacks_read_with_none():
    failed_v1 = {**V1_SUBMITTED, "type": "jobledger.job.failed", "seq": 2, "data": {"attempt": 1, "error": "boom"}}
    retry_v1 = {
        **failed_v1,
        "type": "jobledger.job.retry_scheduled",
        "data": {**failed_v1["data"], "retry_at": "2026-11-22T10:00:01Z"},
    }
    step_v1 = {**failed_v1, "type": "jobledger.step.failed", "data": {"step": "a", "attempt": 1, "error": "boom"}}

    for recorded in (failed_v1, retry_v1, step_v1):
        event = parse_event(orjson.dumps(recorded))
        assert event.data.traceback is None
        assert event.recorded() == recorded
