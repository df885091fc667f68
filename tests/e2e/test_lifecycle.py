"""The job lifecycle on the real wire: retries, timeouts, lost runners, cancel,
manual retry, idempotent submit, run_at, priorities, progress and queries."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from itertools import pairwise

import orjson
import pytest

from services.embedded.stack import signal_group
from tests.e2e.conftest import LEASE_S, drained, eventually, read_topic, wait_for_job, wait_until

pytestmark = pytest.mark.e2e


async def post_job(api, job_type: str, payload: dict | None = None, **options) -> str:
    response = await api.post("/jobs", json={"type": job_type, "payload": payload or {}, **options})
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def events_of(api, job_id: str) -> list[dict]:
    response = await api.get(f"/jobs/{job_id}/events")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def short_type(event: dict) -> str:
    return event["type"].rsplit(".", 1)[-1]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- retries and timeouts ----------------------------------------------------------


async def test_a_flaky_job_succeeds_on_attempt_3_after_visible_backoff(api):
    backoff = {"base_s": 0.3, "factor": 2, "max_s": 10, "jitter": 0}
    job_id = await post_job(api, "flaky", {"failures": 2}, max_attempts=3, backoff=backoff)

    job = await wait_for_job(api, job_id)

    assert job["state"] == "SUCCEEDED"
    assert job["attempt"] == 3
    assert job["result"] == {"succeeded_on_attempt": 3}
    assert [(e["attempt"], e["error_type"]) for e in job["errors"]] == [(1, "IntentionalFailure"), (2, "IntentionalFailure")]
    events = await events_of(api, job_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    scheduled = [e for e in events if short_type(e) == "retry_scheduled"]
    assert [round((at(e["data"]["retry_at"]) - at(e["time"])).total_seconds(), 3) for e in scheduled] == [0.3, 0.6]
    queued = [e for e in events if short_type(e) == "queued"]
    assert [e["data"]["attempt"] for e in queued] == [1, 2, 3]
    for retry, requeued in zip(scheduled, queued[1:], strict=False):
        assert at(requeued["time"]) >= at(retry["data"]["retry_at"]), "no attempt before its backoff"


async def test_the_last_failure_ends_failed_with_every_attempts_error(api):
    job_id = await post_job(api, "fail", {"message": "nope"}, max_attempts=2, backoff={"base_s": 0})

    job = await wait_for_job(api, job_id)

    assert job["state"] == "FAILED"
    assert job["attempts_left"] == 0
    assert [e["error"] for e in job["errors"]] == ["nope", "nope"]


async def test_a_failing_handler_leaves_its_traceback_on_the_job_and_in_the_log(api, stack):
    job_id = await post_job(api, "fail", {"message": "disk full", "retryable": False})

    job = await wait_for_job(api, job_id)

    trace = job["errors"][0]["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "builtin.py" in trace and "in fail" in trace, "the handler's own frame"
    assert trace.rstrip().endswith("PermanentError: disk full")
    logged = [line for line in (stack.logs / "processor.log").read_text().splitlines() if job_id in line]
    assert any("error" in line and "job attempt failed" in line for line in logged), logged


async def test_a_non_retryable_error_fails_at_once(api):
    job_id = await post_job(api, "fail", {"retryable": False}, max_attempts=5)

    job = await wait_for_job(api, job_id)

    assert job["state"] == "FAILED"
    assert job["attempt"] == 1
    assert job["error_type"] == "PermanentError"


async def test_a_hanging_attempt_is_timed_out(api):
    job_id = await post_job(api, "sleep", {"seconds": 60, "ignore_cancel": True}, timeout_s=1, max_attempts=1)

    job = await wait_for_job(api, job_id, timeout_s=30)

    assert job["state"] == "FAILED"
    assert job["error_type"] == "timeout"
    assert "timed out after 1 s" in job["error"]


async def test_a_job_whose_runner_dies_is_retried_not_stuck(api, stack):
    job_id = await post_job(api, "sleep", {"seconds": 3}, max_attempts=2, backoff={"base_s": 0})
    running = await wait_for_job(api, job_id, states={"RUNNING"})
    assert running["attempt"] == 1

    stack.kill("processor")  # its runner ran the job
    stack.restart("processor")

    job = await wait_for_job(api, job_id)
    assert job["state"] == "SUCCEEDED"
    assert job["attempt"] == 2
    assert [e["error_type"] for e in job["errors"]] == ["lost"]
    lost = job["errors"][0]
    assert at(lost["at"]) - at(running["started_at"]) >= timedelta(seconds=LEASE_S * 0.9)


async def test_a_stopping_processor_hands_its_running_job_back_without_costing_an_attempt(api, stack):
    job_id = await post_job(api, "sleep", {"seconds": 60}, max_attempts=1)
    await wait_for_job(api, job_id, states={"RUNNING"})

    stack.restart("processor")  # SIGTERM: the grace runs out, the attempt is stopped and handed back

    job = await wait_until(api, job_id, lambda job: job["state"] == "RUNNING" and job["attempt"] == 2)
    assert job["errors"] == [] and job["attempts_left"] == 0, "a released attempt is no failure and costs nothing"
    kinds = [short_type(event) for event in await events_of(api, job_id)]
    assert kinds[kinds.index("released") :][:3] == ["released", "queued", "started"], kinds
    await api.post(f"/jobs/{job_id}/cancel", json={"grace_s": 0})
    assert (await wait_for_job(api, job_id))["state"] == "CANCELLED"


async def test_a_second_stop_signal_hands_the_running_job_back_without_waiting_out_the_grace(api, stack):
    stack.restart("processor", shutdown_grace_s="3600")
    try:
        job_id = await post_job(api, "sleep", {"seconds": 600}, max_attempts=1)
        await wait_for_job(api, job_id, states={"RUNNING"})
        processor = stack.processes["processor"]

        # Ctrl-C in `make run` begins the grace; Ctrl-C again ends it. (Signals
        # sent at once may arrive as one, so they are repeated until it exits.)
        for _ in range(120):
            signal_group(processor, signal.SIGTERM)
            if await asyncio.to_thread(_exited, processor, 0.5):
                break

        assert processor.returncode == 0, "an hour's grace is not waited out"
    finally:
        stack.restart("processor")
    job = await wait_until(api, job_id, lambda job: job["state"] == "RUNNING" and job["attempt"] == 2)
    assert job["errors"] == [], "handed back, not failed"
    await api.post(f"/jobs/{job_id}/cancel", json={"grace_s": 0})
    assert (await wait_for_job(api, job_id))["state"] == "CANCELLED"


def _exited(process, timeout_s: float) -> bool:
    try:
        process.wait(timeout_s)
        return True
    except subprocess.TimeoutExpired:
        return False


# --- cancel and manual retry ---------------------------------------------------------


async def test_a_pending_job_is_cancelled_at_once(api):
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    job_id = await post_job(api, "noop", run_at=later)
    await wait_for_job(api, job_id, states={"PENDING"})

    response = await api.post(f"/jobs/{job_id}/cancel", json={"reason": "not needed"})

    assert response.status_code == 202, response.text
    job = await wait_for_job(api, job_id)
    assert job["state"] == "CANCELLED"
    assert job["cancel_reason"] == "not needed"
    assert job["attempt"] == 0


async def test_a_running_job_is_told_and_stops(api):
    job_id = await post_job(api, "sleep", {"seconds": 60})
    await wait_for_job(api, job_id, states={"RUNNING"})

    response = await api.post(f"/jobs/{job_id}/cancel")

    assert response.status_code == 202
    job = await wait_for_job(api, job_id, timeout_s=30)
    assert job["state"] == "CANCELLED"
    assert job["cancel_requested_at"] is not None


async def test_a_running_job_that_ignores_the_cancel_is_cancelled_after_the_grace(api):
    job_id = await post_job(api, "sleep", {"seconds": 60, "ignore_cancel": True})
    await wait_for_job(api, job_id, states={"RUNNING"})

    await api.post(f"/jobs/{job_id}/cancel", json={"grace_s": 1})

    job = await wait_for_job(api, job_id, timeout_s=30)
    assert job["state"] == "CANCELLED"
    requested, finished = at(job["cancel_requested_at"]), at(job["finished_at"])
    assert finished - requested >= timedelta(seconds=1)


async def test_cancelling_a_finished_job_is_a_409_problem(api):
    job_id = await post_job(api, "noop")
    await wait_for_job(api, job_id)

    response = await api.post(f"/jobs/{job_id}/cancel")

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:jobledger:problem:invalid-transition"
    assert response.json()["state"] == "SUCCEEDED"


async def test_a_failed_job_is_retried_by_hand_with_a_fresh_budget(api):
    job_id = await post_job(api, "fail", max_attempts=1)
    await wait_for_job(api, job_id)

    response = await api.post(f"/jobs/{job_id}/retry")

    assert response.status_code == 202, response.text
    job = await wait_until(api, job_id, lambda job: job["state"] == "FAILED" and job["attempt"] == 2)
    assert len(job["errors"]) == 2
    types = [short_type(e) for e in await events_of(api, job_id)]
    assert "retried" in types


async def test_retrying_a_job_that_did_not_fail_is_a_409_problem(api):
    job_id = await post_job(api, "noop")
    await wait_for_job(api, job_id)

    response = await api.post(f"/jobs/{job_id}/retry")

    assert response.status_code == 409
    assert response.json()["type"] == "urn:jobledger:problem:invalid-transition"


# --- idempotent submit and run_at ----------------------------------------------------


async def test_one_idempotency_key_yields_one_job(api, db, stack):
    key = f"order-{uuid.uuid4()}"
    body = {"type": "sleep", "payload": {"seconds": 0.1}}

    first = await api.post("/jobs", json=body, headers={"Idempotency-Key": key})
    again = await api.post("/jobs", json=body, headers={"Idempotency-Key": key})
    await wait_for_job(api, first.json()["id"])
    later = await api.post("/jobs", json=body, headers={"Idempotency-Key": key})
    misuse = await api.post("/jobs", json={**body, "payload": {"seconds": 2}}, headers={"Idempotency-Key": key})

    assert first.status_code == 202
    assert again.status_code == 200 and later.status_code == 200
    assert first.json()["id"] == again.json()["id"] == later.json()["id"]
    assert later.json()["state"] == "SUCCEEDED"
    assert misuse.status_code == 422
    assert misuse.json()["type"] == "urn:jobledger:problem:idempotency-key-reused"
    assert misuse.json()["errors"][0]["field"] == "header.Idempotency-Key"
    await drained(stack)
    assert await db["job_events"].count_documents({"job_id": first.json()["id"], "type": "jobledger.job.submitted"}) == 1


async def test_a_job_for_later_waits_for_its_run_at(api):
    run_at = datetime.now(timezone.utc) + timedelta(seconds=2)
    job_id = await post_job(api, "noop", run_at=run_at.isoformat())

    pending = await wait_for_job(api, job_id, states={"PENDING"})
    assert abs(at(pending["next_attempt_at"]) - run_at) < timedelta(milliseconds=1)

    job = await wait_for_job(api, job_id)
    assert job["state"] == "SUCCEEDED"
    assert at(job["started_at"]) >= run_at


# --- priorities ----------------------------------------------------------------------


async def test_with_every_slot_taken_a_high_priority_job_starts_before_the_waiting_low_ones(api):
    from services.processor.settings import ProcessorSettings

    slots = ProcessorSettings().runner_concurrency
    blockers = [await post_job(api, "sleep", {"seconds": 3 + slot / 2}) for slot in range(slots)]  # slots free one by one
    for blocker in blockers:
        await wait_for_job(api, blocker, states={"RUNNING"})
    batch = [{"type": "noop", "priority": "low"}] * 4 + [{"type": "noop", "priority": "high"}]
    items = (await api.post("/jobs:batch", json={"jobs": batch})).json()["items"]  # one append: all wait together
    *lows, high = [item["id"] for item in items]

    finished = {job_id: await wait_for_job(api, job_id) for job_id in [*lows, high]}

    started = {job_id: at(job["started_at"]) for job_id, job in finished.items()}
    # <=: the API's times are in milliseconds, and a no-op high job frees its
    # slot for the first low one within the same millisecond.
    assert all(started[high] <= started[low] for low in lows), (
        f"the runner's buffer hands out high before low: high started {finished[high]['started_at']}, "
        f"the lows {[finished[low]['started_at'] for low in lows]}"
    )


# --- progress and streams ----------------------------------------------------------------


async def test_the_stream_pushes_progress_in_order_and_closes_at_the_end(api):
    job_id = await post_job(api, "sleep", {"seconds": 2.5})

    messages = []
    async with api.stream("GET", f"/jobs/{job_id}/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = {}
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event["event"] = line.split(":", 1)[1].strip()
            elif line.startswith("id:"):
                event["id"] = int(line.split(":", 1)[1])
            elif line.startswith("data:"):
                event["data"] = orjson.loads(line.split(":", 1)[1])
            elif not line and event:
                messages.append(event)
                event = {}

    kinds = [m["event"].rsplit(".", 1)[-1] for m in messages]
    assert kinds[:3] == ["submitted", "queued", "started"]
    assert kinds[-1] == "succeeded"
    assert [m["id"] for m in messages] == list(range(1, len(messages) + 1))
    progress = [m["data"]["progress"] for m in messages if m["event"].endswith("progressed")]
    assert len(progress) >= 2
    assert progress == sorted(progress)
    assert messages[-1]["data"]["state"] == "SUCCEEDED"


async def test_the_stream_resumes_after_last_event_id(api):
    job_id = await post_job(api, "noop")
    await wait_for_job(api, job_id)

    response = await api.get(f"/jobs/{job_id}/stream", headers={"Last-Event-ID": "2"})

    ids = [int(line.split(":", 1)[1]) for line in response.text.splitlines() if line.startswith("id:")]
    assert ids == [3, 4]


# --- queries ------------------------------------------------------------------------------


async def test_jobs_are_filtered_by_label_and_paged_with_a_cursor(api, stack):
    batch = uuid.uuid4().hex
    ids = [await post_job(api, "noop", labels={"batch": batch}, priority="low") for _ in range(5)]
    await post_job(api, "noop", labels={"batch": "other"})
    for job_id in ids:
        await wait_for_job(api, job_id)
    await drained(stack)  # listings are the read model's

    seen, cursor, pages = [], None, 0
    while True:
        params = {"label": f"batch:{batch}", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/jobs", params=params)).json()
        seen += [job["id"] for job in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == list(reversed(ids)), "newest first, each job once"
    low = (await api.get("/jobs", params={"label": f"batch:{batch}", "priority": "low", "type": "noop"})).json()
    assert len(low["items"]) == 5
    bad = await api.get("/jobs", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422


async def test_status_counts_jobs_per_state_and_reports_lag(api, stack):
    job_id = await post_job(api, "noop")
    await wait_for_job(api, job_id)
    await drained(stack)  # counts come from the read model, which may trail the log's tail

    status = (await api.get("/status")).json()

    assert status["jobs"]["SUCCEEDED"] >= 1

    assert set(status["jobs"]) == {"PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "REJECTED"}
    # the runners' group exists only where runner-only processes joined it (an earlier test's, say)
    assert {"decider", "projector", "logs"} <= set(status["lag"]) <= {"decider", "runner", "projector", "logs"}


async def test_a_runner_runs_up_to_its_concurrency_at_once(api):
    ids = await asyncio.gather(*(post_job(api, "sleep", {"seconds": 1}) for _ in range(6)))

    jobs = [await wait_for_job(api, job_id) for job_id in ids]

    assert {job["state"] for job in jobs} == {"SUCCEEDED"}
    intervals = [(at(job["started_at"]), at(job["finished_at"])) for job in jobs]
    overlapping = max(sum(start <= moment < end for start, end in intervals) for moment, _ in intervals)
    assert 2 <= overlapping <= 3, "the default concurrency is 3 per runner"


# --- concurrency keys ------------------------------------------------------------------------


async def test_jobs_sharing_a_concurrency_key_never_overlap(api):
    key = f"provider-{uuid.uuid4().hex[:8]}"
    ids = [await post_job(api, "sleep", {"seconds": 0.2}, concurrency_key=key, concurrency_limit=1) for _ in range(10)]

    jobs = [await wait_for_job(api, job_id) for job_id in ids]

    assert {job["state"] for job in jobs} == {"SUCCEEDED"}
    intervals = []
    for job_id in ids:
        events = await events_of(api, job_id)
        started = next(at(e["time"]) for e in events if short_type(e) == "started")
        ended = next(at(e["time"]) for e in events if short_type(e) == "succeeded")
        assert "slot_requested" in [short_type(e) for e in events]
        intervals.append((started, ended))
    intervals.sort()
    for (_, end), (next_start, _) in pairwise(intervals):
        assert next_start >= end, "a job with the key started before the previous one ended"


async def test_a_concurrency_limit_of_two_runs_two_at_a_time(api):
    key = f"pair-{uuid.uuid4().hex[:8]}"
    ids = [await post_job(api, "sleep", {"seconds": 0.5}, concurrency_key=key, concurrency_limit=2) for _ in range(4)]

    jobs = [await wait_for_job(api, job_id) for job_id in ids]

    intervals = [(at(job["started_at"]), at(job["finished_at"])) for job in jobs]
    most = max(sum(start <= moment < end for start, end in intervals) for moment, _ in intervals)
    assert most <= 2


async def test_on_conflict_reject_refuses_while_the_key_is_busy(api):
    key = f"exclusive-{uuid.uuid4().hex[:8]}"
    first = await post_job(api, "sleep", {"seconds": 30}, concurrency_key=key, on_conflict="reject")
    await wait_for_job(api, first, states={"RUNNING"})

    response = await api.post("/jobs", json={"type": "noop", "concurrency_key": key, "on_conflict": "reject"})

    assert response.status_code == 409
    problem = response.json()
    assert problem["type"] == "urn:jobledger:problem:concurrency-limit-reached"
    refused = (await api.get(f"/jobs/{problem['job_id']}")).json()
    assert (refused["state"], refused["error_type"]) == ("REJECTED", "concurrency-limit-reached"), "the refusal is on the job"
    assert [short_type(e) for e in await events_of(api, problem["job_id"])] == ["submitted", "slot_requested", "rejected"]
    await api.post(f"/jobs/{first}/cancel")
    await wait_for_job(api, first)
    later = await api.post("/jobs", json={"type": "noop", "concurrency_key": key, "on_conflict": "reject"})
    assert later.status_code == 202
    assert (await wait_for_job(api, later.json()["id"]))["state"] == "SUCCEEDED"


async def test_racing_rejecting_submits_never_pass_the_limit(api):
    key = f"race-{uuid.uuid4().hex[:8]}"
    body = {"type": "sleep", "payload": {"seconds": 30}, "concurrency_key": key, "concurrency_limit": 2, "on_conflict": "reject"}

    answers = await asyncio.gather(*(api.post("/jobs", json=body) for _ in range(6)))
    batch = (await api.post("/jobs:batch", json={"jobs": [body, body]})).json()

    assert sorted(answer.status_code for answer in answers) == [202, 202, 409, 409, 409, 409]
    assert [item["status"] for item in batch["items"]] == [409, 409], batch
    for answer in answers:
        if answer.status_code == 202:
            await api.post(f"/jobs/{answer.json()['id']}/cancel", json={"grace_s": 0})


async def test_a_cancelled_waiting_job_gives_its_place_up(api):
    key = f"queue-{uuid.uuid4().hex[:8]}"
    holder = await post_job(api, "sleep", {"seconds": 1}, concurrency_key=key)
    waiting = await post_job(api, "noop", concurrency_key=key)
    after = await post_job(api, "noop", concurrency_key=key)

    await api.post(f"/jobs/{waiting}/cancel")

    assert (await wait_for_job(api, waiting))["state"] == "CANCELLED"
    assert (await wait_for_job(api, holder))["state"] == "SUCCEEDED"
    assert (await wait_for_job(api, after))["state"] == "SUCCEEDED"


async def test_runner_only_processes_take_the_work_the_processors_runner_has_no_slot_for(api, stack):
    stack.start_runner("runner-2")
    try:
        runners: set[str] = set()
        deadline = asyncio.get_running_loop().time() + 60
        while len(runners) < 2:
            assert asyncio.get_running_loop().time() < deadline, f"only {runners} ran jobs"
            ids = await asyncio.gather(*(post_job(api, "sleep", {"seconds": 0.3}) for _ in range(8)))
            for job_id in ids:
                job = await wait_for_job(api, job_id)
                started = [e for e in await events_of(api, job_id) if short_type(e) == "started"]
                runners.update(e["data"]["runner_id"] for e in started)
                assert job["state"] == "SUCCEEDED"
    finally:
        stack.stop_service("runner-2")


async def test_no_job_is_stranded_while_runners_join_and_leave(api, stack):
    """Attempts claimed or running on a partition that a rebalance moves away
    must still finish: their answers land where the runner no longer reads."""
    loop = asyncio.get_running_loop()
    submitted: list[str] = []

    async def keep_submitting(seconds: float) -> None:
        until = loop.time() + seconds
        while loop.time() < until:  # more work than the processor's own 3 slots: runner-3 takes some
            submitted.extend(await asyncio.gather(*(post_job(api, "sleep", {"seconds": 0.1}) for _ in range(4))))
            await asyncio.sleep(0.05)

    stack.start_runner("runner-3")
    try:
        await keep_submitting(8)  # across the join
    finally:
        stack.stop_service("runner-3")
    await keep_submitting(6)  # across the leave
    for job_id in submitted:
        job = await wait_for_job(api, job_id)
        assert job["state"] == "SUCCEEDED", job


# --- the processor's own runner ------------------------------------------------------------------


async def test_a_short_job_costs_one_command_in_the_log(api, stack):
    """The processor's decider hands the attempt to its own runner and decides
    the runner's reports in memory: only the SubmitJob travels through jobs.commands."""
    job_id = await post_job(api, "noop")
    assert (await wait_for_job(api, job_id))["state"] == "SUCCEEDED"
    await drained(stack)

    records = await read_topic(stack, "jobs.commands", lambda records: any(r.key == job_id.encode() for r in records))
    commands = [record for record in records if record.key == job_id.encode()]
    assert [orjson.loads(record.value)["type"] for record in commands] == ["SubmitJob"]
    kinds = [short_type(event) for event in await events_of(api, job_id)]
    assert kinds == ["submitted", "queued", "started", "succeeded"]


async def test_attempts_queued_behind_a_busy_runner_run_after_their_processor_is_killed(api, stack):
    """The restarted processor rebuilds the work of its queued attempts from
    the jobs' states (nothing hands their events over again)."""
    busy = [await post_job(api, "sleep", {"seconds": 8}, max_attempts=2, backoff={"base_s": 0}) for _ in range(3)]
    for job_id in busy:
        await wait_for_job(api, job_id, states={"RUNNING"})
    waiting = [await post_job(api, "noop", payload={}) for _ in range(2)]
    for job_id in waiting:
        job = await wait_for_job(api, job_id, states={"QUEUED", "SUCCEEDED"})
        # A slot taken by a job of an earlier test (one still running) lets a busy one end first.
        assert job["state"] == "QUEUED", f"a waiting job ran at once: {[e['data'] for e in await events_of(api, job_id)]}"

    stack.kill("processor")
    stack.restart("processor")

    for job_id in waiting:
        job = await wait_for_job(api, job_id)
        assert job["state"] == "SUCCEEDED" and job["attempt"] == 1, job
    for job_id in busy:
        job = await wait_for_job(api, job_id)
        assert job["state"] == "SUCCEEDED" and [e["error_type"] for e in job["errors"]] == ["lost"], job


# --- restarts ----------------------------------------------------------------------------------


async def test_a_restarted_decider_remembers_finished_jobs_from_disk(api, stack):
    failed = await post_job(api, "fail", max_attempts=1)
    done = await post_job(api, "noop")
    await wait_for_job(api, failed)
    await wait_for_job(api, done)

    stack.restart("processor")  # its state comes back from var/processor/job-states, not from folding the log

    assert (stack.settings.data_dir / "processor" / "job-states").is_dir()
    response = await api.post(f"/jobs/{failed}/retry")
    assert response.status_code == 202, response.text
    job = await wait_until(api, failed, lambda job: job["state"] == "FAILED" and job["attempt"] == 2)
    assert len(job["errors"]) == 2
    again = await api.post(f"/jobs/{done}/retry")
    assert again.status_code == 409  # it SUCCEEDED
    fresh = await post_job(api, "noop")
    assert (await wait_for_job(api, fresh))["state"] == "SUCCEEDED"


# --- schedules (last: they restart the processor) ---------------------------------------------


async def test_bad_schedules_are_422_problems_naming_the_field(api):
    for body, field in [
        ({"cron": "every minute", "job": {"type": "noop"}}, "cron"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus", "job": {"type": "noop"}}, "timezone"),
        ({"cron": "* * * * *", "job": {"type": "sleep", "payload": {"seconds": -1}}}, "job.payload.seconds"),
        ({"cron": "* * * * *", "job": {"type": "noop", "priority": "urgent"}}, "job.priority"),
    ]:
        response = await api.post("/schedules", json=body)
        assert response.status_code == 422, response.text
        assert field in [error["field"] for error in response.json()["errors"]]


async def test_a_schedule_whose_job_says_reject_obeys_the_limit(api):
    key = f"cron-{uuid.uuid4().hex[:8]}"
    job = {"type": "sleep", "payload": {"seconds": 2.5}, "concurrency_key": key, "on_conflict": "reject"}
    schedule_id = (await api.post("/schedules", json={"cron": "* * * * * *", "job": job})).json()["id"]

    async def ticks_rejected() -> list[dict] | None:
        jobs = (await api.get("/jobs", params={"label": f"schedule:{schedule_id}", "limit": 100})).json()["items"]
        return jobs if sum(j["state"] == "REJECTED" for j in jobs) >= 2 else None

    try:
        jobs = await eventually(ticks_rejected, timeout_s=60)
    finally:
        await api.delete(f"/schedules/{schedule_id}")
    ran = sorted((at(j["started_at"]), at(j["finished_at"]) if j["finished_at"] else None) for j in jobs if j["started_at"])
    for (_, first_end), (second_start, _) in pairwise(ran):
        assert first_end is not None and first_end <= second_start, "one job with the key at a time"
    for j in jobs:
        if j["state"] not in ("SUCCEEDED", "REJECTED", "CANCELLED"):
            await api.post(f"/jobs/{j['id']}/cancel", json={"grace_s": 0})


async def test_a_schedule_submits_one_job_per_tick_also_across_a_processor_restart(api, stack):
    from schemas.schedules import Schedule, ScheduleSpec, tick_job_id, ticks_due

    created = await api.post("/schedules", json={"cron": "* * * * * */2", "job": {"type": "noop", "labels": {"k": "v"}}})
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    assert (await api.get(f"/schedules/{schedule_id}")).status_code == 200

    async def jobs_of_schedule() -> list[dict]:
        page = await api.get("/jobs", params={"label": f"schedule:{schedule_id}", "limit": 1000})
        return page.json()["items"]

    async def at_least(count: int) -> bool:
        return len(await jobs_of_schedule()) >= count

    await eventually(lambda: at_least(2))
    stack.restart("processor")
    before_restart = len(await jobs_of_schedule())
    await eventually(lambda: at_least(before_restart + 2))
    deleted = await api.delete(f"/schedules/{schedule_id}")
    assert deleted.status_code == 202 and deleted.json()["deleted"] is True

    async def expected_and_found() -> tuple[list, list[dict]]:
        view = (await api.get(f"/schedules/{schedule_id}")).json()
        spec = ScheduleSpec(cron=view["cron"], timezone=view["timezone"], job_type="noop")
        schedule = Schedule(schedule_id=schedule_id, tenant="default", spec=spec, created_at=at(view["created_at"]))
        return ticks_due(schedule, at(view["last_tick"])), await jobs_of_schedule()

    # A tick's record reaches the read model without the decider; its job goes
    # through it, so wait (bounded) until both have landed, then compare.
    async def landed() -> tuple[list, list[dict]] | None:
        expected, jobs = await expected_and_found()
        return (expected, jobs) if {job["id"] for job in jobs} == {tick_job_id(schedule_id, t) for t in expected} else None

    expected, jobs = await eventually(landed, timeout_s=60)
    assert sorted(job["id"] for job in jobs) == sorted(tick_job_id(schedule_id, tick) for tick in expected), (
        "every tick from creation to the last one has exactly one job"
    )
    tick_of = {tick_job_id(schedule_id, tick): tick for tick in expected}
    for job in jobs:
        assert job["labels"] == {"k": "v", "schedule": schedule_id}
        assert at(job["created_at"]) >= tick_of[job["id"]], "no job before its tick"
    listed = (await api.get("/schedules")).json()["items"]
    assert schedule_id not in [item["id"] for item in listed], "read-your-writes: a deleted schedule is not listed"
    assert (await api.get(f"/schedules/{schedule_id}")).json()["deleted"] is True


async def test_a_paused_schedule_submits_nothing_until_resumed_and_a_trigger_runs_its_job_now(api, stack):
    created = await api.post("/schedules", json={"cron": "* * * * * */1", "job": {"type": "noop"}})
    schedule_id = created.json()["id"]
    paused = await api.post(f"/schedules/{schedule_id}/pause")
    assert paused.status_code == 202 and paused.json()["paused"] is True and paused.json()["next_tick"] is None

    async def jobs_of_schedule() -> set[str]:
        page = await api.get("/jobs", params={"label": f"schedule:{schedule_id}", "limit": 1000})
        return {job["id"] for job in page.json()["items"]}

    await drained(stack)
    before = await jobs_of_schedule()
    stack.restart("processor")  # the pause is a record of the schedule's log: a restarted scheduler folds it again
    await wait_for_job(api, await post_job(api, "noop"))  # the restarted processor decides again
    await asyncio.sleep(2.5)  # ticks fall meanwhile, and submit nothing
    await drained(stack)
    assert await jobs_of_schedule() == before
    assert (await api.get(f"/schedules/{schedule_id}")).json()["paused"] is True

    triggered = await api.post(f"/schedules/{schedule_id}/trigger")
    assert triggered.status_code == 202
    job = await wait_for_job(api, triggered.json()["id"])
    assert job["state"] == "SUCCEEDED" and job["labels"] == {"schedule": schedule_id}

    resumed = await api.post(f"/schedules/{schedule_id}/resume")
    assert resumed.json()["paused"] is False and resumed.json()["next_tick"] is not None
    await eventually(lambda: _more(jobs_of_schedule, len(before) + 2))
    await api.delete(f"/schedules/{schedule_id}")
    assert (await api.post(f"/schedules/{schedule_id}/trigger")).status_code == 409


async def _more(count_of, wanted: int) -> bool:
    return len(await count_of()) >= wanted
