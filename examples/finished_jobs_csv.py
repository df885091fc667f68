"""A downstream consumer: one CSV row per job that reached an end state.

    python examples/finished_jobs_csv.py --output finished.csv [--group finished-csv]

It follows ``jobs.events`` with the consumer kit and appends a row for every
``succeeded``, ``failed`` or ``cancelled`` event. It is exactly-once across its
own restarts, even after ``kill -9``: on start it reads the CSV it already
wrote and tells the kit which ``(job_id, seq)`` it holds, so events delivered
again (at least once) are dropped; each row is flushed before the loop moves
on, so the kit never commits past a row that is not on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import signal
from pathlib import Path

from jobledger.consumer import JobEventConsumer
from schemas import JobCancelled, JobFailed, JobSucceeded

COLUMNS = ["job_id", "seq", "state", "attempt", "finished_at", "detail"]
ENDED = {JobSucceeded: "SUCCEEDED", JobFailed: "FAILED", JobCancelled: "CANCELLED"}


def rows_written(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return [(row["job_id"], int(row["seq"])) for row in csv.DictReader(file)]


async def export(bootstrap: str, group: str, path: Path, stop: asyncio.Event) -> None:
    new_file = not path.exists()
    with path.open("a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()
        async with JobEventConsumer(bootstrap, group_id=group, already_seen=rows_written(path)) as events:
            async for event in events:
                state = ENDED.get(type(event))
                if state is not None:
                    data = event.data
                    detail = getattr(data, "error", None) or getattr(data, "reason", None) or ""
                    writer.writerow(
                        {
                            "job_id": event.job_id,
                            "seq": event.seq,
                            "state": state,
                            "attempt": data.attempt,
                            "finished_at": event.occurred_at.isoformat(),
                            "detail": detail,
                        }
                    )
                    file.flush()
                    os.fsync(file.fileno())
                if stop.is_set():
                    break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="CSV file to append to")
    parser.add_argument("--group", default="finished-csv", help="consumer group (default finished-csv)")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("JOBLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
        help="Kafka bootstrap servers (default: $JOBLEDGER_KAFKA_BOOTSTRAP or the embedded broker)",
    )
    args = parser.parse_args()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        task = asyncio.create_task(export(args.bootstrap, args.group, args.output, stop))
        await stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
