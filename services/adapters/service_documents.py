"""An OpenAPI 3.0/3.1 or Swagger 2.0 document, read into a :class:`ServiceDefinition`.

Reading is done with maintained libraries, never by hand: YAML (a superset of
JSON) by PyYAML, ``$ref``s resolved by prance's resolver (references inside the
document only: a registration never makes jobledger fetch what a document
points to), the document checked by openapi-spec-validator. Real services
publish imperfect documents, so what the validator finds in a document that
still resolves and has operations is kept as the definition's ``warnings``;
only a document that cannot be used raises :class:`UnusableDocument`, naming
what is wrong.
"""

from __future__ import annotations

import copy
from itertools import islice
from typing import Any

import orjson
import yaml
from jsonschema_path import SchemaPath
from openapi_spec_validator.shortcuts import get_validator_cls
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from prance.util.resolver import RESOLVE_INTERNAL, RefResolver
from prance.util.url import ResolutionError

from schemas.errors import JobledgerError
from schemas.services import (
    METHODS,
    Operation,
    Parameter,
    ParameterLocation,
    RequestBody,
    ServiceDefinition,
    operation_key,
)

Where = tuple[Any, ...]
MAX_WARNINGS = 50
"""A document with more findings keeps this many, and says how many there were."""
_SWAGGER_SCHEMA_KEYS = (
    "type",
    "format",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
)
"""The schema of a Swagger 2.0 parameter outside the body is written on the parameter itself."""


class UnusableDocument(JobledgerError):
    """A document jobledger cannot call by: each problem as (where in the request, message)."""

    def __init__(self, problems: list[tuple[Where, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def read_document(text: str | bytes, where: Where = ("document",)) -> dict[str, Any]:
    """A document's text (JSON or YAML) as a mapping."""
    try:
        document = orjson.loads(text)  # most documents are JSON, which PyYAML reads a hundred times slower
    except orjson.JSONDecodeError:
        try:
            document = yaml.safe_load(text)
        except Exception as error:  # YAMLError, and what a hostile document makes the reader raise (RecursionError…)
            raise UnusableDocument([(where, f"not JSON or YAML: {type(error).__name__}: {error}")]) from None
    if not isinstance(document, dict):
        raise UnusableDocument([(where, "must be an OpenAPI or Swagger document: a JSON or YAML object")])
    return document


def definition_of(
    name: str, document: dict[str, Any], base_url: str | None = None, where: Where = ("document",)
) -> ServiceDefinition:
    """The definition of service ``name`` from its document (``base_url``, if
    given, overrides the document's servers)."""
    try:
        return _definition(name, document, base_url, where)
    except UnusableDocument:
        raise
    except Exception as error:  # a shape no reader of documents expects: refused, naming what broke
        raise UnusableDocument([(where, f"cannot be read as OpenAPI: {type(error).__name__}: {error}")]) from None


def _definition(name: str, document: dict[str, Any], base_url: str | None, where: Where) -> ServiceDefinition:
    spec_version = document.get("openapi") or document.get("swagger")
    if not isinstance(spec_version, str) or not spec_version.startswith(("2.", "3.0", "3.1")):
        raise UnusableDocument(
            [(where, "not an OpenAPI 3.0/3.1 or Swagger 2.0 document: it needs an `openapi: 3.x` or `swagger: '2.0'` field")]
        )
    warnings = _findings(document)
    external: list[str] = []
    resolved = _external_refs_opened(_resolved(document, where), external)
    if external:
        shown = ", ".join(sorted(set(external))[:5])
        warnings.append(f"references outside the document are not followed; what they describe is not checked: {shown}")
    paths = resolved.get("paths")
    if not isinstance(paths, dict):
        raise UnusableDocument([(where + ("paths",), "the document has no `paths`: no operation to call")])
    swagger = spec_version.startswith("2.")
    operations: dict[str, Operation] = {}
    for path, item in paths.items():
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters") or []
        for method in METHODS:
            raw = item.get(method.lower())
            if not isinstance(raw, dict):
                continue
            operation = _operation(method, path, raw, shared, resolved, swagger)
            if operation.key in operations:
                warnings.append(f"operationId {operation.key!r} is used twice; the second, {method} {path}, is left out")
                continue
            operations[operation.key] = operation
    if not operations:
        raise UnusableDocument([(where + ("paths",), "the document's `paths` hold no operation to call")])
    info = _mapping(resolved.get("info"))
    return ServiceDefinition(
        name=name,
        title=_text(info.get("title")),
        version=_text(info.get("version")),
        spec_version=spec_version,
        base_url=base_url or _document_base_url(resolved, swagger),
        operations=operations,
        warnings=tuple(warnings),
    )


def _findings(document: dict[str, Any]) -> list[str]:
    """What openapi-spec-validator finds wrong, as readable lines."""
    try:
        validator_class = get_validator_cls(document)
    except Exception as unknown:  # a version it does not know: nothing to check it against
        return [f"not checked by openapi-spec-validator: {unknown!r}"]
    # No resolver handlers: the validator must not fetch what a reference points to elsewhere.
    validator = validator_class(SchemaPath.from_dict(copy.deepcopy(document), handlers={}))
    findings: list[str] = []
    errors = validator.iter_errors()
    try:
        for finding in islice(errors, MAX_WARNINGS + 1):
            findings.append(_finding(finding))
    except Exception as stopped:  # the validator itself gave up on the document
        findings.append(f"the validator stopped: {stopped}")
    if len(findings) > MAX_WARNINGS:
        findings = findings[:MAX_WARNINGS] + [f"… and more (the first {MAX_WARNINGS} are listed)"]
    return findings


def _finding(error: OpenAPIValidationError | Exception) -> str:
    """``/json/pointer: the validator's first line``."""
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in getattr(error, "absolute_path", ()) or ()]
    message = (getattr(error, "message", None) or str(error)).split("\n", 1)[0]
    return f"/{'/'.join(parts)}: {message}" if parts else message


def _resolved(document: dict[str, Any], where: Where) -> dict[str, Any]:
    """The document with its internal ``$ref``s replaced by what they point to."""
    resolver = RefResolver(
        copy.deepcopy(document),
        "file:///registered-document",
        resolve_types=RESOLVE_INTERNAL,
        recursion_limit_handler=_recursion_left_open,
    )
    try:
        resolver.resolve_references()
    except (ResolutionError, KeyError, ValueError) as error:
        raise UnusableDocument([(where, f"a $ref does not resolve: {error}")]) from None
    specs: dict[str, Any] = resolver.specs
    return specs


def _external_refs_opened(node: Any, found: list[str]) -> Any:
    """``node`` with each reference left unresolved (one outside the document)
    replaced by an empty schema, which takes any value; their targets in ``found``."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.append(node["$ref"])
            return {}
        return {key: _external_refs_opened(value, found) for key, value in node.items()}
    if isinstance(node, list):
        return [_external_refs_opened(value, found) for value in node]
    return node


def _recursion_left_open(limit: int, parsed_url: Any, recursions: Any = ()) -> dict[str, Any]:
    """A schema that contains itself (a tree's node) is resolved once; where
    it recurs, any value is taken."""
    return {}


def _operation(method: str, path: str, raw: dict[str, Any], shared: list, document: dict[str, Any], swagger: bool) -> Operation:
    operation_id = _text(raw.get("operationId"))
    by_name: dict[tuple[str, str], dict] = {}
    for parameter in [*shared, *(raw.get("parameters") or [])]:  # an operation's own override the path's
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str) and isinstance(parameter.get("in"), str):
            by_name[(parameter["name"], parameter["in"])] = parameter
    parameters: list[Parameter] = []
    request_body: RequestBody | None = None
    for parameter in by_name.values():
        location = parameter["in"]
        if swagger and location == "body":
            request_body = RequestBody(
                required=bool(parameter.get("required")),
                media_types=tuple(raw.get("consumes") or document.get("consumes") or ("application/json",)),
                json_schema=parameter.get("schema") if isinstance(parameter.get("schema"), dict) else {},
            )
            continue
        if swagger and location == "formData":
            continue  # gathered below as a form body
        if location not in ParameterLocation.__members__.values():
            continue
        schema = parameter.get("schema") if not swagger else {k: parameter[k] for k in _SWAGGER_SCHEMA_KEYS if k in parameter}
        parameters.append(
            Parameter(
                name=parameter["name"],
                location=ParameterLocation(location),
                required=bool(parameter.get("required")) or location == "path",
                json_schema=schema if isinstance(schema, dict) else {},
                description=_text(parameter.get("description")),
            )
        )
    if swagger:
        form = [p for p in by_name.values() if p["in"] == "formData"]
        if form:
            request_body = RequestBody(
                required=any(p.get("required") for p in form),
                media_types=tuple(raw.get("consumes") or document.get("consumes") or ("multipart/form-data",)),
                json_schema={
                    "type": "object",
                    "properties": {
                        p["name"]: {k: p[k] for k in _SWAGGER_SCHEMA_KEYS if k in p and p.get("type") != "file"} for p in form
                    },
                    "required": [p["name"] for p in form if p.get("required")],
                },
            )
    elif isinstance(raw.get("requestBody"), dict):
        request_body = _request_body(raw["requestBody"])
    responses = _mapping(raw.get("responses"))
    return Operation(
        key=operation_key(method, path, operation_id),
        method=method,
        path=path,
        operation_id=operation_id,
        summary=_text(raw.get("summary")),
        parameters=tuple(parameters),
        request_body=request_body,
        responses={
            str(status): _text(answer.get("description")) or ""
            for status, answer in responses.items()
            if isinstance(answer, dict)
        },
    )


def _request_body(raw: dict[str, Any]) -> RequestBody:
    content = _mapping(raw.get("content"))
    schema = next(
        (media["schema"] for media in content.values() if isinstance(media, dict) and isinstance(media.get("schema"), dict)), None
    )
    return RequestBody(required=bool(raw.get("required")), media_types=tuple(content), json_schema=schema)


def _document_base_url(document: dict[str, Any], swagger: bool) -> str | None:
    if swagger:
        host = document.get("host")
        if not isinstance(host, str):
            return None
        scheme = (document.get("schemes") or ["https"])[0]
        return f"{scheme}://{host}{document.get('basePath') or ''}".rstrip("/")
    servers = document.get("servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], dict) and isinstance(servers[0].get("url"), str):
        url: str = servers[0]["url"]
        return url.rstrip("/") if "://" in url else None  # a relative server URL needs the registration's base_url
    return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
