"""Pipelines through the real wire: steps in dependency order, parallel
branches, SAGA compensation on failure and on cancel, and the 422 a graph
that cannot run gets."""

from __future__ import annotations

import base64
import hashlib
from itertools import pairwise

import httpx
import orjson
import pytest

from tests.e2e.conftest import FUZZ_KEY, eventually, wait_for_job, wait_until

pytestmark = pytest.mark.e2e


async def submit_pipeline(api, steps: list[dict], **body) -> str:
    response = await api.post("/jobs", json={"type": "pipeline", "steps": steps, **body})
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def event_types(api, job_id: str) -> list[tuple[str, str | None]]:
    response = await api.get(f"/jobs/{job_id}/events")
    assert response.status_code == 200, response.text
    return [(event["type"], event["data"].get("step")) for event in response.json()["items"]]


def steps_by_name(job: dict) -> dict[str, dict]:
    return {step["name"]: step for step in job["steps"]}


async def test_the_five_demo_operations_run_in_dependency_order_and_export_the_object(api):
    obj = {"Full Name": "  Ada Lovelace ", "bornYear": 1815, "notes": "first programmer"}

    job_id = await submit_pipeline(api, [{"name": "export", "type": "export"}], payload={"object": obj})
    job = await wait_for_job(api, job_id)

    assert job["state"] == "SUCCEEDED", job
    steps = steps_by_name(job)
    order = ["validate", "transform", "enrich", "analyze", "export"]
    assert [step["name"] for step in job["steps"]] == order
    for before, after in pairwise(order):
        assert steps[before]["finished_at"] <= steps[after]["started_at"], f"{after} started before {before} ended"
    exported = job["result"]["export"]
    assert hashlib.sha256(exported["document"].encode()).hexdigest() == exported["sha256"]
    assert '"full_name":"Ada Lovelace"' in exported["document"], "transform's work reached export"
    assert steps["analyze"]["result"]["analysis"]["numeric"]["sum"] == 1815
    assert job["progress"] == 100
    started = [step for kind, step in await event_types(api, job_id) if kind == "jobledger.step.started"]
    assert started == order


async def test_independent_branches_are_queued_together(api):
    job_id = await submit_pipeline(
        api,
        [
            {"name": "a", "type": "noop", "payload": {}},
            {"name": "b", "type": "sleep", "payload": {"seconds": 0.5}, "depends_on": ["a"]},
            {"name": "c", "type": "sleep", "payload": {"seconds": 0.5}, "depends_on": ["a"]},
            {"name": "d", "type": "noop", "payload": {}, "depends_on": ["b", "c"]},
        ],
    )
    job = await wait_for_job(api, job_id)

    assert job["state"] == "SUCCEEDED", job
    steps = steps_by_name(job)
    assert steps["b"]["queued_at"] == steps["c"]["queued_at"], "both branches were queued by a's success"
    assert steps["d"]["started_at"] >= max(steps["b"]["finished_at"], steps["c"]["finished_at"])
    assert job["result"] == {"d": None}


async def test_a_third_step_failing_for_good_compensates_the_first_two_in_reverse_and_fails_compensated(api):
    job_id = await submit_pipeline(
        api,
        [
            {"name": "reserve", "type": "noop", "payload": {}, "compensate": {"type": "noop"}},
            {"name": "charge", "type": "noop", "payload": {}, "depends_on": ["reserve"], "compensate": {"type": "noop"}},
            {"name": "ship", "type": "fail", "payload": {"message": "no truck", "retryable": False}, "depends_on": ["charge"]},
        ],
    )
    job = await wait_for_job(api, job_id)

    assert job["state"] == "FAILED"
    assert job["compensated"] is True and job["failed_step"] == "ship"
    assert job["error"] == "step 'ship' failed: no truck"
    assert {name: step["state"] for name, step in steps_by_name(job).items()} == {
        "reserve": "COMPENSATED",
        "charge": "COMPENSATED",
        "ship": "FAILED",
    }
    compensated = [step for kind, step in await event_types(api, job_id) if kind == "jobledger.step.compensated"]
    assert compensated == ["charge", "reserve"], "latest completed, first undone"


async def test_cancelling_a_running_pipeline_stops_the_running_step_and_compensates(api):
    job_id = await submit_pipeline(
        api,
        [
            {"name": "book", "type": "noop", "payload": {}, "compensate": {"type": "noop"}},
            {"name": "wait", "type": "sleep", "payload": {"seconds": 60}, "depends_on": ["book"]},
            {"name": "never", "type": "noop", "payload": {}, "depends_on": ["wait"]},
        ],
    )
    await wait_until(api, job_id, lambda job: steps_by_name(job)["wait"]["state"] == "RUNNING")

    response = await api.post(f"/jobs/{job_id}/cancel", json={"reason": "changed my mind"})
    assert response.status_code == 202, response.text
    job = await wait_for_job(api, job_id)

    assert job["state"] == "CANCELLED"
    assert job["compensated"] is True
    assert {name: step["state"] for name, step in steps_by_name(job).items()} == {
        "book": "COMPENSATED",
        "wait": "CANCELLED",
        "never": "SKIPPED",
    }


async def test_a_stopping_processor_hands_the_running_step_back_and_the_pipeline_goes_on(api, stack):
    stack.restart("processor", shutdown_grace_s="0")  # this once: stopped, it hands back at once
    job_id = await submit_pipeline(
        api,
        [
            {"name": "first", "type": "noop", "payload": {}},
            {"name": "long", "type": "sleep", "payload": {"seconds": 60}, "depends_on": ["first"]},
        ],
        max_attempts=1,
    )
    await wait_until(api, job_id, lambda job: steps_by_name(job)["long"]["state"] == "RUNNING")

    stack.restart("processor")

    job = await wait_until(api, job_id, lambda job: steps_by_name(job)["long"]["attempt"] == 2, timeout_s=60)
    long = steps_by_name(job)["long"]
    assert long["state"] in ("QUEUED", "RUNNING") and long["errors"] == [], "handed back, not failed"
    kinds = [kind.removeprefix("jobledger.") for kind, step in await event_types(api, job_id) if step == "long"]
    assert kinds[kinds.index("step.released") :][:2] == ["step.released", "step.queued"], kinds
    await api.post(f"/jobs/{job_id}/cancel", json={"grace_s": 0})
    assert (await wait_for_job(api, job_id))["state"] == "CANCELLED"


async def test_a_cycle_is_a_422_naming_it(api):
    response = await api.post(
        "/jobs",
        json={
            "type": "pipeline",
            "steps": [
                {"name": "a", "type": "noop", "depends_on": ["b"]},
                {"name": "b", "type": "noop", "depends_on": ["a"]},
            ],
        },
    )

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "steps.0.depends_on"
    assert "cycle: a → b → a" in error["message"]


async def download(api, job_id: str, name: str) -> httpx.Response:
    response = await api.get(f"/jobs/{job_id}/artifacts/{name}")
    assert response.status_code == 200, response.text
    return response


async def test_a_large_step_result_round_trips_through_the_s3_store_with_a_matching_sha256(api, stack):
    job_id = await submit_pipeline(
        api,
        [{"name": "export", "type": "export"}],
        payload={"object": {"a": 1}},
    )
    job = await wait_for_job(api, job_id)
    assert job["state"] == "SUCCEEDED", job
    assert job["steps"][-1]["artifact"] is None, "a small result stays in the log"

    big = await submit_pipeline(
        api,
        [
            {"name": "export", "type": "export", "payload": {"pad_to_bytes": 200_000}},
            {"name": "check", "type": "noop", "payload": {}, "depends_on": ["export"]},
        ],
        payload={"object": {"a": 1}},
    )
    job = await wait_for_job(api, big)

    assert job["state"] == "SUCCEEDED", job
    export = {step["name"]: step for step in job["steps"]}["export"]
    artifact = export["artifact"]
    assert export["result"] is None and artifact["size"] > 200_000
    assert artifact["href"] == f"/jobs/{big}/artifacts/export" and artifact["uri"].startswith("s3://")
    response = await download(api, big, "export")
    assert hashlib.sha256(response.content).hexdigest() == artifact["sha256"]
    assert response.headers["repr-digest"] == f"sha-256=:{base64.b64encode(bytes.fromhex(artifact['sha256'])).decode()}:"
    assert len(orjson.loads(response.content)["document"]) >= 200_000

    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {FUZZ_KEY}"}) as other:
        assert (await other.get(f"/jobs/{big}/artifacts/export")).status_code == 404, "another tenant sees nothing"
    assert (await api.get(f"/jobs/{big}/artifacts/check")).status_code == 404, "a small result is no artifact"

    stack.restart("artifacts")

    async def downloaded():
        try:
            response = await api.get(f"/jobs/{big}/artifacts/export")
        except httpx.HTTPError:
            return None
        return response if response.status_code == 200 else None

    again = await eventually(downloaded)
    assert again.content == response.content, "artifacts survive a restart of the store"


async def test_a_plain_jobs_large_result_is_an_artifact_named_result(api):
    response = await api.post("/jobs", json={"type": "export", "payload": {"object": {"b": 2}, "pad_to_bytes": 100_000}})
    assert response.status_code == 202, response.text
    job = await wait_for_job(api, response.json()["id"])

    assert job["state"] == "SUCCEEDED" and job["result"] is None
    downloaded = await download(api, job["id"], "result")
    assert hashlib.sha256(downloaded.content).hexdigest() == job["artifact"]["sha256"]


async def test_a_step_whose_runner_dies_is_declared_lost_and_retried_and_the_pipeline_goes_on(api, stack):
    job_id = await submit_pipeline(
        api,
        [
            {"name": "first", "type": "noop", "payload": {}},
            {"name": "slow", "type": "sleep", "payload": {"seconds": 3}, "depends_on": ["first"]},
            {"name": "last", "type": "noop", "payload": {}, "depends_on": ["slow"]},
        ],
    )
    await wait_until(api, job_id, lambda job: steps_by_name(job)["slow"]["state"] == "RUNNING")

    stack.kill("processor")  # its runner ran the step
    stack.restart("processor")
    job = await wait_for_job(api, job_id)

    assert job["state"] == "SUCCEEDED", job
    slow = steps_by_name(job)["slow"]
    assert slow["attempt"] == 2 and [error["error_type"] for error in slow["errors"]] == ["lost"]
    assert steps_by_name(job)["first"]["attempt"] == 1, "what had succeeded is not run again"


async def test_a_pipeline_goes_on_after_its_decider_is_killed_mid_run(api, stack):
    job_id = await submit_pipeline(
        api,
        [
            {"name": f"s{index}", "type": "sleep", "payload": {"seconds": 1}, "depends_on": [f"s{index - 1}"] if index else []}
            for index in range(4)
        ],
    )
    await wait_until(api, job_id, lambda job: steps_by_name(job)["s1"]["state"] == "RUNNING")

    stack.kill("processor")
    stack.restart("processor")
    job = await wait_for_job(api, job_id)

    assert job["state"] == "SUCCEEDED", job
    assert [step["state"] for step in job["steps"]] == ["SUCCEEDED"] * 4
    kinds = [kind for kind, _ in await event_types(api, job_id)]
    assert kinds.count("jobledger.step.succeeded") == 4, "no step decided twice"


async def test_a_failed_pipeline_retried_runs_again_from_its_first_step(api):
    job_id = await submit_pipeline(
        api,
        [
            {"name": "reserve", "type": "noop", "payload": {}, "compensate": {"type": "noop"}},
            {"name": "ship", "type": "fail", "payload": {"retryable": False}, "depends_on": ["reserve"]},
        ],
    )
    first = await wait_for_job(api, job_id)
    assert first["state"] == "FAILED" and first["attempt"] == 1

    response = await api.post(f"/jobs/{job_id}/retry")
    assert response.status_code == 202, response.text
    again = await wait_until(api, job_id, lambda job: job["attempt"] == 2 and job["state"] == "FAILED")

    reserve = steps_by_name(again)["reserve"]
    assert reserve["state"] == "COMPENSATED"
    assert reserve["attempt"] == 4, "run, compensation, run again, compensation again: attempts number on"
    kinds = [kind for kind, _ in await event_types(api, job_id)]
    assert kinds.count("jobledger.pipeline.started") == 2 and kinds.count("jobledger.job.retried") == 1


async def test_a_schedule_submits_a_pipeline_each_tick(api):
    job = {"type": "pipeline", "pipeline": "object-processing", "payload": {"object": {"tick": 1}}}
    response = await api.post("/schedules", json={"cron": "* * * * * *", "job": job})
    assert response.status_code == 201, response.text
    schedule = response.json()
    assert [step["name"] for step in schedule["job"]["steps"]][-1] == "export"

    async def two_pipelines_done() -> list[dict] | None:
        listed = (await api.get("/jobs", params={"label": f"schedule:{schedule['id']}", "state": "SUCCEEDED"})).json()
        return listed["items"] if len(listed["items"]) >= 2 else None

    try:
        done = await eventually(two_pipelines_done, timeout_s=60)
    finally:
        await api.delete(f"/schedules/{schedule['id']}")
    assert all(job["type"] == "pipeline" and len(job["steps"]) == 5 for job in done)


async def test_a_compensations_large_result_is_an_artifact_of_its_own(api):
    undo = {"type": "export", "payload": {"object": {"undone": True}, "pad_to_bytes": 100_000}}
    job_id = await submit_pipeline(
        api,
        [
            {"name": "reserve", "type": "noop", "payload": {}, "compensate": undo},
            {"name": "ship", "type": "fail", "payload": {"retryable": False}, "depends_on": ["reserve"]},
        ],
    )
    job = await wait_for_job(api, job_id)

    assert job["state"] == "FAILED" and job["compensated"] is True, job
    reserve = steps_by_name(job)["reserve"]
    artifact = reserve["compensation_artifact"]
    assert reserve["artifact"] is None and artifact["href"] == f"/jobs/{job_id}/artifacts/reserve:compensation"
    downloaded = await download(api, job_id, "reserve:compensation")
    assert hashlib.sha256(downloaded.content).hexdigest() == artifact["sha256"]
    assert (await api.get(f"/jobs/{job_id}/artifacts/reserve")).status_code == 404, "the step's own result was small"
