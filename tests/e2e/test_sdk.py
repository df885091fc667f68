"""The Python SDK and the job commands of the CLI, against the running stack."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import pytest

from jobledger import AsyncClient, Client, ClientClosed, Invalid, JobFailed, NotFound
from schemas import JobStatus
from tests.e2e.conftest import drained, jobledger

pytestmark = pytest.mark.e2e


def test_a_script_submits_follows_and_waits_and_hears_the_callback(stack):
    batch = uuid.uuid4().hex
    heard = threading.Event()
    seen: list = []
    with Client(stack.api_url) as client:
        job = client.submit("sleep", {"seconds": 1.2}, labels={"batch": batch}, priority="high")
        job.on_done(lambda done: (seen.append(done.result), heard.set()))
        updates = list(job.follow())
        done = job.wait(timeout=60)
        job.settled(timeout=30)
        asyncio.run(drained(stack))  # the list is the read model's
        listed = [listed.id for listed in client.list(labels={"batch": batch})]
        history = client.events(job.id)

    assert updates[-1].state is JobStatus.SUCCEEDED
    assert any(update.progress and 0 < update.progress < 100 for update in updates), "progress is heard while it runs"
    assert [update.seq for update in updates] == sorted({update.seq for update in updates})
    assert done.result == {"slept": 1.2} and heard.is_set() and seen == [{"slept": 1.2}]
    assert listed == [job.id]
    assert [event["seq"] for event in history] == list(range(1, done.version + 1))


def test_a_failed_job_raises_with_its_error_and_runs_the_error_callback(stack):
    errors: list = []
    with Client(stack.api_url) as client:
        job = client.submit("fail", {"message": "disk full", "retryable": False})
        job.on_error(errors.append)
        with pytest.raises(JobFailed) as failed:
            job.wait(timeout=60)
        job.settled(timeout=30)

    assert failed.value.job.state is JobStatus.FAILED and failed.value.job.error == "disk full"
    assert "disk full" in str(failed.value)
    assert len(errors) == 1 and isinstance(errors[0], JobFailed)


async def test_the_async_client_maps_refusals_to_typed_errors_and_cancels(stack):
    async with AsyncClient(stack.api_url) as client:
        with pytest.raises(Invalid) as invalid:
            await client.submit("sleep", {"seconds": -1})
        with pytest.raises(NotFound):
            await client.get("no-such-job")
        job = await client.submit("sleep", {"seconds": 30})
        async for update in job.follow():
            if update.state is JobStatus.RUNNING:
                break
        await job.cancel(reason="not needed", grace_s=1)
        with pytest.raises(JobFailed) as cancelled:
            await job.wait(timeout=60)
        await job.retry()
        async for update in job.follow(after_seq=cancelled.value.job.version):
            if update.state is JobStatus.RUNNING:
                break
        await job.cancel(grace_s=0)
        with pytest.raises(JobFailed) as cancelled_again:
            await job.wait(timeout=60)  # the retried run's end, not the first one's

    assert [error["field"] for error in invalid.value.errors] == ["payload.seconds"]
    assert cancelled.value.job.state is JobStatus.CANCELLED and cancelled.value.job.cancel_reason == "not needed"
    assert cancelled_again.value.job.version > cancelled.value.job.version
    assert cancelled_again.value.job.attempt == cancelled.value.job.attempt + 1


async def test_the_cli_waits_with_a_progress_bar_and_exits_non_zero_when_the_job_fails(stack):
    ok = await asyncio.to_thread(jobledger, stack, "submit", "sleep", "--payload", '{"seconds": 0.5}', "--wait", "--json")
    failed = await asyncio.to_thread(
        jobledger, stack, "submit", "fail", "-p", '{"message": "nope", "retryable": false}', "--wait"
    )
    missing = await asyncio.to_thread(jobledger, stack, "get", "no-such-job")
    bad = await asyncio.to_thread(jobledger, stack, "submit", "sleep", "-p", '{"seconds": -1}')

    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["state"] == "SUCCEEDED"
    assert failed.returncode == 1 and "nope" in failed.stdout
    assert "Traceback (most recent call last)" in failed.stdout, "the handler's traceback, to find the bug"
    assert missing.returncode == 3 and "404" in missing.stderr
    assert bad.returncode == 3 and "payload.seconds" in bad.stderr
    job_id = json.loads(ok.stdout)["id"]
    await drained(stack)
    listed = await asyncio.to_thread(jobledger, stack, "ls", "--type", "sleep", "--limit", "50", "--json")
    events = await asyncio.to_thread(jobledger, stack, "events", job_id, "--json")
    assert job_id in [job["id"] for job in json.loads(listed.stdout)]
    assert [event["seq"] for event in json.loads(events.stdout)][:2] == [1, 2]


async def test_schedules_from_the_sdk_and_the_cli(stack):
    async with AsyncClient(stack.api_url) as client:
        created = await client.schedule("0 3 * * *", "noop", timezone="Europe/Berlin", labels={"from": "sdk"})
        await drained(stack)  # listings are the read model's
        listed = [schedule.id for schedule in await client.schedules()]
        fetched = await client.get_schedule(created.id)

    from_cli = await asyncio.to_thread(jobledger, stack, "schedules", "ls", "--json")
    table = await asyncio.to_thread(jobledger, stack, "schedules", "ls", env={"COLUMNS": "80"})
    removed = await asyncio.to_thread(jobledger, stack, "schedules", "rm", created.id)
    async with AsyncClient(stack.api_url) as client:
        after = await client.get_schedule(created.id)

    assert created.id in listed and fetched.timezone == "Europe/Berlin" and fetched.next_tick is not None
    assert fetched.job["labels"] == {"from": "sdk"}
    assert created.id in [schedule["id"] for schedule in json.loads(from_cli.stdout)]
    assert any(created.id in line and "0 3 * * *" in line for line in table.stdout.splitlines()), table.stdout
    assert removed.returncode == 0 and after.deleted


async def test_the_cli_follows_a_pipeline_step_by_step_and_downloads_its_artifact(stack, tmp_path):
    steps = [
        {"name": "book", "type": "noop", "payload": {}, "compensate": {"type": "noop"}},
        {"name": "ship", "type": "fail", "payload": {"message": "no truck", "retryable": False}, "depends_on": ["book"]},
    ]
    failed = await asyncio.to_thread(jobledger, stack, "submit", "pipeline", "--steps", json.dumps(steps), "--wait")
    exported = await asyncio.to_thread(
        jobledger,
        stack,
        "submit",
        "pipeline",
        "-p",
        '{"object": {"a": 1}}',
        "--wait",
        "--json",
        "--steps",
        '[{"name": "export", "type": "export", "payload": {"pad_to_bytes": 100000}}]',
    )

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "book" in failed.stderr and "COMPENSATED" in failed.stderr, "a bar per step, with its state"
    assert "step book" in failed.stdout and "COMPENSATED" in failed.stdout and "compensated true" in failed.stdout
    assert exported.returncode == 0, exported.stderr
    job = json.loads(exported.stdout)
    artifact = [step for step in job["steps"] if step["name"] == "export"][0]["artifact"]
    target = tmp_path / "export.json"
    downloaded = await asyncio.to_thread(jobledger, stack, "artifact", job["id"], "export", "-o", str(target))
    assert downloaded.returncode == 0, downloaded.stderr
    assert target.stat().st_size == artifact["size"]
    with Client(stack.api_url) as client:
        assert client.artifact(job["id"], "export") == target.read_bytes()


async def test_the_cli_and_the_sdk_watch_every_job_of_the_tenant_live(stack):
    with Client(stack.api_url) as client:
        with client.watch() as events:  # listening from here on
            job = client.submit("noop")
            for event in events:
                if event["subject"] == job.id and event["type"] == "jobledger.job.succeeded":
                    break
        watching = asyncio.create_task(asyncio.to_thread(jobledger, stack, "watch", "--limit", "1", "--json", timeout_s=60))
        while not watching.done():  # the command connects in its own time: give it events until it heard one
            client.submit("noop")
            await asyncio.sleep(0.5)
    watched = await watching

    assert watched.returncode == 0, watched.stderr
    assert "Task was destroyed" not in watched.stderr, "a clean exit after --limit"
    [event] = [json.loads(line) for line in watched.stdout.splitlines()]
    assert event["type"].startswith("jobledger.") and event["tenant"] == "default"


async def test_the_cli_takes_the_ids_it_shows_and_the_labels_the_api_writes(stack):
    batch = uuid.uuid4().hex[:12]
    with Client(stack.api_url) as client:
        job = client.submit("sleep", {"seconds": 1.5}, labels={"batch": batch})
    followed = await asyncio.to_thread(jobledger, stack, "follow", job.id)
    await drained(stack)

    listed = await asyncio.to_thread(jobledger, stack, "ls", "--label", f"batch:{batch}", env={"COLUMNS": "80"})
    same = await asyncio.to_thread(jobledger, stack, "ls", "--label", f"batch={batch}", "--json")
    by_prefix = await asyncio.to_thread(jobledger, stack, "get", job.id[:8], "--json")
    unknown = await asyncio.to_thread(jobledger, stack, "get", "zzzzzzzz")

    assert job.id in listed.stdout, f"the whole id, copyable, at 80 columns:\n{listed.stdout}"
    [row] = [line for line in listed.stdout.splitlines() if job.id in line]
    assert "SUCCEEDED" in row, f"a job's row on one line, nothing wrapped:\n{listed.stdout}"
    assert [listed_job["id"] for listed_job in json.loads(same.stdout)] == [job.id]
    assert by_prefix.returncode == 0 and json.loads(by_prefix.stdout)["id"] == job.id, by_prefix.stderr
    assert unknown.returncode == 3 and "no job of yours has an id starting with 'zzzzzzzz'" in unknown.stderr
    running = [line for line in followed.stdout.splitlines() if "RUNNING" in line]
    assert any("%" in line for line in running), f"progress in follow:\n{followed.stdout}"
    assert not any(line.count("RUNNING") > 1 for line in running), followed.stdout


def test_the_blocking_calls_map_refusals_and_wait_past_a_retried_jobs_first_end(stack):
    with Client(stack.api_url) as client:
        with pytest.raises(Invalid) as invalid:
            client.submit("sleep", {"seconds": -1})
        with pytest.raises(NotFound):
            client.get("no-such-job")
        job = client.submit("fail", {"message": "first run", "retryable": False}, idempotency_key=uuid.uuid4().hex)
        with pytest.raises(JobFailed) as failed:
            job.wait(timeout=60)
        job.retry()
        with pytest.raises(JobFailed) as failed_again:
            job.wait(timeout=60)  # the retried run's end, not the first one's
        seen = client.get(job.id)

    assert [error["field"] for error in invalid.value.errors] == ["payload.seconds"]
    assert failed_again.value.job.attempt == failed.value.job.attempt + 1
    assert seen.version == failed_again.value.job.version


def test_a_client_starts_its_loop_thread_when_a_call_needs_it_and_refuses_calls_once_closed(stack):
    def loop_threads() -> int:
        return sum(thread.name == "jobledger-client" for thread in threading.enumerate())

    before = loop_threads()
    with Client(stack.api_url) as client:
        job = client.submit("noop")
        assert job.wait(timeout=60).state == JobStatus.SUCCEEDED
        assert loop_threads() == before, "submit, wait and get need no event loop"
        client.workers()
        assert loop_threads() == before + 1
    assert loop_threads() == before
    for call in (lambda: client.submit("noop"), lambda: client.get(job.id), client.workers, lambda: job.cancel()):
        with pytest.raises(ClientClosed):
            call()

    async def closed_async() -> None:
        async with AsyncClient(stack.api_url) as other:
            pass
        with pytest.raises(ClientClosed):
            await other.get(job.id)

    asyncio.run(closed_async())
