"""Commands: intents sent to ``jobs.commands``, keyed by job id.

A command carries the time it was issued (``issued_at``): the decider has no
clock, so the same command always decides the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str
    job_id: str
    tenant: str
    issued_at: AwareDatetime
    correlation_id: str | None = None


def storable(value: Any, path: str = "") -> Any:
    """Reject document keys a document store cannot hold as field names.

    Payloads and results become read-model documents, where a key starting
    with ``$``, containing ``.`` or a NUL would be refused at write time —
    after the job was accepted. Refusing them here keeps every accepted job
    projectable.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str) or key.startswith("$") or "." in key or "\x00" in key:
                raise ValueError(f"key {where!r} may not start with '$' or contain '.' or NUL")
            storable(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            storable(item, f"{path}[{index}]")
    return value


class SubmitJob(Command):
    type: Literal["SubmitJob"] = "SubmitJob"
    job_type: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict)

    _storable_payload = field_validator("payload")(storable)


class StartJob(Command):
    """A runner took attempt ``attempt`` of a queued job."""

    type: Literal["StartJob"] = "StartJob"
    attempt: int = Field(ge=1)
    runner_id: str


class CompleteJob(Command):
    type: Literal["CompleteJob"] = "CompleteJob"
    attempt: int = Field(ge=1)
    result: Any = None

    _storable_result = field_validator("result")(storable)


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
