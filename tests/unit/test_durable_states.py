"""The decider's job states on disk: what the log acknowledged, and how far into it."""

from __future__ import annotations

from datetime import datetime, timezone

from schemas import CompleteJob, StartJob, SubmitJob, decide, fold
from services.processor.states import DurableStates

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


def job_at(job_id: str, steps: int):
    common = dict(job_id=job_id, tenant="t", issued_at=NOW)
    commands = [
        SubmitJob(command_id=f"{job_id}/s", job_type="noop", **common),
        StartJob(command_id=f"{job_id}/r", attempt=1, runner_id="r", **common),
        CompleteJob(command_id=f"{job_id}/c", attempt=1, runner_id="r", **common),
    ]
    job = None
    for command in commands[:steps]:
        job = fold(decide(command, job), job)
    return job


def test_a_written_job_comes_back_equal_with_its_partition_offset(tmp_path):
    states = DurableStates(tmp_path / "s")
    job = job_at("a", 3)

    states.write(2, 41, [job])

    assert states.job("a") == job
    assert states.offset(2) == 41
    assert states.offsets() == {2: 41}
    assert states.job("unknown") is None and states.offset(3) is None


def test_only_unfinished_jobs_of_the_asked_partitions_are_live(tmp_path):
    states = DurableStates(tmp_path / "s")
    states.write(0, 5, [job_at("queued", 1), job_at("done", 3)])
    states.write(1, 9, [job_at("running", 2)])

    assert {job.job_id for _, job in states.live({0})} == {"queued"}
    assert {(p, job.job_id) for p, job in states.live({0, 1})} == {(0, "queued"), (1, "running")}


def test_a_job_that_ends_leaves_the_live_set(tmp_path):
    states = DurableStates(tmp_path / "s")
    states.write(0, 1, [job_at("a", 2)])
    states.write(0, 2, [job_at("a", 3)])

    assert list(states.live({0})) == []
    assert states.job("a").status.terminal


def test_states_survive_a_reopen_and_a_wipe_forgets_them(tmp_path):
    states = DurableStates(tmp_path / "s")
    states.write(0, 7, [job_at("a", 3)])
    states.close()

    reopened = DurableStates(tmp_path / "s")
    assert reopened.offset(0) == 7 and reopened.job("a") is not None
    reopened.wipe()
    assert reopened.offsets() == {} and reopened.job("a") is None
