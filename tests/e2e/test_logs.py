"""A job's own log: ctx.log lines through jobs.logs into the read models, paged, capped and followed."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from jobledger import AsyncClient
from tests.conftest import FUZZ_KEY, LOG_LINES
from tests.e2e.conftest import wait_for_job

pytestmark = pytest.mark.e2e

WAIT_S = 30.0


async def submitted(api, job_type: str, payload: dict | None = None, **options) -> str:
    response = await api.post("/jobs", json={"type": job_type, "payload": payload or {}, **options})
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def lines_until(api, job_id: str, count: int) -> list[dict]:
    """The job's stored lines once there are ``count`` (one page of up to 1,000)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        response = await api.get(f"/jobs/{job_id}/logs", params={"limit": 1000})
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        if len(items) >= count:
            return items
        assert asyncio.get_running_loop().time() < deadline, f"{len(items)} of {count} lines after {WAIT_S} s"
        await asyncio.sleep(0.1)


async def test_a_handlers_lines_are_stored_in_order_and_paged(api):
    job_id = await submitted(api, "echo", {"message": "row", "lines": 5})
    await wait_for_job(api, job_id)

    lines = await lines_until(api, job_id, 5)
    first = await api.get(f"/jobs/{job_id}/logs", params={"limit": 2})
    rest = await api.get(f"/jobs/{job_id}/logs", params={"cursor": first.json()["next_cursor"]})

    assert [(line["index"], line["message"], line["fields"], line["level"], line["attempt"]) for line in lines] == [
        (number, f"row {number}", {"line": number}, "info", 1) for number in range(1, 6)
    ]
    assert [line["index"] for line in first.json()["items"]] == [1, 2]
    assert [line["index"] for line in rest.json()["items"]] == [3, 4, 5]
    assert (await api.get(f"/jobs/{job_id}/logs", params={"cursor": "-1"})).status_code == 422


async def test_each_attempt_writes_its_own_lines(api):
    job_id = await submitted(api, "flaky", {"failures": 2}, max_attempts=3, backoff={"base_s": 0.05, "jitter": 0})
    assert (await wait_for_job(api, job_id))["state"] == "SUCCEEDED"

    lines = await lines_until(api, job_id, 2)

    assert [(line["attempt"], line["level"], line["message"]) for line in lines] == [
        (1, "warning", "this attempt fails"),
        (2, "warning", "this attempt fails"),
    ]


async def test_a_jobs_log_is_capped_with_a_last_line_saying_so(api):
    job_id = await submitted(api, "echo", {"lines": LOG_LINES + 30})
    await wait_for_job(api, job_id)

    lines = await lines_until(api, job_id, LOG_LINES + 1)
    await asyncio.sleep(0.5)  # nothing more comes
    again = (await api.get(f"/jobs/{job_id}/logs", params={"limit": 1000})).json()["items"]

    assert len(again) == LOG_LINES + 1 and [line["index"] for line in lines] == list(range(1, LOG_LINES + 2))
    assert lines[-1]["level"] == "warning" and f"keeps {LOG_LINES} lines" in lines[-1]["message"]


async def test_following_a_log_hears_the_lines_as_they_come_and_ends_with_the_job(stack, api):
    job_id = await submitted(api, "sleep", {"seconds": 1.0})
    async with AsyncClient(stack.api_url) as client:
        followed = [line async for line in client.follow_logs(job_id)]
    job = await wait_for_job(api, job_id)

    assert job["state"] == "SUCCEEDED"
    assert [(line.message, line.fields) for line in followed] == [("sleeping", {"seconds": 1.0})]


async def test_another_tenants_log_is_not_found(stack, api):
    job_id = await submitted(api, "echo")
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {FUZZ_KEY}"}) as other:
        assert (await other.get(f"/jobs/{job_id}/logs")).status_code == 404
        assert (await other.get(f"/jobs/{job_id}/logs/stream")).status_code == 404
