"""One bad request, or one bad record, never breaks the stack.

Two halves:

- through the API, every request that used to be answered 500 (or 202, and
  then stall a consumer) is a 4xx problem document, and a fresh job still
  succeeds after them;
- straight onto the topics (and into the stores a consumer restores from),
  every poison shape that used to crash or stall a consumer: each goes to
  ``jobs.dlq`` or is skipped, and a fresh job still succeeds, also after the
  processor and the projector are restarted on top of them.

The second half runs on a stack of its own, so its records never reach
another test's log.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from schemas import topics
from services.adapters.readmodel import JOBS, SCHEDULES
from services.embedded.stack import EmbeddedStack
from services.ingest.settings import DEV_API_KEY
from tests.e2e.conftest import eventually, read_topic, stack_settings, wait_for_job

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
NOW = "2026-11-23T12:00:00Z"


async def a_fresh_job_succeeds(api: httpx.AsyncClient) -> None:
    response = await api.post("/jobs", json={"type": "noop"})
    assert response.status_code == 202, response.text
    job = await wait_for_job(api, response.json()["id"], timeout_s=60)
    assert job["state"] == "SUCCEEDED"


# --- through the API ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/schedules", {"cron": "0 0 31 2 *", "job": {"type": "noop", "payload": {}}}, "cron"),
        ("post", "/jobs", {"type": "noop", "run_at": "9999-12-31T23:59:59-14:00"}, "run_at"),
        ("post", "/schedules", {"cron": "* * * * *", "timezone": "Europe", "job": {"type": "noop"}}, "timezone"),
        ("post", "/schedules", {"cron": "* * * * *", "timezone": "Etc", "job": {"type": "noop"}}, "timezone"),
        ("post", "/schedules", {"cron": "* * * * *", "timezone": "Q" * 5000, "job": {"type": "noop"}}, "timezone"),
        ("post", "/jobs", {"type": "noop", "labels": {"team": "\ud800"}}, "labels.team"),
        ("post", "/jobs:batch", {"jobs": [{"type": "noop", "labels": {"team": "\ud800"}}]}, "jobs.0.labels.team"),
        ("get", "/jobs?created_after=0001-01-01T00:00:00%2B01:00", None, "query.created_after"),
        ("get", "/jobs?created_before=9999-12-31T23:59:59-14:00", None, "query.created_before"),
        ("get", "/jobs?label=%00:1", None, "query.label.0"),
    ],
)
async def test_each_request_that_broke_the_stack_is_a_4xx_problem(api, method, path, body, field):
    content = None if body is None else _json_with_escapes(body)
    response = await api.request(method, path, content=content, headers={"Content-Type": "application/json"})

    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == PROBLEM
    assert field in [error["field"] for error in response.json().get("errors", [])], response.text
    await a_fresh_job_succeeds(api)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("as_of=0001-01-01T00:00:00%2B01:00", "query.as_of"),
        ("as_of=9999-12-31T23:59:59-14:00", "query.as_of"),
    ],
)
async def test_a_job_as_of_a_time_past_the_calendar_is_a_422(api, query, field):
    job_id = (await api.post("/jobs", json={"type": "noop"})).json()["id"]
    response = await api.get(f"/jobs/{job_id}?{query}")
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize("until", ["99999999999999999999999", "²", "①", "-1", "9223372036854775808"])
async def test_events_until_is_a_seq_or_a_time_or_a_422(api, until):
    job_id = (await api.post("/jobs", json={"type": "noop"})).json()["id"]
    response = await api.get(f"/jobs/{job_id}/events", params={"until": until})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "query.until"


async def test_a_stream_resumed_past_64_bits_is_a_422(api):
    job_id = (await api.post("/jobs", json={"type": "noop"})).json()["id"]
    response = await api.get(f"/jobs/{job_id}/stream", headers={"Last-Event-ID": str(2**64)})
    assert response.status_code == 422, response.text


def _json_with_escapes(value) -> bytes:
    """JSON with non-ASCII text as \\u escapes: the only way a client can send a lone surrogate."""
    return json.dumps(value, ensure_ascii=True).encode()


# --- straight onto the topics ------------------------------------------------------------------


@pytest.fixture(scope="module")
async def poisoned(tmp_path_factory) -> AsyncIterator[EmbeddedStack]:
    stack = EmbeddedStack(stack_settings(tmp_path_factory.mktemp("poison"), partitions=2))
    await stack.start()
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


def _command(**fields) -> bytes:
    """A SubmitJob as raw JSON, bypassing every model (as a buggy or hostile producer would)."""
    command = {
        "type": "SubmitJob",
        "command_id": str(uuid.uuid4()),
        "job_id": str(uuid.uuid4()),
        "tenant": "default",
        "issued_at": NOW,
        "job_type": "noop",
        "payload": {},
    }
    command.update(fields)
    return orjson.dumps(command)


def _schedule(schedule_id: str, cron: str, zone: str = "UTC") -> dict:
    return {
        "schedule_id": schedule_id,
        "tenant": "default",
        "spec": {"cron": cron, "timezone": zone, "job_type": "noop", "payload": {}},
        "created_at": NOW,
    }


def _event(job_id: str, seq: int, data: dict, kind: str = "jobledger.job.submitted", version: int = 2) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "/jobledger/processor",
            "type": kind,
            "subject": job_id,
            "time": NOW,
            "datacontenttype": "application/json",
            "schemaversion": version,
            "seq": seq,
            "tenant": "default",
            "causationid": "c",
            "correlationid": "c",
            "prevhash": "0" * 64,
            "hash": "f" * 64,
            "data": data,
        }
    )


async def test_poison_records_are_dead_lettered_and_survive_a_restart(poisoned):
    stack = poisoned
    marker = uuid.uuid4().hex
    schedule_poison = {"cron": "0 0 31 2 *", "tz": "Europe"}
    records = [
        (topics.COMMANDS, _command(options={"run_at": "9999-12-31T23:59:59-14:00"}, correlation_id=marker)),
        (
            topics.COMMANDS,
            b'{"type":"SubmitJob","command_id":"c1","job_id":"j1","tenant":"default","issued_at":"'
            + NOW.encode()
            + b'","job_type":"noop","payload":{"n":'
            + str(2**70).encode()
            + b"}}",
        ),
        (topics.COMMANDS, _command(options={"labels": {"team": "PLACEHOLDER"}}).replace(b"PLACEHOLDER", b"\\ud800")),
        (topics.COMMANDS, b"\xff\xfe not even text"),
        (
            topics.SCHEDULES,
            orjson.dumps(
                {
                    "type": "CreateSchedule",
                    "command_id": "s1",
                    "schedule_id": f"never-{marker}",
                    "tenant": "default",
                    "issued_at": NOW,
                    "spec": {"cron": schedule_poison["cron"], "job_type": "noop"},
                }
            ),
        ),
        (
            topics.SCHEDULES,
            orjson.dumps(
                {
                    "type": "CreateSchedule",
                    "command_id": "s2",
                    "schedule_id": f"folder-{marker}",
                    "tenant": "default",
                    "issued_at": NOW,
                    "spec": {"cron": "* * * * *", "timezone": schedule_poison["tz"], "job_type": "noop"},
                }
            ),
        ),
        (
            topics.SLOTS,
            orjson.dumps(
                {
                    "kind": "request",
                    "key": "default/k",
                    "job_id": "j",
                    "tenant": "default",
                    "limit": 0,
                    "request_id": "r",
                    "submitted_at": NOW,
                }
            ),
        ),
        (topics.EVENTS, _event(f"huge-{marker}", 1, {"job_type": "noop", "payload": {"n": 2**64 - 1}})),
        (
            topics.EVENTS,
            _event(f"late-{marker}", 1, {"job_type": "noop", "payload": {}, "options": {"run_at": "9999-12-31T23:59:59-14:00"}}),
        ),
        (
            topics.EVENTS,
            _event(
                f"baddoc-{marker}", 2, {"attempt": 1, "job_type": "noop", "payload": {}}, kind="jobledger.job.queued", version=1
            ),
        ),
    ]
    mongo = AsyncMongoClient(stack.settings.mongo_url, tz_aware=True)
    db = mongo[stack.settings.mongo_db]
    # What an older version may have left in the stores consumers restore from:
    await db[JOBS].insert_one({"_id": f"baddoc-{marker}", "tenant": "default", "version": 1, "status": "??"})
    await db[SCHEDULES].insert_one(
        {
            "_id": f"old-{marker}",
            "tenant": "default",
            "deleted": False,
            "created_at": NOW,
            "schedule": _schedule(f"old-{marker}", "0 0 31 2 *"),
        }
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for topic, value in records:
            await producer.send_and_wait(topic, key=b"poison", value=value)
        await producer.send_and_wait(
            topics.SCHEDULE_STATE,
            key=orjson.dumps(f"stored-{marker}"),
            value=orjson.dumps(_schedule(f"stored-{marker}", "0 0 31 2 *", "Etc")),
        )
    finally:
        await producer.stop()

    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_KEY}"}) as api:
        ticking = await api.post("/schedules", json={"cron": "* * * * * */1", "job": {"type": "noop"}})
        assert ticking.status_code == 201, ticking.text
        await a_fresh_job_succeeds(api)
        await _ticks(api, ticking.json()["id"], at_least=1)
        listed = await api.get("/schedules")
        assert listed.status_code == 200 and f"old-{marker}" not in [s["id"] for s in listed.json()["items"]]

        dead = await read_topic(stack, topics.DLQ, lambda rs: _stages(rs) >= {b"decider", b"schedules", b"slots", b"projector"})
        assert _stages(dead) >= {b"decider", b"schedules", b"slots", b"projector"}
        sources = {dict(r.headers)["jobledger-source-topic"] for r in dead}
        assert sources >= {t.encode() for t in (topics.COMMANDS, topics.SCHEDULES, topics.SLOTS, topics.EVENTS)}

        for name in ("processor", "projector", "ingest"):
            stack.restart(name)
        await stack.wait_ready()
        await a_fresh_job_succeeds(api)
        await _ticks(api, ticking.json()["id"], at_least=(await _tick_count(api, ticking.json()["id"])) + 1)
        stack.check_alive()
    await mongo.close()


def _stages(records) -> set[bytes]:
    return {dict(record.headers).get("jobledger-stage") for record in records}


async def _tick_count(api, schedule_id: str) -> int:
    page = await api.get("/jobs", params={"label": f"schedule:{schedule_id}", "limit": 1000})
    return len(page.json()["items"])


async def _ticks(api, schedule_id: str, at_least: int, timeout_s: float = 60) -> None:
    async def ticked() -> bool:
        return await _tick_count(api, schedule_id) >= at_least

    await eventually(ticked, timeout_s)
