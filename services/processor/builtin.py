"""What the built-in job types do (declared in :mod:`schemas.builtin`)."""

from __future__ import annotations

import asyncio
import time

from schemas.builtin import ECHO, FAIL, FLAKY, NOOP, SLEEP, EchoPayload, FailPayload, FlakyPayload, SleepPayload
from schemas.jobtypes import EmptyPayload
from services.processor.handlers import JobContext, PermanentError, handler


class IntentionalFailure(Exception):
    """Raised by the ``fail`` and ``flaky`` job types."""


class Cancelled(Exception):
    """A ``sleep`` job stopped early because it was cancelled."""


@handler(SLEEP)
async def sleep(ctx: JobContext, payload: SleepPayload) -> dict:
    ctx.log.info("sleeping", seconds=payload.seconds)
    started = time.monotonic()
    deadline = started + payload.seconds
    while (left := deadline - time.monotonic()) > 0:
        if ctx.cancelled and not payload.ignore_cancel:
            ctx.log.warning("cancelled: stopping early")
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


@handler(ECHO)
async def echo(ctx: JobContext, payload: EchoPayload) -> dict:
    for number in range(1, payload.lines + 1):
        ctx.log.write(payload.level, f"{payload.message} {number}", {"line": number})
        if number % 1000 == 0:
            await asyncio.sleep(0)
    return {"lines": payload.lines}


@handler(FLAKY)
async def flaky(ctx: JobContext, payload: FlakyPayload) -> dict:
    if ctx.attempt <= payload.failures:
        ctx.log.warning("this attempt fails", attempt=ctx.attempt, failures=payload.failures)
        raise IntentionalFailure(f"{payload.message} (attempt {ctx.attempt})")
    return {"succeeded_on_attempt": ctx.attempt}
