"""The ``service`` job type: call an operation of a registered service with httpx.

The call is built from the service's definition (:mod:`schemas.services`) as
the registry holds it when the attempt runs: parameters where the operation
puts them, the body as its first media type says. What the service answers
decides the attempt:

- 2xx: the job's result — ``status``, the headers that matter, and the body
  (JSON as JSON, other text as text, anything else base64);
- 408, 429 and 5xx, a connection error or a timeout: the attempt failed and the
  job's backoff retries it (no sooner than the service's ``Retry-After``);
- any other 4xx: the job fails now (retrying the same request would not help),
  with the status and the service's answer as its error;
- 202: a long-running operation, whose status is polled until it ends (its
  progress the job's; :class:`schemas.services.Polling`).

Before it is sent, a pipeline step's call is filled from the results of the
steps it depends on (``{{ steps.reserve.body.id }}``), the service's sealed
credentials are opened, and the call's files are read from the artifact store.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from schemas.artifacts import UPLOAD_PREFIX, ArtifactRef
from schemas.builtin import SERVICE
from schemas.errors import JobledgerError
from schemas.services import (
    AuthType,
    Operation,
    ParameterLocation,
    Polling,
    SealedAuth,
    ServiceCall,
    ServiceDefinition,
    ServiceRegistered,
    TemplateError,
    UnknownOperation,
    field_at,
    filled,
    has_template,
    service_call_problems,
)
from services.adapters.artifacts import ArtifactMissing, ArtifactStore
from services.adapters.secrets import Sealer
from services.adapters.service_registry import ServiceRegistry
from services.common.egress import ANY_HOST, HostPolicy
from services.common.lifecycle import Service
from services.common.settings import ConnectionSettings
from services.processor.handlers import HandlerRegistry, JobContext, PermanentError, RetryLater

RETRYABLE_STATUSES = frozenset({408, 429})
"""Besides every 5xx: answers that say "not now" rather than "not this"."""
KEPT_HEADERS = ("content-type", "location", "etag", "last-modified")
"""The answer's headers a result keeps."""
MAX_ERROR_BODY_CHARS = 2_000
"""How much of a refusing service's answer the job's error quotes."""
REGISTRY_WAIT_S = 5.0
"""How long a call waits for its service's registration to reach this runner through the log."""
MAX_STATUS_TROUBLES = 5
"""A long-running operation's status that fails this many times in a row (5xx, 429, no answer) ends the attempt."""


class ServiceRefused(PermanentError):
    """The service answered a 4xx that retrying would not change."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.error_type = f"HTTP {status}"


class ServiceUnavailable(JobledgerError):
    """The service answered 408, 429 or 5xx: the job's backoff retries."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.error_type = f"HTTP {status}"


class ServiceUnreachable(JobledgerError):
    """No answer: the connection failed or the call timed out. The job's backoff retries."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class OperationFailed(PermanentError):
    """A long-running operation reported that it failed."""

    error_type = "operation failed"


class ServiceCaller:
    """The handler of ``service`` jobs, with the registry it reads and the client it calls with."""

    def __init__(
        self,
        registry: ServiceRegistry,
        http: httpx.AsyncClient,
        sealer: Sealer,
        artifacts: ArtifactStore | None = None,
        hosts: HostPolicy | None = None,
    ) -> None:
        self._registry = registry
        self._http = http
        self._hosts = hosts or HostPolicy([ANY_HOST])
        self._sealer = sealer
        self._artifacts = artifacts

    async def __call__(self, ctx: JobContext, call: ServiceCall) -> dict[str, Any]:
        if has_template(call.params) or has_template(call.body):
            try:
                call = call.model_copy(update={"params": filled(call.params, ctx.inputs), "body": filled(call.body, ctx.inputs)})
            except TemplateError as error:
                raise PermanentError(str(error)) from None
        registered, operation = self._resolved(await self._registry.known(ctx.tenant, call.service, REGISTRY_WAIT_S), call)
        auth = registered.auth
        credentials = (auth, self._sealer.open(auth)) if auth is not None else None
        files = await self._files(ctx.tenant, call)
        request = request_of(registered.definition, operation, call, credentials, files)
        response = await self._send(request, call, operation)
        if response.status_code == 202:
            response = await self._followed(ctx, call, operation, registered, request, response, credentials)
        return outcome(call, operation, response)

    async def _send(self, request: httpx.Request, call: ServiceCall, operation: Operation) -> httpx.Response:
        """Every request of a call goes through here (the operation, each status poll, a 303's target), so
        each is checked against ``JOBLEDGER_SERVICE_HOSTS``: a refused host fails the job, not retried."""
        refused = self._hosts.refusal(str(request.url))
        if refused is not None:
            raise PermanentError(f"{call.service} {operation.key}: {refused}")
        try:
            return await self._http.send(request)
        except httpx.TimeoutException as error:
            raise ServiceUnreachable(
                f"{call.service} {operation.key}: no answer within {call.call_timeout_s:g} s", type(error).__name__
            ) from None
        except httpx.TransportError as error:
            raise ServiceUnreachable(f"{call.service} {operation.key}: {error}", type(error).__name__) from None

    async def _followed(
        self,
        ctx: JobContext,
        call: ServiceCall,
        operation: Operation,
        registered: ServiceRegistered,
        request: httpx.Request,
        accepted: httpx.Response,
        credentials: tuple[SealedAuth, dict[str, str]] | None,
    ) -> httpx.Response:
        """A long-running operation's last answer: its status polled, with
        growing intervals, until it is no longer running (:class:`Polling`).
        A status answer that fails for a while (5xx, no answer) is asked again
        — re-sending the operation itself could do its work twice."""
        polling = registered.polling
        status_url = _status_url(polling, accepted)
        if status_url is None:
            return accepted  # accepted, with nowhere to look: that is all there is to know
        url = request.url.join(status_url)

        def asking(target: httpx.URL) -> httpx.Request:  # the credentials go to the service's own origin only
            same_origin = (target.scheme, target.host, target.port) == (request.url.scheme, request.url.host, request.url.port)
            return status_request(target, call, credentials if same_origin else None)

        interval, troubles = polling.first_interval_s, 0
        while True:
            if ctx.cancelled:
                raise PermanentError(f"cancelled while {call.service} {operation.key} was still running (status: {url})")
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, polling.max_interval_s)
            try:
                answer = await self._send(asking(url), call, operation)
            except ServiceUnreachable as unreachable:
                troubles += 1
                if troubles >= MAX_STATUS_TROUBLES:
                    raise unreachable from None
                continue
            if answer.status_code >= 500 or answer.status_code in RETRYABLE_STATUSES:
                troubles += 1
                if troubles >= MAX_STATUS_TROUBLES:
                    return answer  # (failed, and retried as the job's backoff says)
                continue
            troubles = 0
            body = _json(answer)
            state = field_at(body, polling.state_field) if polling.state_field else None
            progress = field_at(body, polling.progress_field) if polling.progress_field else None
            if isinstance(progress, (int, float)) and not isinstance(progress, bool) and 0 <= progress <= 100:
                await ctx.progress(float(progress), str(state) if state is not None else None)
            if answer.status_code == 202:
                continue
            if answer.status_code == 303 and "location" in answer.headers:
                return await self._send(asking(url.join(answer.headers["location"])), call, operation)
            if polling.state_field is None or state in polling.done_states:
                return answer
            if state in polling.failed_states:
                raise OperationFailed(f"{call.service} {operation.key} ended {state}: {answer.text[:MAX_ERROR_BODY_CHARS]}")

    async def _files(self, tenant: str, call: ServiceCall) -> dict[str, tuple[ArtifactRef, bytes]]:
        """The call's uploads, read from the artifact store and checked against their sha256."""
        if not call.files:
            return {}
        if self._artifacts is None:
            raise PermanentError("this runner has no artifact store (JOBLEDGER_S3_ENDPOINT): it cannot send files")
        files = {}
        for name, ref in call.files.items():
            try:
                files[name] = await self._artifacts.read_upload(tenant, ref.removeprefix(UPLOAD_PREFIX))
            except ArtifactMissing as missing:
                raise PermanentError(f"file {name!r}: {missing}") from None
        return files

    def _resolved(self, registered: ServiceRegistered | None, call: ServiceCall) -> tuple[ServiceRegistered, Operation]:
        if registered is None:
            raise PermanentError(f"no service {call.service!r} is registered (it was deleted after the job was submitted?)")
        definition = registered.definition
        try:
            operation = definition.operation(call.operation)
        except UnknownOperation as unknown:
            raise PermanentError(str(unknown)) from None
        problems = service_call_problems(definition, operation, call)
        if problems:  # the service was registered again, with other schemas, since the submit
            listed = "; ".join(f"{'.'.join(str(part) for part in where)}: {message}" for where, message in problems)
            raise PermanentError(f"the call no longer fits {call.service} {operation.key}: {listed}")
        return registered, operation


class ServiceCalls(Service):
    """The processor's part that lets its runner call services: the registry,
    folded from ``jobs.services`` before the runner starts, and one HTTP client
    (its connections pooled) for every call."""

    def __init__(self, settings: ConnectionSettings, handlers: HandlerRegistry, artifacts: ArtifactStore | None = None) -> None:
        super().__init__()
        self.registry = ServiceRegistry(settings)
        self.http = httpx.AsyncClient(follow_redirects=False)
        if SERVICE.name not in handlers:  # (unless a handler module bound the type itself)
            caller = ServiceCaller(
                self.registry, self.http, Sealer(settings.secret_key), artifacts, HostPolicy(settings.service_hosts)
            )
            handlers.handler(SERVICE)(caller)

    async def on_start(self) -> None:
        await self.registry.start()

    async def on_stop(self) -> None:
        await self.registry.stop()
        await self.http.aclose()


def request_of(
    definition: ServiceDefinition,
    operation: Operation,
    call: ServiceCall,
    credentials: tuple[SealedAuth, dict[str, str]] | None = None,
    files: dict[str, tuple[ArtifactRef, bytes]] | None = None,
) -> httpx.Request:
    """The HTTP request of a call (checked against the operation already), with
    the service's credentials (as registered, and their opened secret) and the
    call's files (as stored, and their bytes)."""
    if definition.base_url is None:
        raise PermanentError(f"service {definition.name!r} has no base URL: register it again with base_url")
    path = operation.path
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    for name, value in call.params.items():
        parameter = operation.parameter(name)
        if parameter is None:
            continue
        if parameter.location is ParameterLocation.PATH:
            path = path.replace("{" + name + "}", quote(_text(value), safe=""))
        elif parameter.location is ParameterLocation.QUERY:
            query[name] = [_text(item) for item in value] if isinstance(value, list) else _text(value)
        elif parameter.location is ParameterLocation.HEADER:
            headers[name] = _text(value)
        else:
            cookies[name] = _text(value)
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    if credentials is not None:
        _authorize(credentials, headers, query)
    url = definition.base_url.rstrip("/") + path
    content: dict[str, Any] = {}
    media = operation.media_type
    if files and media.startswith("multipart/"):
        fields = call.body if isinstance(call.body, dict) else {}
        content["data"] = {name: _text(value) for name, value in fields.items()}
        content["files"] = [(name, (stored.name, data, stored.content_type)) for name, (stored, data) in files.items()]
    elif files:  # the operation takes raw bytes: the one file is the body
        ((stored, data),) = files.values()
        content["content"] = data
        headers["Content-Type"] = media if media not in ("", "*/*") else stored.content_type
    elif call.body is not None and operation.request_body is not None:
        if media == "application/x-www-form-urlencoded" and isinstance(call.body, dict):
            content["data"] = {name: _text(value) for name, value in call.body.items()}
        elif media.startswith("multipart/") and isinstance(call.body, dict):
            content["files"] = {name: (None, _text(value).encode()) for name, value in call.body.items()}
        elif media.startswith("text/"):
            content["content"] = _text(call.body).encode()
            headers["Content-Type"] = media
        else:
            content["content"] = orjson.dumps(call.body)
            headers["Content-Type"] = media if "json" in media else "application/json"
    request = httpx.Request(operation.method, url, params=query, headers=headers, **content)
    request.extensions["timeout"] = httpx.Timeout(call.call_timeout_s).as_dict()
    return request


def status_request(url: httpx.URL, call: ServiceCall, credentials: tuple[SealedAuth, dict[str, str]] | None) -> httpx.Request:
    """A GET of a long-running operation's status, with the service's credentials (if it is the service's)."""
    headers: dict[str, str] = {}
    query: dict[str, Any] = {}
    if credentials is not None:
        _authorize(credentials, headers, query)
    request = httpx.Request("GET", url.copy_merge_params(query) if query else url, headers=headers)
    request.extensions["timeout"] = httpx.Timeout(call.call_timeout_s).as_dict()
    return request


def _status_url(polling: Polling, accepted: httpx.Response) -> str | None:
    if polling.status_url_field is not None:
        found = field_at(_json(accepted), polling.status_url_field)
        if isinstance(found, str) and found:
            return found
    return accepted.headers.get("location")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return None


def _authorize(credentials: tuple[SealedAuth, dict[str, str]], headers: dict[str, str], query: dict[str, Any]) -> None:
    auth, secret = credentials
    if auth.type is AuthType.BEARER:
        headers["Authorization"] = f"Bearer {secret['token']}"
    elif auth.type is AuthType.BASIC:
        pair = f"{secret['username']}:{secret['password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif auth.name is not None:
        (headers if auth.location == "header" else query)[auth.name] = secret["value"]


def outcome(call: ServiceCall, operation: Operation, response: httpx.Response) -> dict[str, Any]:
    """The job's result for a 2xx; a failure (retried or not) for anything else."""
    status = response.status_code
    what = f"{call.service} {operation.key} answered {status} {response.reason_phrase}".rstrip()
    if 200 <= status < 300:
        return {"status": status, "headers": _kept_headers(response), **_body(response)}
    excerpt = response.text[:MAX_ERROR_BODY_CHARS] if response.content else ""
    message = f"{what}: {excerpt}" if excerpt else what
    if status in RETRYABLE_STATUSES or status >= 500:
        after = retry_after_s(response.headers.get("retry-after"))
        if after is not None:
            raise RetryLater(message, after)
        raise ServiceUnavailable(message, status)
    raise ServiceRefused(message, status)


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header's wait in seconds: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _kept_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}


def _body(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {"body": None}
    if "json" in response.headers.get("content-type", ""):
        try:
            return {"body": response.json()}
        except ValueError:
            pass
    try:
        return {"body": response.content.decode(response.encoding or "utf-8")}
    except (UnicodeDecodeError, LookupError):
        return {"body_base64": base64.b64encode(response.content).decode()}


def _text(value: Any) -> str:
    """A parameter's value as it goes on the wire: JSON's booleans, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)
