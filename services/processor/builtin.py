"""Built-in job types: ``sleep`` (as in the Atlas seed), ``noop`` and ``fail``."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from services.processor.handlers import EmptyPayload, JobContext, handler

MAX_SLEEP_S = 3600


class SleepPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=MAX_SLEEP_S, description="how long the job sleeps")


class FailPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field("failed on purpose", max_length=10_000, description="the job's error text")


class IntentionalFailure(Exception):
    """Raised by the ``fail`` job type."""


@handler("sleep", payload=SleepPayload)
async def sleep(ctx: JobContext, payload: SleepPayload) -> dict:
    await asyncio.sleep(payload.seconds)
    return {"slept": payload.seconds}


@handler("noop", payload=EmptyPayload)
async def noop(ctx: JobContext, payload: EmptyPayload) -> None:
    return None


@handler("fail", payload=FailPayload)
async def fail(ctx: JobContext, payload: FailPayload) -> None:
    raise IntentionalFailure(payload.message)
