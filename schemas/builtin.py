"""The built-in job types: ``sleep``, ``noop``, ``fail``, ``flaky``, ``echo`` and ``service``.

``fail`` and ``flaky`` exist to try out retries and failures; ``sleep`` reports
its progress and stops early when the job is cancelled (unless told not to);
``echo`` writes lines to the job's log (``GET /jobs/{id}/logs``).
``service`` calls an operation of a registered service (:mod:`schemas.services`).
Their implementations are in ``services.processor.builtin`` and
``services.processor.service_calls``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.jobtypes import EmptyPayload, job_type
from schemas.logs import LogLevel
from schemas.services import ServiceCall

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


class EchoPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field("hello", max_length=10_000, description="each line's text (numbered)")
    lines: int = Field(1, ge=0, le=100_000, description="how many lines to write")
    level: LogLevel = Field(LogLevel.INFO, description="their level")


SLEEP = job_type("sleep", payload=SleepPayload, description="sleeps, reporting progress; stops early when cancelled")
NOOP = job_type("noop", payload=EmptyPayload, description="does nothing")
FAIL = job_type("fail", payload=FailPayload, description="fails with the given error text")
FLAKY = job_type("flaky", payload=FlakyPayload, description="fails that many attempts, then succeeds")
ECHO = job_type("echo", payload=EchoPayload, description="writes numbered lines to the job's log")
SERVICE = job_type(
    "service",
    payload=ServiceCall,
    defaults={"max_attempts": 5},
    description="calls an operation of a registered service; connection errors, 5xx, 408 and 429 are retried",
)
