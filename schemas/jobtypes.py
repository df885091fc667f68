"""Job types: a name, the payload it takes and its default options, declared in the contract.

A declaration is data, with no code to run, so the API validates submissions
against it without loading any job code, and a consumer can read it. The
processor binds an implementation to each declared type
(:func:`services.processor.handlers.handler`)::

    from pydantic import BaseModel, Field
    from schemas.jobtypes import job_type

    class ResizePayload(BaseModel):
        url: str
        width: int = Field(gt=0)

    RESIZE = job_type("resize", payload=ResizePayload, defaults={"timeout_s": 60})

Ingest imports the modules listed in ``JOBLEDGER_JOB_TYPE_MODULES`` and the
processor those in ``JOBLEDGER_HANDLER_MODULES`` (which import their
declarations), so keep declarations in a module of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.errors import JobledgerError
from schemas.options import JobOptions

T = TypeVar("T")


class EmptyPayload(BaseModel):
    """The payload of a job type that takes none: ``{}``."""

    model_config = ConfigDict(extra="forbid")


class UnknownJobType(JobledgerError):
    def __init__(self, job_type: str, known: Iterable[str]) -> None:
        self.job_type = job_type
        self.known = sorted(known)
        super().__init__(f"unknown job type {job_type!r}; known types: {', '.join(self.known) or 'none'}")


@dataclass(frozen=True)
class JobType:
    name: str
    payload: type[BaseModel] = EmptyPayload
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Options a submit of this type gets unless it sets them itself."""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a job type needs a non-empty name")
        if not (isinstance(self.payload, type) and issubclass(self.payload, BaseModel)):
            raise TypeError(f"payload of job type {self.name!r} must be a pydantic model class")
        unknown = set(self.defaults) - set(JobOptions.model_fields)
        if unknown:
            raise ValueError(f"job type {self.name!r}: defaults for unknown options {sorted(unknown)}")
        try:
            JobOptions.model_validate(dict(self.defaults))
        except ValidationError as error:
            raise ValueError(f"job type {self.name!r}: invalid defaults: {error}") from None
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    def validate(self, payload: dict[str, Any]) -> BaseModel:
        """The typed payload; raises pydantic's ``ValidationError``."""
        return self.payload.model_validate(payload)

    def options(self, given: Mapping[str, Any]) -> JobOptions:
        """The options of a submit that set ``given``, this type's defaults under them."""
        if not given:
            return self.default_options
        return JobOptions.model_validate({**self.defaults, **given})

    @cached_property
    def default_options(self) -> JobOptions:
        """The options of a submit that sets none (frozen, so one instance serves every such job)."""
        return JobOptions.model_validate(dict(self.defaults))


class ByJobType(Generic[T]):
    """Things kept under a job type's name; asking for another name raises
    :class:`UnknownJobType`, which lists the names there are."""

    def __init__(self) -> None:
        self._by_name: dict[str, T] = {}

    def get(self, name: str) -> T:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownJobType(name, self._by_name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)


class JobTypes(ByJobType[JobType]):
    """The declared job types, by name."""

    def declare(
        self,
        name: str,
        *,
        payload: type[BaseModel] = EmptyPayload,
        description: str = "",
        defaults: Mapping[str, Any] | None = None,
    ) -> JobType:
        declared = JobType(name, payload, description, defaults or {})
        known = self._by_name.get(name)
        if known is not None and known != declared:
            raise ValueError(f"job type {name!r} is already declared otherwise")
        self._by_name[name] = declared
        return declared


catalog = JobTypes()
"""Every job type declared in this process."""

job_type = catalog.declare
