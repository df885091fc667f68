"""The example downstream consumer sees every finished job exactly once, also
when it is killed mid-stream and started again."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from services.embedded.stack import REPO
from tests.e2e.conftest import eventually, wait_for_job

pytestmark = pytest.mark.e2e


def start_example(stack, output: Path, group: str) -> subprocess.Popen:
    env = {**os.environ, "JOBLEDGER_KAFKA_BOOTSTRAP": stack.settings.kafka_bootstrap, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "finished_jobs_csv.py"), "--output", str(output), "--group", group],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


async def submit_batch(api, count: int) -> list[str]:
    bodies = [{"type": "noop"}, {"type": "fail", "max_attempts": 1}]
    return [(await api.post("/jobs", json=bodies[i % 2])).json()["id"] for i in range(count)]


async def test_the_example_consumer_sees_every_finished_job_once_across_a_kill(api, stack, tmp_path):
    output = tmp_path / "finished.csv"
    group = f"csv-{uuid.uuid4().hex[:8]}"
    first = await submit_batch(api, 10)
    for job_id in first:
        await wait_for_job(api, job_id)

    example = start_example(stack, output, group)
    try:
        await eventually(lambda: {row["job_id"] for row in rows(output)} >= set(first))
        os.killpg(example.pid, signal.SIGKILL)  # mid-stream: whatever it had not committed comes again
        example.wait()
        second = await submit_batch(api, 10)
        example = start_example(stack, output, group)
        for job_id in second:
            await wait_for_job(api, job_id)
        await eventually(lambda: {row["job_id"] for row in rows(output)} >= set(first + second))
    finally:
        os.killpg(example.pid, signal.SIGTERM)
        example.wait(timeout=30)

    written = [(row["job_id"], row["seq"]) for row in rows(output)]
    assert len(written) == len(set(written)), "a finished job was written twice"
    mine = [row for row in rows(output) if row["job_id"] in set(first + second)]
    assert len(mine) == 20
    assert {row["state"] for row in mine} == {"SUCCEEDED", "FAILED"}
