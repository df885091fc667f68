"""Services that jobs call, as jobledger knows them: an OpenAPI document's operations.

A tenant registers a service with its OpenAPI 3.0/3.1 or Swagger 2.0 document.
The document is read once, at registration
(:mod:`services.adapters.service_documents`), into a :class:`ServiceDefinition`:
its operations, each addressed by its ``operationId`` — or as ``METHOD /path``
where it has none — with the JSON Schemas of its parameters and request body,
every ``$ref`` resolved. The definition is data, like a job type's declaration:
a call is checked against it (:func:`call_problems`) without the document, the
network or the service.

    definition.operation("createInvoice")        # by operationId
    definition.operation("post /invoices")       # or by method and path
    call_problems(operation, params={"id": 7}, body={"amount": -1})
    # [(("params", "id"), "7 is not of type 'string'"), (("body", "amount"), "-1 is less than the minimum of 0")]
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from openapi_schema_validator import OAS30Validator, OAS31Validator
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from schemas.artifacts import UPLOAD_PREFIX
from schemas.errors import JobledgerError
from schemas.values import Moment

SERVICE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
"""A service's name: lower case, as it is typed in a job's payload and on the command line."""
METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")
"""The HTTP methods an OpenAPI path item may hold, as operations are addressed."""


class ParameterLocation(StrEnum):
    PATH = "path"
    QUERY = "query"
    HEADER = "header"
    COOKIE = "cookie"


class Parameter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    location: ParameterLocation
    required: bool = False
    json_schema: dict[str, Any] = Field(default_factory=dict, description="the parameter's schema, references resolved")
    description: str | None = None


class RequestBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    required: bool = False
    media_types: tuple[str, ...] = ()
    """As the document lists them: ``application/json``, ``multipart/form-data``, …"""
    json_schema: dict[str, Any] | None = None
    """The schema of the first media type that has one, references resolved."""


class Operation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(description="how a job names it: the operationId, or `METHOD /path` where there is none")
    method: str
    path: str
    operation_id: str | None = None
    summary: str | None = None
    parameters: tuple[Parameter, ...] = ()
    request_body: RequestBody | None = None
    responses: dict[str, str] = Field(default_factory=dict, description="status (or `default`) → description")

    def parameter(self, name: str) -> Parameter | None:
        return next((parameter for parameter in self.parameters if parameter.name == name), None)

    @property
    def media_type(self) -> str:
        """How its request body is sent: the first media type the document lists
        (empty when it lists none, or takes no body)."""
        if self.request_body is None:
            return ""
        return next(iter(self.request_body.media_types), "")


class ServiceDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=SERVICE_NAME_PATTERN)
    title: str | None = None
    version: str | None = Field(None, description="the document's info.version")
    spec_version: str = Field(description="the document's `openapi` (3.0.x, 3.1.x) or `swagger` (2.0) field")
    base_url: str | None = Field(
        None, description="where calls go: the registration's base_url, else the document's first server"
    )
    operations: dict[str, Operation] = Field(default_factory=dict)
    warnings: tuple[str, ...] = Field((), description="what the validator found wrong in a document that is still usable")

    def operation(self, ref: str) -> Operation:
        """The operation ``ref`` names — an ``operationId``, ``METHOD /path``
        (the method in any case), or the operationId as Python spells a name
        (``create_invoice`` for ``createInvoice``, as the SDK's callables do) —
        or :class:`UnknownOperation`."""
        found = self.operations.get(ref)
        if found is not None:
            return found
        method, _, path = ref.strip().partition(" ")
        wanted = (method.upper(), path.strip())
        for operation in self.operations.values():
            if (operation.method, operation.path) == wanted:
                return operation
        spelled = [
            operation
            for operation in self.operations.values()
            if operation.operation_id and _bare(operation.operation_id) == _bare(ref)
        ]
        if len(spelled) == 1:
            return spelled[0]
        raise UnknownOperation(self.name, ref, sorted(self.operations))


class UnknownOperation(JobledgerError):
    def __init__(self, service: str, ref: str, known: list[str]) -> None:
        listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
        super().__init__(f"service {service!r} has no operation {ref!r}; it has: {listed or 'none'}")
        self.service, self.ref, self.known = service, ref, known


def _bare(name: str) -> str:
    """A name without case or separators: ``createInvoice``, ``create_invoice`` and ``create-invoice`` are one."""
    return "".join(character for character in name.lower() if character.isalnum())


def operation_key(method: str, path: str, operation_id: str | None) -> str:
    return operation_id if operation_id else f"{method.upper()} {path}"


Where = tuple[Any, ...]


def is_form(media_type: str) -> bool:
    return media_type.startswith("multipart/") or media_type == "application/x-www-form-urlencoded"


def body_with_files(operation: Operation, call: ServiceCall) -> Any:
    """The body as the operation's schema sees it once the call's files are in:
    each a form field, or the whole body of an operation that takes raw bytes."""
    if not call.files:
        return call.body
    if is_form(operation.media_type):
        return {**(call.body if isinstance(call.body, dict) else {}), **dict.fromkeys(call.files, "(file)")}
    return "(file)" if call.body is None else call.body


def files_problems(operation: Operation, call: ServiceCall) -> list[tuple[Where, str]]:
    """Files the operation cannot take: a raw body is one file, and a JSON body none."""
    if not call.files:
        return []
    media = operation.media_type
    if operation.request_body is None:
        return [(("files",), f"{operation.key} takes no request body, so no file")]
    if media == "application/x-www-form-urlencoded":
        return [(("files",), f"{operation.key} takes a URL-encoded form: files go to multipart/form-data operations")]
    if is_form(media):
        return []
    if "json" in media:
        return [(("files",), f"{operation.key} takes a JSON body ({media}): send files to a multipart or binary operation")]
    if len(call.files) != 1 or call.body is not None:
        return [(("files",), f"{operation.key} takes its body as raw bytes ({media}): one file, and no body")]
    return []


def service_call_problems(definition: ServiceDefinition, operation: Operation, call: ServiceCall) -> list[tuple[Where, str]]:
    """What is wrong with ``call`` for ``operation``: its files, then its params
    and body (its files counted in) against the operation's schemas."""
    return files_problems(operation, call) + call_problems(definition, operation, call.params, body_with_files(operation, call))


def call_problems(
    definition: ServiceDefinition, operation: Operation, params: dict[str, Any], body: Any
) -> list[tuple[Where, str]]:
    """What is wrong with a call of ``operation`` with these inputs: each as
    (where in ``{params, body}``, message); empty when the call fits.

    ``params`` holds the path, query, header and cookie parameters by name;
    ``body`` the request body (``None``: none)."""
    problems: list[tuple[Where, str]] = []
    for parameter in operation.parameters:
        if parameter.required and parameter.name not in params:
            problems.append((("params", parameter.name), f"required ({parameter.location.value} parameter of {operation.key})"))
    for name, value in params.items():
        declared = operation.parameter(name)
        if declared is None:
            known = ", ".join(p.name for p in operation.parameters) or "none"
            problems.append((("params", name), f"not a parameter of {operation.key}; it takes: {known}"))
            continue
        problems.extend(_schema_problems(definition, declared.json_schema, value, ("params", name)))
    request_body = operation.request_body
    if body is None:
        if request_body is not None and request_body.required:
            problems.append((("body",), f"required by {operation.key}"))
    elif request_body is None:
        problems.append((("body",), f"{operation.key} takes no request body"))
    elif request_body.json_schema is not None:
        problems.extend(_schema_problems(definition, request_body.json_schema, body, ("body",)))
    return problems


def _schema_problems(definition: ServiceDefinition, schema: dict[str, Any], value: Any, where: Where) -> list[tuple[Where, str]]:
    validator_class = OAS31Validator if definition.spec_version.startswith("3.1") else OAS30Validator
    validator = validator_class(schema)
    return [(where + tuple(error.absolute_path), error.message) for error in validator.iter_errors(value)]


# --- a call: the payload of a job of type ``service`` ------------------------------------


class ServiceCall(BaseModel):
    """Call one operation of a registered service: checked against the
    operation's schemas when the job is submitted, sent when it runs."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(pattern=SERVICE_NAME_PATTERN, description="a registered service's name (GET /services)")
    operation: str = Field(min_length=1, max_length=500, description="its operationId, or `METHOD /path`")
    params: dict[str, Any] = Field(default_factory=dict, description="path, query, header and cookie parameters, by name")
    body: Any = Field(None, description="the request body (JSON, or the fields of a form)")
    files: dict[str, str] = Field(
        default_factory=dict,
        description="files to send, by form field: upload:<id> (POST /uploads); a multipart operation gets them as its "
        "fields, any other takes the one file as its raw body",
    )
    call_timeout_s: float = Field(30.0, gt=0, le=3600, description="how long one call may take")

    @field_validator("files")
    @classmethod
    def _uploads(cls, files: dict[str, str]) -> dict[str, str]:
        for name, ref in files.items():
            if not ref.startswith(UPLOAD_PREFIX) or len(ref) == len(UPLOAD_PREFIX):
                raise ValueError(f"file {name!r} must name an upload as upload:<id> (POST /uploads), not {ref[:100]!r}")
        return files


# --- long-running operations --------------------------------------------------------------


class Polling(BaseModel):
    """How a long-running operation of the service is followed to its end.

    An operation that answers ``202 Accepted`` is polled — its ``Location``, or
    the URL at ``status_url_field`` of its answer — with growing intervals,
    until the status answers something other than 202 (or, with
    ``state_field``, a state among ``done_states`` or ``failed_states``). That
    last answer is the job's result; ``progress_field`` (0–100) feeds the
    job's progress on the way."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status_url_field: str | None = Field(None, description="dotted path of the status URL in the 202's body (else its Location)")
    progress_field: str | None = Field(None, description="dotted path of a 0–100 progress figure in a status answer")
    state_field: str | None = Field(None, description="dotted path of the operation's state in a status answer")
    done_states: tuple[str, ...] = ("succeeded", "completed", "done", "success")
    failed_states: tuple[str, ...] = ("failed", "error", "cancelled", "canceled")
    first_interval_s: float = Field(0.5, gt=0, le=60)
    max_interval_s: float = Field(10.0, gt=0, le=3600)


def field_at(value: Any, dotted: str) -> Any:
    """``value``'s field at a dotted path (``status.progress``), or ``None``."""
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


# --- credentials: given once, kept sealed ----------------------------------------------


class AuthType(StrEnum):
    BEARER = "bearer"
    BASIC = "basic"
    API_KEY = "api_key"


class BearerAuth(BaseModel):
    """``Authorization: Bearer <token>`` on every call."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["bearer"] = "bearer"
    token: str = Field(min_length=1, max_length=8192)


class BasicAuth(BaseModel):
    """HTTP basic authentication on every call."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["basic"] = "basic"
    username: str = Field(min_length=1, max_length=1000)
    password: str = Field(max_length=1000)


class ApiKeyAuth(BaseModel):
    """An API key in a header or a query parameter of every call."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["api_key"] = "api_key"
    location: Literal["header", "query"] = "header"
    name: str = Field(min_length=1, max_length=200, description="the header's or query parameter's name")
    value: str = Field(min_length=1, max_length=8192)


Credentials = Annotated[Union[BearerAuth, BasicAuth, ApiKeyAuth], Field(discriminator="type")]
SECRET_FIELDS = {AuthType.BEARER: ("token",), AuthType.BASIC: ("username", "password"), AuthType.API_KEY: ("value",)}
"""What of each kind of credentials is sealed; the rest (where an API key goes) is shown."""


class SealedAuth(BaseModel):
    """Credentials as the log holds them: how they are sent, in clear; the secret, sealed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: AuthType
    location: Literal["header", "query"] | None = None
    name: str | None = None
    sealed: str = Field(description="the secret fields, sealed with the server's key (Fernet); never shown")

    def shown(self) -> dict[str, Any]:
        """What the API shows of them: never the secret."""
        return self.model_dump(exclude={"sealed"}, exclude_none=True)


# --- values from earlier steps: ``{{ steps.reserve.body.id }}`` ---------------------------

TEMPLATE = re.compile(r"\{\{\s*(steps\.[^{}\s]+)\s*\}\}")
"""``{{ steps.<step>.<field>… }}``: a value of an earlier step's result, by a dotted path.
Braces around anything else (``{{ name }}``) are sent as they are."""


class TemplateError(JobledgerError):
    """A template names nothing in the results at hand."""


def has_template(value: Any) -> bool:
    if isinstance(value, str):
        return TEMPLATE.search(value) is not None
    if isinstance(value, dict):
        return any(has_template(item) for item in value.values())
    if isinstance(value, list):
        return any(has_template(item) for item in value)
    return False


def filled(value: Any, results: dict[str, Any]) -> Any:
    """``value`` with its templates replaced from ``results`` (step name →
    result): a string that is one template becomes the value itself (a number
    stays a number, an object an object); templates inside a longer string are
    written in (a non-string as JSON). Nothing is evaluated: a template is a
    path, and a path that names nothing is a :class:`TemplateError`."""
    if isinstance(value, dict):
        return {key: filled(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [filled(item, results) for item in value]
    if not isinstance(value, str):
        return value
    whole = TEMPLATE.fullmatch(value.strip())
    if whole is not None:
        return _looked_up(whole.group(1), results)
    return TEMPLATE.sub(lambda match: _as_text(_looked_up(match.group(1), results)), value)


def _looked_up(path: str, results: dict[str, Any]) -> Any:
    step, _, fields = path.removeprefix("steps.").partition(".")
    if step not in results:
        raise TemplateError(
            f"{{{{ {path} }}}}: no result of a step {step!r} here (it has: {', '.join(sorted(results)) or 'none'})"
        )
    value = results[step]
    for part in fields.split(".") if fields else ():
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise TemplateError(f"{{{{ {path} }}}}: the result of step {step!r} has nothing at {part!r}")
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def templated_at(call: ServiceCall, where: Where) -> bool:
    """The call's value at ``where`` (``("body", "amount")``) is, or is inside, a template: filled when the step runs."""
    value: Any = {"params": call.params, "body": call.body}
    for part in where:
        if isinstance(value, str):
            break
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return False
    return isinstance(value, str) and TEMPLATE.search(value) is not None


# --- the registry: records on ``jobs.services`` -------------------------------------------


class ServiceRegistered(BaseModel):
    """A tenant registered (or registered again) service ``name``: the definition
    read from its document is the fact; the document itself is not kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["jobledger.service.registered"] = "jobledger.service.registered"
    record_id: str
    tenant: str
    name: str = Field(pattern=SERVICE_NAME_PATTERN)
    definition: ServiceDefinition
    document_sha256: str = Field(description="of the document's bytes as registered")
    source_url: str | None = Field(None, description="where the document was fetched from, if it came by URL")
    auth: SealedAuth | None = Field(None, description="the credentials every call sends, their secret sealed")
    polling: Polling = Field(default_factory=Polling, description="how its long-running operations are followed")
    registered_at: Moment


class ServiceDeleted(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["jobledger.service.deleted"] = "jobledger.service.deleted"
    record_id: str
    tenant: str
    name: str
    deleted_at: Moment


ServiceRecord = Annotated[Union[ServiceRegistered, ServiceDeleted], Field(discriminator="type")]
_SERVICE_RECORD: TypeAdapter[ServiceRegistered | ServiceDeleted] = TypeAdapter(ServiceRecord)


def parse_service_record(value: bytes) -> ServiceRegistered | ServiceDeleted:
    return _SERVICE_RECORD.validate_json(value)


def service_key(tenant: str, name: str) -> str:
    """The record key on ``jobs.services``: one service's records stay in order on one partition."""
    return f"{tenant}/{name}"


Registry = dict[tuple[str, str], ServiceRegistered]
"""(tenant, name) → the registration in force."""


def evolve_registry(registry: Registry, record: ServiceRegistered | ServiceDeleted) -> None:
    """Fold one record: the latest registration of a name is in force until it is deleted."""
    key = (record.tenant, record.name)
    if isinstance(record, ServiceRegistered):
        registry[key] = record
    else:
        registry.pop(key, None)
