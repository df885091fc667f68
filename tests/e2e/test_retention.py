"""Retention: a tenant's finished jobs leave the read models; the log keeps them, a replay brings them back."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RETENTION, RETENTION_KEY
from tests.e2e.conftest import drained, eventually, jobledger, wait_for_job

pytestmark = pytest.mark.e2e


async def test_finished_jobs_leave_the_read_models_after_the_tenants_retention_and_a_replay_knows_why(stack, api):
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {RETENTION_KEY}"}) as mine:
        job_id = (await mine.post("/jobs", json={"type": "echo", "payload": {"lines": 2}})).json()["id"]
        other = (await api.post("/jobs", json={"type": "noop"})).json()["id"]
        assert (await wait_for_job(mine, job_id))["state"] == "SUCCEEDED"
        await wait_for_job(api, other)

        async def swept() -> bool:
            listed = (await mine.get("/jobs", params={"limit": 1000})).json()["items"]
            return job_id not in {job["id"] for job in listed} and (await mine.get(f"/jobs/{job_id}")).status_code == 404

        await eventually(swept)
        gone = (await mine.get(f"/jobs/{job_id}")).json()
        history = await mine.get(f"/jobs/{job_id}/events")  # from the log itself
        then = await mine.get(f"/jobs/{job_id}", params={"as_of": history.json()["items"][-1]["time"]})
        assert gone["swept"] is True and "retention" in gone["title"]
        assert [event["type"].rsplit(".", 1)[-1] for event in history.json()["items"]] == [
            "submitted",
            "queued",
            "started",
            "succeeded",
        ]
        assert then.status_code == 200 and then.json()["state"] == "SUCCEEDED" and then.json()["result"] == {"lines": 2}
    assert (await api.get(f"/jobs/{other}")).status_code == 200, "a tenant without retention keeps its jobs"

    await drained(stack)
    compared = jobledger(stack, "replay", env={"JOBLEDGER_RETENTION": f"retention={RETENTION}"})
    audited = jobledger(stack, "audit", "verify", "--job", job_id)

    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "swept by retention" in compared.stderr and "0 missing live" in compared.stderr
    assert audited.returncode == 0, "the log keeps every event of a swept job"
