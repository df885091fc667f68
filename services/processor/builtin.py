"""What the built-in job types do (declared in :mod:`schemas.builtin`)."""

from __future__ import annotations

import asyncio
import time

from schemas.builtin import FAIL, FLAKY, NOOP, SLEEP, FailPayload, FlakyPayload, SleepPayload
from schemas.jobtypes import EmptyPayload
from services.processor.handlers import JobContext, PermanentError, handler


class IntentionalFailure(Exception):
    """Raised by the ``fail`` and ``flaky`` job types."""


class Cancelled(Exception):
    """A ``sleep`` job stopped early because it was cancelled."""


@handler(SLEEP)
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


@handler(NOOP)
async def noop(ctx: JobContext, payload: EmptyPayload) -> None:
    return None


@handler(FAIL)
async def fail(ctx: JobContext, payload: FailPayload) -> None:
    if not payload.retryable:
        raise PermanentError(payload.message)
    raise IntentionalFailure(payload.message)


@handler(FLAKY)
async def flaky(ctx: JobContext, payload: FlakyPayload) -> dict:
    if ctx.attempt <= payload.failures:
        raise IntentionalFailure(f"{payload.message} (attempt {ctx.attempt})")
    return {"succeeded_on_attempt": ctx.attempt}
