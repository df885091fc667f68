"""The built-in job types: ``sleep``, ``noop``, ``fail`` and ``flaky``.

``fail`` and ``flaky`` exist to try out retries and failures; ``sleep`` reports
its progress and stops early when the job is cancelled (unless told not to).
Their implementations are in ``services.processor.builtin``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.jobtypes import EmptyPayload, job_type

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


SLEEP = job_type("sleep", payload=SleepPayload, description="sleeps, reporting progress; stops early when cancelled")
NOOP = job_type("noop", payload=EmptyPayload, description="does nothing")
FAIL = job_type("fail", payload=FailPayload, description="fails with the given error text")
FLAKY = job_type("flaky", payload=FlakyPayload, description="fails that many attempts, then succeeds")
