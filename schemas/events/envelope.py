"""The envelope every job event shares, and the base of every event's ``data``:
see :mod:`schemas.events` for what the envelope's fields promise."""

from __future__ import annotations

from datetime import timezone
from typing import Any, ClassVar, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

SOURCE = "/jobledger/processor"
"""CloudEvents ``source`` of every job event: the decider is their only writer."""


class EventData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(BaseModel):
    """The envelope shared by every job event."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    event_id: str = Field(alias="id")
    source: str = SOURCE
    type: str
    job_id: str = Field(alias="subject")
    occurred_at: AwareDatetime = Field(alias="time")
    datacontenttype: Literal["application/json"] = "application/json"
    schema_version: int = Field(alias="schemaversion", ge=1)
    seq: int = Field(ge=1)
    tenant: str
    causation_id: str = Field(alias="causationid")
    correlation_id: str = Field(alias="correlationid")
    prev_hash: str = Field(alias="prevhash")
    hash: str
    data: EventData

    SCHEMA_VERSION: ClassVar[int] = 1
    """Version of this type's ``data`` that the decider writes now."""

    _recorded: dict[str, Any] | None = PrivateAttr(default=None)

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        return value.astimezone(timezone.utc)

    def wire_dict(self) -> dict[str, Any]:
        """The event as its CloudEvents JSON object."""
        return self.model_dump(mode="json", by_alias=True)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.wire_dict())

    def recorded(self) -> dict[str, Any]:
        """The event as the log holds it: for an upcast event, the older form it
        was written in (its ``hash`` covers that form; the log is never rewritten)."""
        return self._recorded if self._recorded is not None else self.wire_dict()
