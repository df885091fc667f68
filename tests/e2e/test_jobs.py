"""A job's life through the real wire: HTTP → jobs.commands → decider →
jobs.events → projector → MongoDB → HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from itertools import pairwise

import httpx
import pytest

from schemas import JobStatus, parse_command, parse_event, topics
from services.adapters.readmodel import JOB_EVENTS
from tests.e2e.conftest import drained, read_topic, wait_for_job, waiting_jobs

pytestmark = pytest.mark.e2e


async def submit(api, job_type: str, payload: dict | None = None, **headers) -> str:
    response = await api.post("/jobs", json={"type": job_type, "payload": payload or {}}, headers=headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["state"] == "PENDING"
    assert body["links"]["self"] == f"/jobs/{body['id']}"
    assert response.headers["location"] == f"/jobs/{body['id']}"
    return body["id"]


async def test_a_sleep_job_runs_to_success_and_its_events_are_seq_1_to_n(api, db, stack):
    job_id = await submit(api, "sleep", {"seconds": 0.2})

    job = await wait_for_job(api, job_id)
    await drained(stack)  # the read model itself is read below

    assert job["state"] == "SUCCEEDED"
    assert job["result"] == {"slept": 0.2}
    assert job["attempt"] == 1
    assert job["started_at"] <= job["finished_at"]
    stored = [doc async for doc in db[JOB_EVENTS].find({"job_id": job_id}).sort("seq", 1)]
    assert [doc["seq"] for doc in stored] == list(range(1, len(stored) + 1))
    assert [doc["type"] for doc in stored] == [
        "jobledger.job.submitted",
        "jobledger.job.queued",
        "jobledger.job.started",
        "jobledger.job.succeeded",
    ]
    assert job["version"] == len(stored)
    # The stored events are the log's events: chained, and they parse back.
    events = [parse_event(doc["event"]) for doc in stored]
    assert all(later.prev_hash == earlier.hash for earlier, later in pairwise(events))


async def test_the_job_passes_through_queued_and_running(api, stack):
    job_id = await submit(api, "sleep", {"seconds": 0.5})
    await wait_for_job(api, job_id)

    records = await read_topic(stack, topics.EVENTS, lambda rs: sum(r.key == job_id.encode() for r in rs) >= 4)
    events = [parse_event(r.value) for r in records if r.key == job_id.encode()]

    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [type(e).__name__ for e in events] == ["JobSubmitted", "JobQueued", "JobStarted", "JobSucceeded"]
    for record in records:
        if record.key == job_id.encode():
            assert dict(record.headers)["content-type"] == b"application/cloudevents+json"


async def test_a_failing_job_ends_failed_with_its_error_text(api):
    job_id = await submit(api, "fail", {"message": "the disk is full"})

    job = await wait_for_job(api, job_id)

    assert job["state"] == "FAILED"
    assert job["error"] == "the disk is full"
    assert job["error_type"] == "IntentionalFailure"


async def test_a_job_can_be_read_right_after_it_was_accepted(api):
    job_id = await submit(api, "noop")

    response = await api.get(f"/jobs/{job_id}")

    assert response.status_code == 200
    assert response.json()["state"] in {s.value for s in JobStatus}


async def test_jobs_are_listed_right_after_they_were_accepted_in_their_current_state(api):
    label = uuid.uuid4().hex
    waiting = await waiting_jobs(api, {"fresh": label}, 3)  # never ending: the projector holds their documents back

    listed = (await api.get("/jobs", params={"label": f"fresh:{label}"})).json()["items"]
    pending = (await api.get("/jobs", params={"label": f"fresh:{label}", "state": "PENDING", "limit": 2})).json()

    assert [job["id"] for job in listed] == list(reversed(waiting)) and {job["state"] for job in listed} == {"PENDING"}
    assert [job["id"] for job in pending["items"]] == list(reversed(waiting))[:2] and pending["next_cursor"]
    rest = (await api.get("/jobs", params={"label": f"fresh:{label}", "cursor": pending["next_cursor"]})).json()
    assert [job["id"] for job in rest["items"]] == [waiting[0]]
    for job_id in waiting:
        await api.post(f"/jobs/{job_id}/cancel")


async def test_jobs_are_listed_newest_first(api, stack):
    batch = uuid.uuid4().hex
    ids = [(await api.post("/jobs", json={"type": "noop", "labels": {"batch": batch}})).json()["id"] for _ in range(3)]
    for job_id in ids:
        await wait_for_job(api, job_id)
    await drained(stack)  # listings are the read model's

    listed = (await api.get("/jobs", params={"limit": 3, "label": f"batch:{batch}"})).json()["items"]

    assert [job["id"] for job in listed] == list(reversed(ids))


async def test_jobs_can_be_listed_by_state(api, stack):
    job_id = await submit(api, "fail")
    await wait_for_job(api, job_id)
    await drained(stack)

    listed = (await api.get("/jobs", params={"state": "FAILED", "limit": 1000})).json()["items"]

    assert job_id in [job["id"] for job in listed]
    assert {job["state"] for job in listed} == {"FAILED"}


# --- errors are problem documents ---------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic abc"}])
async def test_job_routes_need_a_valid_api_key(anonymous, headers):
    for method, path in [("post", "/jobs"), ("get", "/jobs"), ("get", "/jobs/some-id")]:
        kwargs = {"json": {"type": "noop"}} if method == "post" else {}
        response = await getattr(anonymous, method)(path, headers=headers, **kwargs)

        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["status"] == 401


async def test_an_unknown_job_is_a_404_problem(api):
    response = await api.get("/jobs/does-not-exist")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 404
    assert problem["instance"] == "/jobs/does-not-exist"
    assert "does-not-exist" in problem["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "sleep", "payload": {"seconds": -1}}, "payload.seconds"),
        ({"type": "sleep", "payload": {"seconds": 3601}}, "payload.seconds"),
        ({"type": "sleep", "payload": {"seconds": "soon"}}, "payload.seconds"),
        ({"type": "sleep", "payload": {}}, "payload.seconds"),
        ({"type": "sleep", "payload": {"seconds": 1, "extra": 1}}, "payload.extra"),
        ({"type": "no-such-type", "payload": {}}, "type"),
        ({"payload": {}}, "type"),
        ({"type": "noop", "priority": "urgent"}, "priority"),
        ({"type": "noop", "colour": "red"}, "colour"),
        ({"type": "noop", "max_attempts": 0}, "max_attempts"),
        ({"type": "noop", "backoff": {"base_s": -1}}, "backoff.base_s"),
        ({"type": "noop", "run_at": "2026-01-01T00:00:00"}, "run_at"),
        ({"type": "noop", "timeout_s": 0}, "timeout_s"),
        ({"type": "noop", "labels": {"a.b": "x"}}, "labels"),
        ({"type": "noop", "payload": []}, "payload"),
    ],
)
async def test_bad_input_is_a_422_problem_naming_the_field(api, body, field):
    response = await api.post("/jobs", json=body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert field in [error["field"] for error in problem["errors"]]
    assert field in problem["detail"]


async def test_malformed_json_is_a_422_problem(api):
    response = await api.post("/jobs", content=b'{"type": ', headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_the_limit_is_a_413_problem(api, chunked):
    body = b'{"type": "noop", "payload": {"blob": "' + b"x" * 1_100_000 + b'"}}'

    async def chunks():
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    response = await api.post("/jobs", content=chunks() if chunked else body, headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith(":too-large")
    assert "1048576 bytes" in problem["detail"]


async def test_a_body_within_the_limit_whose_job_would_not_fit_the_log_is_a_422_not_a_503(api):
    """Under the body limit, but its events (the payload plus an envelope) would
    be larger than a record of the log may be: refused at the door, naming it."""
    response = await api.post("/jobs", json={"type": "export", "payload": {"object": {"blob": "x" * 1_040_000}}})

    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "payload" and "more than one record may carry" in error["message"]


async def test_rejected_input_appends_nothing_to_the_log(api, stack):
    bad = f"bad-{uuid.uuid4()}"
    for body in ({"type": "sleep", "payload": {"seconds": -1}}, {"type": "nope"}, {"type": "noop", "x": 1}):
        response = await api.post("/jobs", json=body, headers={"X-Correlation-Id": bad})
        assert response.status_code == 422
    good = f"good-{uuid.uuid4()}"
    await submit(api, "noop", **{"X-Correlation-Id": good})

    records = await read_topic(stack, topics.COMMANDS, lambda rs: any(parse_command(r.value).correlation_id == good for r in rs))

    assert not [r for r in records if parse_command(r.value).correlation_id == bad]


# --- poison messages ----------------------------------------------------------


async def test_poison_records_go_to_the_dlq_and_do_not_stop_the_consumers(api, stack, producer):
    poison = f"poison-{uuid.uuid4()}".encode()
    await producer.send_and_wait(topics.COMMANDS, key=b"poison-command", value=poison)
    await producer.send_and_wait(topics.EVENTS, key=b"poison-event", value=poison + b"{not json")

    job_id = await submit(api, "noop")
    job = await wait_for_job(api, job_id)
    assert job["state"] == "SUCCEEDED"

    dead = await read_topic(stack, topics.DLQ, lambda rs: sum(r.value.startswith(poison) for r in rs) >= 2)
    stages = {dict(r.headers)["jobledger-stage"] for r in dead if r.value.startswith(poison)}
    assert stages == {b"decider", b"projector"}
    for record in dead:
        if record.value.startswith(poison):
            headers = dict(record.headers)
            assert headers["jobledger-error"]
            assert headers["jobledger-source-topic"] in {topics.COMMANDS.encode(), topics.EVENTS.encode()}


# --- operations ---------------------------------------------------------------


async def test_health_and_readiness(anonymous):
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    ready = await anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"broker": "ok", "database": "ok"}


async def test_the_openapi_document_describes_the_job_routes(anonymous):
    spec = (await anonymous.get("/openapi.json")).json()

    assert {"/jobs", "/jobs/{job_id}", "/healthz", "/readyz"} <= spec["paths"].keys()


async def test_a_batch_accepts_the_valid_items_and_names_the_bad_ones(api, stack):
    body = {
        "jobs": [
            {"type": "noop"},
            {"type": "sleep", "payload": {"seconds": -1}},
            {"type": "noop", "priority": "high", "labels": {"batch": "b1"}},
            {"type": "nope"},
        ]
    }

    response = await api.post("/jobs:batch", json=body)

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (2, 2)
    items = result["items"]
    assert [item["status"] for item in items] == [202, 422, 202, 422]
    assert items[1]["problem"]["errors"][0]["field"] == "payload.seconds"
    assert items[3]["problem"]["errors"][0]["field"] == "type"
    for item in (items[0], items[2]):
        assert (await wait_for_job(api, item["id"]))["state"] == "SUCCEEDED"


async def test_a_batch_has_limits(api):
    too_many = await api.post("/jobs:batch", json={"jobs": [{"type": "noop"}] * 1001})
    empty = await api.post("/jobs:batch", json={"jobs": []})

    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "jobs"
    assert empty.status_code == 422


# --- waiting for a job ---------------------------------------------------------


async def test_a_get_with_wait_s_answers_when_the_job_has_ended(api):
    job_id = await submit(api, "sleep", {"seconds": 0.5})

    job = (await api.get(f"/jobs/{job_id}", params={"wait_s": 30})).json()

    assert job["state"] == "SUCCEEDED"


async def test_a_get_with_after_version_answers_the_next_version(api):
    job_id = await submit(api, "sleep", {"seconds": 1})
    first = (await api.get(f"/jobs/{job_id}", params={"wait_s": 30, "after_version": 0})).json()

    later = (await api.get(f"/jobs/{job_id}", params={"wait_s": 30, "after_version": first["version"]})).json()

    assert first["version"] >= 1
    assert later["version"] > first["version"]


async def test_a_wait_that_runs_out_answers_the_job_as_it_is(api):
    job_id = (await api.post("/jobs", json={"type": "noop", "run_at": "2999-01-01T00:00:00Z"})).json()["id"]

    job = (await api.get(f"/jobs/{job_id}", params={"wait_s": 0.5})).json()

    assert job["state"] == "PENDING"


@pytest.mark.parametrize("params", [{"wait_s": 61}, {"wait_s": -1}, {"as_of": "2026-01-01T00:00:00Z", "wait_s": 1}])
async def test_a_bad_wait_is_a_422(api, params):
    job_id = await submit(api, "noop")
    response = await api.get(f"/jobs/{job_id}", params=params)
    assert response.status_code == 422, response.text


async def test_the_tenant_stream_brings_every_event_of_the_tenants_jobs_and_no_one_elses(api, anonymous, stack):
    from httpx_sse import aconnect_sse

    from tests.e2e.conftest import FUZZ_KEY

    refused = await anonymous.get("/jobs:stream")
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"

    heard: list[dict] = []
    mine: dict[str, str] = {}
    ready = asyncio.Event()

    async def listen() -> None:
        async with aconnect_sse(api, "GET", "/jobs:stream") as source:
            assert source.response.status_code == 200
            async for message in source.aiter_sse():
                if message.event == "ready":
                    ready.set()
                    continue
                heard.append(json.loads(message.data))
                if message.event == "jobledger.job.succeeded" and heard[-1]["subject"] == mine.get("id"):
                    return

    listener = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 30)  # live only: from "ready" on, nothing is missed
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {FUZZ_KEY}"}) as other:
        theirs = (await other.post("/jobs", json={"type": "noop"})).json()["id"]
    mine["id"] = await submit(api, "noop")
    await asyncio.wait_for(listener, timeout=60)

    types = [event["type"] for event in heard if event["subject"] == mine["id"]]
    assert types[0] == "jobledger.job.submitted" and types[-1] == "jobledger.job.succeeded"
    assert theirs not in {event["subject"] for event in heard}, "another tenant's jobs are not heard"


async def test_a_deleted_job_leaves_the_read_models_and_its_history_stays_in_the_log(api, db, stack):
    from tests.e2e.conftest import jobledger

    job_id = await submit(api, "echo", {"lines": 2})
    [unfinished] = await waiting_jobs(api, {}, 1)  # not ended however long the drains below take
    await wait_for_job(api, job_id)
    await drained(stack)
    refused = await api.delete(f"/jobs/{unfinished}")
    assert refused.status_code == 409, (refused.text, (await api.get(f"/jobs/{unfinished}/events")).text)

    deleted = await api.delete(f"/jobs/{job_id}")
    records = await read_topic(
        stack,
        topics.EVENTS,
        lambda rs: any(r.key == job_id.encode() and parse_event(r.value).type == "jobledger.job.deleted" for r in rs),
    )
    await drained(stack)

    assert deleted.status_code == 202
    gone = await api.get(f"/jobs/{job_id}")
    assert gone.status_code == 404 and "deleted" in gone.json()["title"]
    assert (await api.get(f"/jobs/{job_id}/events")).status_code == 404
    assert (await api.get(f"/jobs/{job_id}/logs")).status_code == 404
    assert job_id not in [job["id"] for job in (await api.get("/jobs", params={"type": "echo", "limit": 1000})).json()["items"]]
    assert await db[JOB_EVENTS].count_documents({"job_id": job_id}) == 0
    assert await db["job_logs"].count_documents({"job_id": job_id}) == 0
    stored = await db["jobs"].find_one({"_id": job_id})
    assert stored["payload"] == {} and stored["deleted_at"] is not None, "a tombstone: nothing of what it carried"
    log = [parse_event(r.value).type.rsplit(".", 1)[-1] for r in records if r.key == job_id.encode()]
    assert log[0] == "submitted" and log[-1] == "deleted"
    verified = jobledger(stack, "audit", "verify", "--job", job_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (await api.delete(f"/jobs/{job_id}")).status_code == 404
    await api.post(f"/jobs/{unfinished}/cancel")


async def test_a_waiting_job_is_changed_before_it_starts_and_not_after(api, stack):
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    response = await api.post("/jobs", json={"type": "noop", "run_at": later})
    job_id = response.json()["id"]

    raised = await api.patch(f"/jobs/{job_id}", json={"priority": "high"})
    now = await api.patch(f"/jobs/{job_id}", json={"run_at": datetime.now(timezone.utc).isoformat()})
    job = await wait_for_job(api, job_id)
    too_late = await api.patch(f"/jobs/{job_id}", json={"priority": "low"})
    nothing = await api.patch(f"/jobs/{job_id}", json={})

    assert (raised.status_code, now.status_code) == (202, 202)
    assert job["state"] == "SUCCEEDED" and job["priority"] == "high", "queued and run once its run_at moved to now"
    assert too_late.status_code == 409 and nothing.status_code == 422
    events = [event["type"] for event in (await api.get(f"/jobs/{job_id}/events")).json()["items"]]
    assert events.count("jobledger.job.updated") == 2
