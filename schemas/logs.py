"""Job logs: what handlers write with ``ctx.log``, on ``jobs.logs``.

Lines are not job events: they do not change a job's state, are not
hash-chained, and the topic keeps them for the broker's retention only. The
projector keeps each job's first lines (``JOBLEDGER_JOB_LOG_LINES``, 1,000 by
default) in the read models, numbered as they arrive; ``GET /jobs/{id}/logs``
pages them and ``GET /jobs/{id}/logs/stream`` follows them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.values import Moment

MAX_MESSAGE_CHARS = 8_000
"""A longer message is cut to this many characters (and says so)."""
DEFAULT_LINES_PER_JOB = 1_000


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class JobLogLine(BaseModel):
    """One line a handler wrote, keyed by job id on ``jobs.logs``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["jobledger.job.log"] = "jobledger.job.log"
    job_id: str
    tenant: str
    attempt: int = Field(ge=1)
    step: str | None = Field(None, description="the pipeline step whose attempt wrote it")
    runner_id: str
    n: int = Field(ge=1, description="the line's number within its attempt on its runner")
    level: LogLevel
    message: str = Field(max_length=MAX_MESSAGE_CHARS + 100)
    fields: dict[str, Any] = Field(default_factory=dict, description="structured context, as the handler gave it")
    at: Moment

    @property
    def line_id(self) -> str:
        """Unique per line: a line delivered twice is stored once."""
        return f"{self.job_id}:{self.step or ''}:{self.attempt}:{self.runner_id}:{self.n}"


LogRecord = Annotated[Union[JobLogLine], Field(discriminator="type")]
_LOG_RECORD: TypeAdapter[JobLogLine] = TypeAdapter(LogRecord)


def parse_log_line(value: bytes) -> JobLogLine:
    return _LOG_RECORD.validate_json(value)


def clipped(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return f"{message[:MAX_MESSAGE_CHARS]}… ({len(message) - MAX_MESSAGE_CHARS} more characters cut)"


class StoredLogLine(BaseModel):
    """A line as the read models keep it and the API answers it."""

    index: int = Field(description="its place among the job's stored lines, from 1; a cursor names the last one read")
    attempt: int
    step: str | None = None
    runner_id: str
    level: LogLevel
    message: str
    fields: dict[str, Any] = Field(default_factory=dict)
    at: datetime
