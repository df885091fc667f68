"""``/services``: each tenant's registry of the HTTP services its jobs call.

A registration is read here — the document fetched if it came by URL, parsed,
its references resolved and checked (:mod:`services.adapters.service_documents`)
— and appended to ``jobs.services`` as the definition read from it, so the
registry replays from the log like everything else. Registering a name again
replaces its definition; deleting it removes it.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import orjson
from fastapi import APIRouter, Depends, Response
from pydantic import ValidationError

from schemas import topics
from schemas.api import DEFAULT_TENANT, ServiceList, ServiceRequest, ServiceSummary, ServiceView
from schemas.errors import JobledgerError, ProblemCode
from schemas.services import ServiceDefinition, ServiceDeleted, ServiceRegistered, service_key
from services.adapters.secrets import SecretsUnavailable
from services.adapters.service_documents import UnusableDocument, definition_of, read_document
from services.common.egress import HostPolicy
from services.ingest.auth import reader, writer
from services.ingest.bodies import ContractRoute
from services.ingest.bootstrap import Ingest, IngestDep
from services.ingest.problems import AUTHENTICATED, PROBLEM_RESPONSE, PROBLEMS, Problem, field_error, invalid
from services.ingest.responses import answer
from services.ingest.store import append_record

router = APIRouter(tags=["services"], route_class=ContractRoute)

FETCH_TIMEOUT_S = 10.0
"""How long fetching a document by its URL may take."""


@router.post(
    "/services",
    status_code=201,
    response_model=ServiceView,
    responses={
        200: {"model": ServiceView, "description": "the name was registered already: replaced"},
        **PROBLEMS,
        503: PROBLEM_RESPONSE,
    },
    summary="Register a service by its OpenAPI document",
    description="The document (OpenAPI 3.0, 3.1 or Swagger 2.0; JSON or YAML; inline or by a `url` the server "
    "fetches) is parsed, its `$ref`s resolved and checked. A document that still resolves and has operations is "
    "registered with the validator's findings as `warnings`; one that cannot be used is a 422 naming what is wrong. "
    "Registering a name again replaces it (200). Answered once the registration is in the log (acks=all).",
)
async def register_service(body: ServiceRequest, state: IngestDep, tenant: str = Depends(writer)) -> Response:
    record = await registration(state, tenant, body)
    replaced = state.services.get(tenant, body.name) is not None
    await _append(state, record)
    return answer(ServiceView.of(record), 200 if replaced else 201, {"Location": f"/services/{body.name}"})


async def registration(state: Ingest, tenant: str, body: ServiceRequest) -> ServiceRegistered:
    """The record a registration appends (its document read, its credentials
    sealed), or a 422 problem naming what is wrong."""
    raw, source = await _document_bytes(state, body)
    try:
        document = body.document if isinstance(body.document, dict) else read_document(raw, source)
        definition = definition_of(body.name, document, body.base_url, source)
    except UnusableDocument as unusable:
        raise invalid([field_error(where, message) for where, message in unusable.problems]) from None
    refused = HostPolicy(state.settings.service_hosts).refusal(definition.base_url) if definition.base_url else None
    if refused is not None:
        given = "" if body.base_url else " (the document's servers)"
        raise invalid([field_error(("base_url",), f"{definition.base_url}{given}: {refused}")])
    record = ServiceRegistered(
        record_id=str(uuid.uuid4()),
        tenant=tenant,
        name=body.name,
        definition=definition,
        document_sha256=hashlib.sha256(raw).hexdigest(),
        source_url=body.url,
        polling=body.polling,
        registered_at=datetime.now(timezone.utc),
    )
    if body.auth is not None:
        if not state.sealer.available:
            raise invalid([field_error(("auth",), "this server cannot keep credentials: it has no JOBLEDGER_SECRET_KEY")])
        record = record.model_copy(update={"auth": state.sealer.seal(body.auth)})
    size = len(record.model_dump_json())
    if size > topics.MAX_RECORD_BYTES:
        raise invalid([field_error(source, _too_large(definition, size))])
    return record


async def _append(state: Ingest, record: ServiceRegistered | ServiceDeleted) -> None:
    """In the log (acknowledged), and so in this process's registry at once."""
    offset = await append_record(
        state, topics.SERVICES, service_key(record.tenant, record.name), record.model_dump_json().encode()
    )
    state.services.appended(offset, record)


@router.get("/services", response_model=ServiceList, responses=AUTHENTICATED, summary="List your registered services")
async def list_services(state: IngestDep, tenant: str = Depends(reader)) -> Response:
    return answer(ServiceList(items=[ServiceSummary.of(found) for found in state.services.of_tenant(tenant)]))


@router.get(
    "/services/{name}",
    response_model=ServiceView,
    responses={**AUTHENTICATED, 404: PROBLEM_RESPONSE},
    summary="A registered service: its operations, with their parameters and request schemas",
)
async def get_service(name: str, state: IngestDep, tenant: str = Depends(reader)) -> Response:
    return answer(ServiceView.of(_registered(state, tenant, name)))


@router.delete(
    "/services/{name}",
    status_code=204,
    responses={**AUTHENTICATED, 404: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Remove a service from the registry",
    description="Jobs submitted after this cannot call it; the log keeps its registrations.",
)
async def delete_service(name: str, state: IngestDep, tenant: str = Depends(writer)) -> Response:
    _registered(state, tenant, name)
    await _append(
        state, ServiceDeleted(record_id=str(uuid.uuid4()), tenant=tenant, name=name, deleted_at=datetime.now(timezone.utc))
    )
    return Response(status_code=204)


def _registered(state: Ingest, tenant: str, name: str) -> ServiceRegistered:
    found = state.services.get(tenant, name)
    if found is None:
        names = ", ".join(registered.name for registered in state.services.of_tenant(tenant)) or "none"
        raise Problem(
            404, ProblemCode.SERVICE_NOT_FOUND, "No such service", f"No service {name!r} is registered; yours: {names}."
        )
    return found


async def _document_bytes(state: Ingest, body: ServiceRequest) -> tuple[bytes, tuple[str, ...]]:
    """The document's bytes, and where in the request it came from."""
    if body.document is not None and body.url is not None:
        raise invalid([field_error(("url",), "give the document or its url, not both")])
    if body.url is None:
        if body.document is None:
            raise invalid([field_error(("document",), "give the document, or its url")])
        document = body.document
        raw = document.encode() if isinstance(document, str) else orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        return raw, ("document",)
    limit = state.settings.max_body_bytes * 8
    hosts = HostPolicy(state.settings.service_hosts)

    async def allowed(request: httpx.Request) -> None:  # the URL and every redirect's target
        refused = hosts.refusal(str(request.url))
        if refused is not None:
            raise invalid([field_error(("url",), f"{request.url}: {refused}")])

    try:
        async with httpx.AsyncClient(
            timeout=FETCH_TIMEOUT_S, follow_redirects=True, event_hooks={"request": [allowed]}
        ) as client:
            async with client.stream("GET", body.url) as response:
                if response.status_code != 200:
                    raise invalid([field_error(("url",), f"fetching it answered {response.status_code}, not 200")])
                fetched = bytearray()
                async for chunk in response.aiter_bytes():
                    fetched += chunk
                    if len(fetched) > limit:
                        raise invalid([field_error(("url",), f"the document is larger than {limit:,} bytes")])
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as error:  # (a URL httpx cannot even parse is a ValueError too)
        raise invalid([field_error(("url",), f"could not be fetched: {type(error).__name__}: {error}")]) from None
    return bytes(fetched), ("url",)


def _too_large(definition: ServiceDefinition, size: int) -> str:
    return (
        f"its {len(definition.operations)} operations, read with their schemas, take {size:,} bytes; "
        f"a registration holds at most {topics.MAX_RECORD_BYTES:,}: register the operations you call as a smaller document"
    )


async def register_files(state: Ingest) -> list[str]:
    """Register the services of ``JOBLEDGER_SERVICE_FILES`` (each file a
    ``POST /services`` body, with an optional ``tenant``, default ``default``)
    unless the registry holds each as it is already; the names registered.
    A file that cannot be registered stops ingest's start, naming the file."""
    registered = []
    for path in state.settings.service_files:
        try:
            text = Path(path).read_bytes()
            given = read_document(text, ("file",))
            tenant = str(given.pop("tenant", DEFAULT_TENANT))
            body = ServiceRequest.model_validate(given)
            record = await registration(state, tenant, body)
        except (OSError, UnusableDocument, ValidationError, Problem) as error:
            raise ServiceFileRefused(f"service file {path}: {_why(error)}") from None
        if not _same(state, record, body):
            await _append(state, record)
            registered.append(f"{tenant}/{body.name}")
    return registered


class ServiceFileRefused(JobledgerError):
    """A file of ``JOBLEDGER_SERVICE_FILES`` cannot be registered."""


def _why(error: Exception) -> str:
    if isinstance(error, Problem):
        return "; ".join(f"{item['field'] or 'body'}: {item['message']}" for item in error.errors or []) or str(error)
    return str(error)


def _same(state: Ingest, record: ServiceRegistered, body: ServiceRequest) -> bool:
    """The registry holds this registration already: the same document, base URL and credentials."""
    held = state.services.get(record.tenant, record.name)
    if held is None or (held.document_sha256, held.definition.base_url, held.source_url, held.polling) != (
        record.document_sha256,
        record.definition.base_url,
        record.source_url,
        record.polling,
    ):
        return False
    if held.auth is None or record.auth is None or body.auth is None:
        return held.auth is None and record.auth is None
    given = body.auth.model_dump()
    try:
        opened = state.sealer.open(held.auth)
    except SecretsUnavailable:  # sealed with a key this ingest has not: registered again, with its own
        return False
    return held.auth.shown() == record.auth.shown() and all(given[name] == value for name, value in opened.items())
