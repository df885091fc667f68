"""Commands: intents sent to ``jobs.commands``, keyed by job id.

A command carries the time it was issued (``issued_at``): the decider has no
clock, so the same command always decides the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str
    job_id: str
    tenant: str
    issued_at: AwareDatetime
    correlation_id: str | None = None


class SubmitJob(Command):
    type: Literal["SubmitJob"] = "SubmitJob"
    job_type: str
    payload: dict[str, Any] = Field(default_factory=dict)


class StartJob(Command):
    """A runner took attempt ``attempt`` of a queued job."""

    type: Literal["StartJob"] = "StartJob"
    attempt: int = Field(ge=1)
    runner_id: str


class CompleteJob(Command):
    type: Literal["CompleteJob"] = "CompleteJob"
    attempt: int = Field(ge=1)
    result: Any = None


class FailJob(Command):
    type: Literal["FailJob"] = "FailJob"
    attempt: int = Field(ge=1)
    error: str
    error_type: str | None = None


AnyCommand = Annotated[
    Union[SubmitJob, StartJob, CompleteJob, FailJob], Field(discriminator="type")
]
_COMMAND = TypeAdapter(AnyCommand)


def parse_command(raw: bytes | str) -> AnyCommand:
    """Decode one ``jobs.commands`` record; raises ``pydantic.ValidationError``."""
    return _COMMAND.validate_json(raw)


def encode_command(command: Command) -> bytes:
    return command.model_dump_json().encode()
