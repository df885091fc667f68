"""The log as history: a job as it was at a past moment, its events up to a point."""

from __future__ import annotations

import asyncio
import csv
import json

import pytest

from tests.e2e.conftest import drained, jobledger, wait_for_job

pytestmark = pytest.mark.e2e


async def test_as_of_between_two_events_returns_the_earlier_state(api, stack):
    job_id = (await api.post("/jobs", json={"type": "sleep", "payload": {"seconds": 0.3}})).json()["id"]
    await wait_for_job(api, job_id)
    await drained(stack)
    events = (await api.get(f"/jobs/{job_id}/events")).json()["items"]
    started = next(e for e in events if e["type"] == "jobledger.job.started")

    then = await api.get(f"/jobs/{job_id}", params={"as_of": started["time"]})
    before = await api.get(f"/jobs/{job_id}", params={"as_of": events[0]["time"]})
    earlier = await api.get(f"/jobs/{job_id}", params={"as_of": "2000-01-01T00:00:00Z"})

    assert then.json()["state"] == "RUNNING"
    assert then.json()["version"] == started["seq"]
    assert before.json()["state"] == "QUEUED", "submitted and queued share the submit's time"
    assert earlier.status_code == 404


async def test_events_until_a_seq_or_a_time(api, stack):
    job_id = (await api.post("/jobs", json={"type": "noop"})).json()["id"]
    await wait_for_job(api, job_id)
    await drained(stack)
    events = (await api.get(f"/jobs/{job_id}/events")).json()["items"]

    by_seq = (await api.get(f"/jobs/{job_id}/events", params={"until": "2"})).json()["items"]
    by_time = (await api.get(f"/jobs/{job_id}/events", params={"until": events[-1]["time"]})).json()["items"]
    bad = await api.get(f"/jobs/{job_id}/events", params={"until": "yesterday"})
    naive = await api.get(f"/jobs/{job_id}", params={"as_of": "2026-01-01T00:00:00"})

    assert [e["seq"] for e in by_seq] == [1, 2]
    assert by_time == events
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.until"
    assert naive.status_code == 422


async def test_audit_verify_passes_on_the_log_and_catches_one_flipped_byte_in_a_copy(api, stack, tmp_path):
    job_id = (await api.post("/jobs", json={"type": "sleep", "payload": {"seconds": 0.1}})).json()["id"]
    await wait_for_job(api, job_id)
    copy = tmp_path / "log.jsonl"

    exported = await asyncio.to_thread(jobledger, stack, "audit", "export", "--output", str(copy))
    live = await asyncio.to_thread(jobledger, stack, "audit", "verify")
    intact = await asyncio.to_thread(jobledger, stack, "audit", "verify", "--file", str(copy))

    assert exported.returncode == 0, exported.stderr
    assert live.returncode == 0 and "intact" in live.stderr, live.stderr
    assert intact.returncode == 0, intact.stderr
    lines = copy.read_bytes().splitlines()
    index = next(i for i, line in enumerate(lines) if job_id.encode() in line and b'"seconds":0.1' in line)
    lines[index] = lines[index].replace(b'"seconds":0.1', b'"seconds":0.2', 1)
    copy.write_bytes(b"\n".join(lines) + b"\n")
    tampered = await asyncio.to_thread(jobledger, stack, "audit", "verify", "--file", str(copy))

    seq = json.loads(lines[index])["seq"]
    assert tampered.returncode == 1
    assert f"job {job_id} at seq {seq}: hash does not match" in tampered.stderr


async def test_audit_export_filters_one_job_as_csv(api, stack, tmp_path):
    job_id = (await api.post("/jobs", json={"type": "noop"})).json()["id"]
    await wait_for_job(api, job_id)
    out = tmp_path / "job.csv"

    result = await asyncio.to_thread(jobledger, stack, "audit", "export", "--job", job_id, "--format", "csv", "-o", str(out))

    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert [int(row["seq"]) for row in rows] == [1, 2, 3, 4]
    assert {row["subject"] for row in rows} == {job_id}
    assert all(len(row["hash"]) == 64 for row in rows)
