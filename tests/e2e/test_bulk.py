"""Bulk cancel and retry by filter: a dry-run count, pages, refusals, the CLI's progress."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import eventually, jobledger, wait_for_job, waiting_jobs

pytestmark = pytest.mark.e2e


async def labelled(api, label: str, count: int) -> list[str]:
    """``count`` never-ending jobs labelled ``bulk:<label>``, just accepted: a bulk action
    waits until the read models hold them (the projector holds new jobs back for a moment)."""
    return await waiting_jobs(api, {"bulk": label}, count)


async def states(api, ids: list[str]) -> list[str]:
    return [(await api.get(f"/jobs/{job_id}")).json()["state"] for job_id in ids]


async def test_a_filter_is_counted_then_cancelled_page_by_page_then_retried(api, stack):
    label = uuid.uuid4().hex
    ids = await labelled(api, label, 7)
    other = await labelled(api, uuid.uuid4().hex, 1)
    body = {"action": "cancel", "filter": {"labels": {"bulk": label}}, "limit": 3}

    dry = (await api.post("/jobs:bulk", json={**body, "dry_run": True})).json()
    pages, cursor = [], None
    while True:
        page = (await api.post("/jobs:bulk", json={**body, "cursor": cursor})).json()
        pages.append(page)
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]

    assert dry["matched"] == 7 and dry["accepted"] == []
    assert [len(page["accepted"]) for page in pages] == [3, 3, 1] and pages[0]["matched"] == 7
    assert sorted(job_id for page in pages for job_id in page["accepted"]) == sorted(ids)
    assert [(await wait_for_job(api, job_id))["state"] for job_id in ids] == ["CANCELLED"] * 7
    assert await states(api, other) == ["PENDING"], "a job outside the filter is left alone"

    retried = (
        await api.post("/jobs:bulk", json={"action": "retry", "filter": {"labels": {"bulk": label}, "state": "CANCELLED"}})
    ).json()

    assert sorted(retried["accepted"]) == sorted(ids) and retried["refused"] == []
    await eventually(lambda: _all_succeeded(api, ids))


async def _all_succeeded(api, ids) -> bool:
    return await states(api, ids) == ["SUCCEEDED"] * len(ids)


async def test_a_state_the_action_does_not_take_is_a_422_naming_it(api):
    refused = await api.post("/jobs:bulk", json={"action": "retry", "filter": {"state": "RUNNING"}})
    assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == ["filter.state"]


async def test_the_cli_counts_asks_and_shows_its_progress(api, stack):
    label = uuid.uuid4().hex
    ids = await labelled(api, label, 4)

    counted = jobledger(stack, "bulk", "cancel", "--label", f"bulk:{label}", "--dry-run")
    done = jobledger(stack, "bulk", "cancel", "--label", f"bulk:{label}", "--yes", "--reason", "cleanup")

    assert counted.returncode == 0 and "4 jobs match" in counted.stderr
    assert done.returncode == 0 and "4 accepted, 0 refused" in done.stderr, done.stderr
    cancelled = [await wait_for_job(api, job_id) for job_id in ids]
    assert {job["state"] for job in cancelled} == {"CANCELLED"}
