"""Built-in job types: ``sleep`` (as in the Atlas seed), ``noop``, ``fail`` and ``flaky``.

``fail`` and ``flaky`` exist to try out retries and failures; ``sleep`` reports
its progress and stops early when the job is cancelled (unless told not to).
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, ConfigDict, Field

from services.processor.handlers import EmptyPayload, JobContext, PermanentError, handler

MAX_SLEEP_S = 3600


class SleepPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=MAX_SLEEP_S, description="how long the job sleeps")
    ignore_cancel: bool = Field(False, description="keep sleeping when the job is cancelled (to try the grace period)")


class FailPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field("failed on purpose", max_length=10_000, description="the job's error text")
    retryable: bool = Field(True, description="false: fail at once, whatever attempts are left")


class FlakyPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    failures: int = Field(2, ge=0, le=100, description="how many attempts fail before one succeeds")
    message: str = Field("flaky failure", max_length=10_000)


class IntentionalFailure(Exception):
    """Raised by the ``fail`` and ``flaky`` job types."""


class Cancelled(Exception):
    """A ``sleep`` job stopped early because it was cancelled."""


@handler("sleep", payload=SleepPayload)
async def sleep(ctx: JobContext, payload: SleepPayload) -> dict:
    started = time.monotonic()
    deadline = started + payload.seconds
    while (left := deadline - time.monotonic()) > 0:
        if ctx.cancelled and not payload.ignore_cancel:
            raise Cancelled(f"stopped after {time.monotonic() - started:.1f} s of {payload.seconds:g}")
        await asyncio.sleep(min(left, 0.5))
        if time.monotonic() < deadline:
            await ctx.progress(round(100 * (time.monotonic() - started) / payload.seconds, 1))
    return {"slept": payload.seconds}


@handler("noop", payload=EmptyPayload)
async def noop(ctx: JobContext, payload: EmptyPayload) -> None:
    return None


@handler("fail", payload=FailPayload)
async def fail(ctx: JobContext, payload: FailPayload) -> None:
    if not payload.retryable:
        raise PermanentError(payload.message)
    raise IntentionalFailure(payload.message)


@handler("flaky", payload=FlakyPayload)
async def flaky(ctx: JobContext, payload: FlakyPayload) -> dict:
    if ctx.attempt <= payload.failures:
        raise IntentionalFailure(f"{payload.message} (attempt {ctx.attempt})")
    return {"succeeded_on_attempt": ctx.attempt}
