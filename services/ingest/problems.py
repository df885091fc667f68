"""RFC 9457 problem documents for every error the API returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.api import ProblemDocument
from schemas.errors import JobledgerError, ProblemCode

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:jobledger:problem:"


class Problem(JobledgerError):
    """An error the client can act on, answered as ``application/problem+json``."""

    def __init__(
        self,
        status: int,
        code: ProblemCode,
        title: str,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extensions = extensions

    def response(self, instance: str) -> JSONResponse:
        return JSONResponse(self.body(instance), status_code=self.status, media_type=PROBLEM_JSON, headers=self.headers)

    def body(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.code,
            "title": self.title,
            "status": self.status,
            "instance": instance,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extensions)
        return body


class BodyProblem(StarletteHTTPException):
    """A problem met while the body is read or decoded: an HTTP exception, so
    the framework's body parsing lets it through instead of calling the body
    malformed; answered as its :meth:`problem`."""

    def problem(self) -> Problem:
        raise NotImplementedError


class BodyTooLarge(BodyProblem):
    """Raised while a chunked body is read."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, "Request body too large")
        self.max_bytes = max_bytes

    def problem(self) -> Problem:
        return Problem(413, ProblemCode.TOO_LARGE, "Request body too large", f"The limit is {self.max_bytes} bytes.")


def invalid(errors: list[dict[str, Any]]) -> Problem:
    """422 naming each bad field: ``{"field": "payload.seconds", "pointer": "/payload/seconds", "message": …}``."""
    detail = "; ".join(f"{error['field'] or 'body'}: {error['message']}" for error in errors)
    return Problem(422, ProblemCode.VALIDATION, "The request is not valid", detail, errors=errors)


def field_error(location: tuple[Any, ...], message: str) -> dict[str, Any]:
    # A key may be the bad value itself (a lone surrogate): name it as its escape.
    parts = [str(part).encode("utf-8", "backslashreplace").decode("utf-8") for part in location]
    return {
        "field": ".".join(parts),
        "pointer": "/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts),
        "message": message.removeprefix(PYDANTIC_PREFIX),
    }


PYDANTIC_PREFIX = "Value error, "
"""What pydantic puts before the message of a validator's ValueError: the message is ours, the prefix is noise."""


def _request_error(request: Request, item: Mapping[str, Any], body: Any = None) -> dict[str, Any]:
    """One error of FastAPI's request validation, named as the client wrote it:
    body fields as in the body (without the tags pydantic puts in the location
    of a member of a tagged union), bad JSON by its position, a body that is
    not JSON by its content type."""
    location = tuple(item["loc"])
    if item["type"] == "json_invalid":
        reason = (item.get("ctx") or {}).get("error") or item["msg"]
        return field_error((), f"not valid JSON: {reason} (at character {location[-1]})")
    if location == ("body",) and item["type"] in ("model_attributes_type", "dict_type"):
        content_type = request.headers.get("content-type")
        if content_type is None or "json" not in content_type:
            sent = f"Content-Type {content_type}" if content_type else "no Content-Type"
            return field_error((), f"must be a JSON object sent with Content-Type: application/json; this request had {sent}")
        return field_error((), "must be a JSON object")
    if location[:1] == ("body",):
        location = _as_written(location[1:], body)
    return field_error(location, item["msg"])


def _as_written(location: tuple[Any, ...], body: Any) -> tuple[Any, ...]:
    """``location`` without the tags of tagged unions: a part that names no key of
    the object there but is that object's ``type`` (``auth.bearer.token`` for
    ``{"auth": {"type": "bearer"}}``) is pydantic's, not the client's."""
    written: list[Any] = []
    node = body
    for part in location:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        written.append(part)
        node = _child(node, part)
    return tuple(written)


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def pydantic_errors(errors: Sequence[Mapping[str, Any]], prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return [field_error(prefix + tuple(error["loc"]), error["msg"]) for error in errors]


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, problem: Problem) -> JSONResponse:
        return problem.response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        return invalid([_request_error(request, item, error.body) for item in error.errors()]).response(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if isinstance(error, BodyProblem):
            return error.problem().response(request.url.path)
        code = {404: ProblemCode.NOT_FOUND, 405: ProblemCode.METHOD_NOT_ALLOWED}.get(error.status_code, ProblemCode.HTTP_ERROR)
        headers = dict(error.headers) if error.headers else None
        return Problem(error.status_code, code, str(error.detail), headers=headers).response(request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        return unexpected(request.url.path)


def unexpected(path: str) -> JSONResponse:
    """A 500 problem for an error nobody expected; the error, with its traceback, is logged."""
    structlog.get_logger(component="ingest").exception("unhandled error", path=path)
    return Problem(500, ProblemCode.INTERNAL, "Internal error", "The error was logged.").response(path)


PROBLEM_RESPONSE: dict[str, Any] = {
    "model": ProblemDocument,
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDocument"}}},
    "description": "RFC 9457 problem document",
}
"""An answer documented in OpenAPI as a problem document."""
AUTHENTICATED: dict[int | str, dict[str, Any]] = {401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE}
"""What any route that takes an API key may answer: no key, or one without the route's scope."""
PROBLEMS: dict[int | str, dict[str, Any]] = {**AUTHENTICATED, 422: PROBLEM_RESPONSE}
"""What any authenticated route with input may answer."""
