"""The live workers, folded from their beats."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from schemas.workers import STALE_BEATS, WorkerBeat, WorkerStopped, evolve_workers, live_workers, parse_worker_record

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)


def beat(runner_id: str, ago_s: float, interval_s: float = 5.0) -> WorkerBeat:
    return WorkerBeat(
        runner_id=runner_id,
        host="h",
        pid=1,
        concurrency=3,
        running=1,
        job_types=["noop"],
        started_at=NOW - timedelta(hours=1),
        beat_at=NOW - timedelta(seconds=ago_s),
        interval_s=interval_s,
    )


def test_a_runner_is_live_until_it_misses_three_beats_or_says_it_stopped():
    workers: dict[str, WorkerBeat] = {}
    for record in (
        beat("b", 1),
        beat("a", STALE_BEATS * 5.0),
        beat("late", STALE_BEATS * 5.0 + 0.1),
        beat("gone", 1),
        WorkerStopped(runner_id="gone", stopped_at=NOW),
    ):
        evolve_workers(workers, parse_worker_record(record.model_dump_json().encode()))

    assert [worker.runner_id for worker in live_workers(workers, NOW)] == ["a", "b"]


def test_a_stop_of_a_runner_never_seen_changes_nothing():
    workers = {"a": beat("a", 1)}
    evolve_workers(workers, WorkerStopped(runner_id="other", stopped_at=NOW))
    assert list(workers) == ["a"]
