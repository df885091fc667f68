"""The routes' two ways out: reading a job as this ingest knows it, and
appending a command to the log (answered only once the broker acknowledged it)."""

from __future__ import annotations

import asyncio

from schemas import Command, Job, encode_command, topics
from services.common.readmodel import JOBS, job_from_document
from services.ingest.problems import Problem


async def find_job(state, job_id: str, tenant: str) -> Job | None:
    """The job as the read model has it, or as accepted here, with what the
    log's tail has heard since (read-your-writes within this ingest)."""
    document = await state.db[JOBS].find_one({"_id": job_id, "tenant": tenant})
    job = job_from_document(document) if document is not None else state.accepted.get(job_id, tenant)
    caught_up = state.watch.catch_up(job_id, job)
    return caught_up if caught_up is not None and caught_up.tenant == tenant else job


async def job_or_404(state, job_id: str, tenant: str) -> Job:
    job = await find_job(state, job_id, tenant)
    if job is None:
        raise Problem(404, "job-not-found", "No such job", f"There is no job {job_id!r}.", job_id=job_id)
    return job


async def append_command(state, command: Command) -> None:
    await append_record(state, topics.COMMANDS, command.job_id, encode_command(command))


async def append_record(state, topic: str, key: str, value: bytes) -> None:
    """Append a command and wait for the broker's acknowledgement, or answer 503."""
    try:
        future = await state.producer.send(topic, key=key.encode(), value=value)
        await asyncio.wait_for(future, state.settings.produce_timeout_s)
    except Exception as error:
        raise Problem(
            503,
            "broker-unavailable",
            "The job log is unavailable",
            f"The command was not acknowledged ({type(error).__name__}); nothing was accepted. Retry later.",
            headers={"Retry-After": "1"},
        ) from None
