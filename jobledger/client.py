"""The asynchronous client: :class:`AsyncClient` and its job handle :class:`AsyncJob`.

    async with AsyncClient() as client:
        job = await client.submit("sleep", {"seconds": 2}, priority="high")
        async for update in job.follow():
            print(update.state, update.progress)
        done = await job.wait(timeout=60)   # raises JobFailed if it did not succeed

``AsyncClient()`` reads ``JOBLEDGER_URL`` and ``JOBLEDGER_API_KEY`` (defaults:
the embedded stack of ``make run``).
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import inspect
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from jobledger.errors import ApiError, ClientClosed, JobFailed, WaitTimeout, answering, raise_for_problem
from schemas import TERMINAL, JobStatus
from schemas.api import (
    DEV_API_KEY,
    BatchAccepted,
    BulkResult,
    JobAccepted,
    JobList,
    JobLogList,
    JobView,
    ScheduleList,
    ScheduleView,
    ServiceList,
    ServiceSummary,
    ServiceView,
    UploadView,
    WorkerList,
)
from schemas.logs import StoredLogLine

DEFAULT_URL = "http://127.0.0.1:8000"
LOG_PAGE = 1000
"""Lines asked for per page of a job's log."""
LONG_POLL_S = 30.0
"""One ``GET /jobs/{id}?wait_s=`` holds at most this long; a wait repeats it."""


@dataclass(frozen=True)
class JobUpdate:
    """One message of a job's event stream: the event, and the job's state after it."""

    seq: int
    event_type: str
    state: JobStatus
    progress: float | None
    progress_message: str | None
    event: dict[str, Any]


async def _cloud_events(messages) -> AsyncGenerator[dict[str, Any], None]:
    async for message in messages:
        if message.data:
            yield message.json()


class AsyncClient:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url, headers = resolved(base_url, api_key)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, read=timeout_s + LONG_POLL_S),
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        if self._http.is_closed:
            raise ClientClosed()
        with answering(self.base_url):
            response = await self._http.request(method, path, **kwargs)
        raise_for_problem(response)
        return response

    # --- commands ---------------------------------------------------------------

    async def submit(
        self, type: str, payload: dict[str, Any] | None = None, *, idempotency_key: str | None = None, **options: Any
    ) -> AsyncJob:
        """Submit a job; options as in ``POST /jobs`` (``max_attempts``, ``priority``,
        ``labels``, ``run_at``, ``concurrency_key``…). Returns once the log has it."""
        body, headers = submission(type, payload, idempotency_key, options)
        accepted = JobAccepted.model_validate((await self._request("POST", "/jobs", json=body, headers=headers)).json())
        return AsyncJob(self, accepted.id)

    async def submit_pipeline(
        self,
        steps: list[dict[str, Any]],
        payload: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> AsyncJob:
        """Submit a pipeline: ``steps`` as in ``POST /jobs`` (``{"name", "type", "payload"?,
        "depends_on"?, "compensate"?}``); ``payload`` goes to each step without one of its own."""
        return await self.submit("pipeline", payload, idempotency_key=idempotency_key, steps=steps, **options)

    async def submit_many(self, jobs: list[dict[str, Any]]) -> BatchAccepted:
        """``POST /jobs:batch``: each item is judged on its own (see ``items[i].status``)."""
        return BatchAccepted.model_validate((await self._request("POST", "/jobs:batch", json={"jobs": _jsonable(jobs)})).json())

    async def cancel(self, job_id: str, reason: str | None = None, grace_s: float = 10.0) -> JobAccepted:
        body = {"reason": reason, "grace_s": grace_s}
        return JobAccepted.model_validate((await self._request("POST", f"/jobs/{job_id}/cancel", json=body)).json())

    async def retry(self, job_id: str) -> JobAccepted:
        return JobAccepted.model_validate((await self._request("POST", f"/jobs/{job_id}/retry")).json())

    async def update(self, job_id: str, *, priority: str | None = None, run_at: datetime | None = None) -> JobAccepted:
        """Change a job that has not started: its ``priority``, or (while it waits for its time) its ``run_at``."""
        body = _jsonable({"priority": priority, "run_at": run_at})
        return JobAccepted.model_validate((await self._request("PATCH", f"/jobs/{job_id}", json=body)).json())

    async def delete(self, job_id: str) -> JobAccepted:
        """Delete a job that ended: the read models forget it, the log keeps its history."""
        return JobAccepted.model_validate((await self._request("DELETE", f"/jobs/{job_id}")).json())

    # --- reads ------------------------------------------------------------------

    async def get(self, job_id: str, *, as_of: datetime | None = None) -> JobView:
        return JobView.model_validate((await self._request("GET", f"/jobs/{job_id}", params=as_of_params(as_of))).json())

    async def list(
        self,
        *,
        state: JobStatus | str | None = None,
        type: str | None = None,
        priority: str | None = None,
        labels: dict[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        id_prefix: str | None = None,
        page_size: int = 100,
    ) -> AsyncGenerator[JobView, None]:
        """Every matching job, newest first, page after page."""
        params: dict[str, Any] = {"limit": page_size}
        for name, value in (("state", state), ("type", type), ("priority", priority), ("id_prefix", id_prefix)):
            if value is not None:
                params[name] = getattr(value, "value", value)
        if created_after is not None:
            params["created_after"] = created_after.isoformat()
        if created_before is not None:
            params["created_before"] = created_before.isoformat()
        params["label"] = [f"{key}:{value}" for key, value in (labels or {}).items()]
        while True:
            page = JobList.model_validate((await self._request("GET", "/jobs", params=params)).json())
            for job in page.items:
                yield job
            if page.next_cursor is None:
                return
            params["cursor"] = page.next_cursor

    async def events(self, job_id: str, until: int | datetime | str | None = None) -> builtins.list[dict[str, Any]]:
        """The job's events (CloudEvents objects, hash chain included), up to a seq or a time."""
        params = {"until": until.isoformat() if isinstance(until, datetime) else str(until)} if until is not None else {}
        return (await self._request("GET", f"/jobs/{job_id}/events", params=params)).json()["items"]

    async def logs(self, job_id: str, after: int = 0) -> builtins.list[StoredLogLine]:
        """The job's log lines stored so far (past index ``after``), oldest first: what its handlers wrote with ``ctx.log``."""
        lines: builtins.list[StoredLogLine] = []
        cursor = str(after) if after else None
        while True:
            params = {"limit": str(LOG_PAGE), **({"cursor": cursor} if cursor else {})}
            page = JobLogList.model_validate((await self._request("GET", f"/jobs/{job_id}/logs", params=params)).json())
            lines.extend(page.items)
            if len(page.items) < LOG_PAGE:
                return lines
            cursor = page.next_cursor

    async def follow_logs(self, job_id: str, after: int = 0) -> AsyncGenerator[StoredLogLine, None]:
        """The job's log lines as they come (server-sent events), until the job has ended and its last lines are in."""
        headers = {"Last-Event-ID": str(after)} if after else {}
        async with self._stream(f"/jobs/{job_id}/logs/stream", headers) as source:
            async for message in source.aiter_sse():
                if message.event == "log" and message.data:
                    yield StoredLogLine.model_validate_json(message.data)

    async def artifact(self, job_id: str, name: str = "result") -> bytes:
        """A result stored as an artifact (a step's by its name, a job's as ``result``), checked against its sha256."""
        response = await self._request("GET", f"/jobs/{job_id}/artifacts/{name}")
        expected = response.headers.get("etag", "").strip('"')
        if expected and hashlib.sha256(response.content).hexdigest() != expected:
            raise ApiError(
                502,
                {
                    "type": "urn:jobledger:problem:artifact-corrupt",
                    "title": "Artifact corrupt",
                    "detail": f"artifact {name!r} of job {job_id} does not match its sha256",
                },
            )
        return response.content

    async def follow(self, job_id: str, after_seq: int = 0) -> AsyncGenerator[JobUpdate, None]:
        """Each change of the job as it happens (server-sent events), until it ends."""
        headers = {"Last-Event-ID": str(after_seq)} if after_seq else {}
        async with self._stream(f"/jobs/{job_id}/stream", headers) as source:
            async for message in source.aiter_sse():
                if not message.data:
                    continue
                data = message.json()
                yield JobUpdate(
                    seq=int(message.id),
                    event_type=message.event,
                    state=JobStatus(data["state"]),
                    progress=data.get("progress"),
                    progress_message=data.get("progress_message"),
                    event=data["event"],
                )

    @asynccontextmanager
    async def watch(self) -> AsyncIterator[AsyncGenerator[dict[str, Any], None]]:
        """Every event of every job of your tenant as it happens (``GET /jobs:stream``),
        as CloudEvents objects, without end. Listening once the block is entered::

            async with client.watch() as events:   # nothing from here on is missed
                job = await client.submit("noop")
                async for event in events: ...
        """
        async with self._stream("/jobs:stream") as source:
            messages = source.aiter_sse()
            async for message in messages:
                if message.event == "ready":
                    break
            events = _cloud_events(messages)
            try:
                yield events
            finally:  # both, in order: a generator left open is closed by a task on a loop that may be gone
                await events.aclose()
                await messages.aclose()

    @asynccontextmanager
    async def _stream(self, path: str, headers: dict[str, str] | None = None):
        """A server-sent event stream of the API, open; a refusal raises its :class:`ApiError`."""
        with answering(self.base_url):
            async with aconnect_sse(self._http, "GET", path, headers=dict(headers or {})) as source:
                if not source.response.is_success:
                    await source.response.aread()
                    raise_for_problem(source.response)
                yield source

    # --- schedules --------------------------------------------------------------

    async def schedule(
        self, cron: str, type: str, payload: dict[str, Any] | None = None, *, timezone: str = "UTC", **options: Any
    ) -> ScheduleView:
        """A cron schedule: each tick (``cron`` read in ``timezone``) submits one job of ``type``."""
        body = {"cron": cron, "timezone": timezone, "job": {"type": type, "payload": payload or {}, **_jsonable(options)}}
        return ScheduleView.model_validate((await self._request("POST", "/schedules", json=body)).json())

    async def schedules(self) -> builtins.list[ScheduleView]:
        return ScheduleList.model_validate((await self._request("GET", "/schedules")).json()).items

    async def get_schedule(self, schedule_id: str) -> ScheduleView:
        return ScheduleView.model_validate((await self._request("GET", f"/schedules/{schedule_id}")).json())

    async def delete_schedule(self, schedule_id: str) -> ScheduleView:
        return ScheduleView.model_validate((await self._request("DELETE", f"/schedules/{schedule_id}")).json())

    async def pause_schedule(self, schedule_id: str) -> ScheduleView:
        """No tick submits a job until :meth:`resume_schedule`."""
        return ScheduleView.model_validate((await self._request("POST", f"/schedules/{schedule_id}/pause")).json())

    async def resume_schedule(self, schedule_id: str) -> ScheduleView:
        """Tick again from now on (the ticks missed while paused are skipped)."""
        return ScheduleView.model_validate((await self._request("POST", f"/schedules/{schedule_id}/resume")).json())

    async def trigger_schedule(self, schedule_id: str) -> AsyncJob:
        """Submit the schedule's job once, now."""
        accepted = JobAccepted.model_validate((await self._request("POST", f"/schedules/{schedule_id}/trigger")).json())
        return AsyncJob(self, accepted.id)

    # --- services -----------------------------------------------------------------

    async def register_service(
        self,
        name: str,
        *,
        document: dict[str, Any] | str | None = None,
        url: str | None = None,
        base_url: str | None = None,
        auth: dict[str, Any] | None = None,
        polling: dict[str, Any] | None = None,
    ) -> ServiceView:
        """Register (or replace) service ``name`` by its OpenAPI document, given or at ``url``."""
        fields = dict(name=name, document=document, url=url, base_url=base_url, auth=auth, polling=polling)
        body = {key: value for key, value in fields.items() if value is not None}
        return ServiceView.model_validate((await self._request("POST", "/services", json=body)).json())

    async def service_list(self) -> builtins.list[ServiceSummary]:
        return ServiceList.model_validate((await self._request("GET", "/services")).json()).items

    async def bulk(
        self,
        action: str,
        *,
        dry_run: bool = False,
        limit: int = 500,
        cursor: str | None = None,
        reason: str | None = None,
        grace_s: float = 10.0,
        **filter: Any,
    ) -> BulkResult:
        """One page of ``cancel`` or ``retry`` over the jobs of a filter (``state``, ``type``,
        ``labels``, ``created_after``, ``created_before``); pass ``next_cursor`` on for the next page (``admin``)."""
        body = {
            "action": action,
            "filter": _jsonable(filter),
            "dry_run": dry_run,
            "limit": limit,
            "cursor": cursor,
            "reason": reason,
            "grace_s": grace_s,
        }
        return BulkResult.model_validate((await self._request("POST", "/jobs:bulk", json=body)).json())

    async def workers(self) -> WorkerList:
        """The runners alive now: ``items`` (host, pid, concurrency, running, job types, last beat) and the sums (``admin``)."""
        return WorkerList.model_validate((await self._request("GET", "/workers")).json())

    async def get_service(self, name: str) -> ServiceView:
        return ServiceView.model_validate((await self._request("GET", f"/services/{name}")).json())

    async def delete_service(self, name: str) -> None:
        await self._request("DELETE", f"/services/{name}")

    async def upload(self, data: bytes, filename: str = "upload", content_type: str = "application/octet-stream") -> UploadView:
        """Store a file for a job to send (``files={"field": view.ref}``) or read (``ctx.upload(view.ref)``)."""
        response = await self._request(
            "POST", "/uploads", params={"filename": filename}, content=data, headers={"Content-Type": content_type}
        )
        return UploadView.model_validate(response.json())

    async def call(
        self,
        service: str,
        operation: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        files: dict[str, str] | None = None,
        call_timeout_s: float | None = None,
        **options: Any,
    ) -> AsyncJob:
        """Submit a job that calls ``operation`` of a registered service (checked
        against its schemas now: a bad field is :class:`Invalid`); ``files``:
        form field → an upload's ref (:meth:`upload`)."""
        payload: dict[str, Any] = {
            "service": service,
            "operation": operation,
            "params": params or {},
            "body": body,
            "files": files or {},
        }
        if call_timeout_s is not None:
            payload["call_timeout_s"] = call_timeout_s
        return await self.submit("service", payload, **options)

    @property
    def services(self) -> Services:
        """``client.services["billing"].create_invoice(body={…})``: a registered
        service's operations as callables, each submitting a job (its handle)."""
        return Services(self.call)

    async def wait(self, job_id: str, timeout: float | None = None, *, after_version: int = 0) -> JobView:
        """The job once it has ended (at a version past ``after_version``: an end
        seen before a retry does not count): returned if it SUCCEEDED, else
        :class:`JobFailed`; :class:`WaitTimeout` if it is still going after ``timeout`` s."""
        polls = waiting(timeout, after_version)
        params = next(polls)
        while True:
            job = JobView.model_validate((await self._request("GET", f"/jobs/{job_id}", params=params)).json())
            try:
                params = polls.send(job)
            except StopIteration as ended:
                return ended.value


def resolved(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The API's URL and the headers every request carries, from the arguments or the environment."""
    key = api_key or os.environ.get("JOBLEDGER_API_KEY", DEV_API_KEY)
    return base_url or os.environ.get("JOBLEDGER_URL", DEFAULT_URL), {"Authorization": f"Bearer {key}"}


def submission(
    type: str, payload: dict[str, Any] | None, idempotency_key: str | None, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """``POST /jobs``'s body and headers."""
    body = {"type": type, "payload": payload or {}, **_jsonable(options)}
    return body, {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}


def as_of_params(as_of: datetime | None) -> dict[str, str]:
    return {"as_of": as_of.isoformat()} if as_of is not None else {}


def waiting(timeout: float | None, after_version: int) -> Generator[dict[str, Any], JobView, JobView]:
    """A wait's long polls without their I/O, for both clients: yields each
    ``GET /jobs/{id}``'s query, is sent the job it answered, and returns the job
    once it has ended past ``after_version`` and SUCCEEDED (else raises
    :class:`JobFailed`, or :class:`WaitTimeout` once ``timeout`` passed)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    params: dict[str, Any] = {}
    while True:
        job = yield params
        ended = job.state in TERMINAL
        if ended and job.version > after_version:
            if job.state is JobStatus.SUCCEEDED:
                return job
            raise JobFailed(job)
        left = LONG_POLL_S if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(job, timeout or 0.0)
        params = {"wait_s": round(min(LONG_POLL_S, left), 3)}
        if ended:  # an earlier end: wait for the job to move on
            params["after_version"] = job.version


class AsyncJob:
    """A submitted job: follow it, wait for it, or have callbacks run when it ends."""

    def __init__(self, client: AsyncClient, job_id: str) -> None:
        self.client = client
        self.id = job_id
        self._after_version = 0
        """An end at this version or before is an earlier run's (see :meth:`retry`)."""
        self._watcher: asyncio.Task | None = None
        self._done: list[Callable] = []
        self._error: list[Callable] = []

    def __repr__(self) -> str:
        return f"AsyncJob({self.id!r})"

    async def get(self) -> JobView:
        return await self.client.get(self.id)

    @property
    def after_version(self) -> int:
        """An end at this version or before is an earlier run's: a wait waits past it."""
        return self._after_version

    async def wait(self, timeout: float | None = None) -> JobView:
        return await self.client.wait(self.id, timeout, after_version=self._after_version)

    def follow(self, after_seq: int = 0) -> AsyncIterator[JobUpdate]:
        return self.client.follow(self.id, after_seq)

    async def cancel(self, reason: str | None = None, grace_s: float = 10.0) -> JobAccepted:
        return await self.client.cancel(self.id, reason, grace_s)

    async def retry(self) -> JobAccepted:
        """Run the ended job again; from now on :meth:`wait` waits for the new run's end."""
        before = await self.client.get(self.id)
        accepted = await self.client.retry(self.id)
        self._after_version = before.version
        return accepted

    def on_done(self, callback: Callable[[JobView], Any]) -> AsyncJob:
        """Call ``callback(job)`` (a function or a coroutine function) once the job SUCCEEDED."""
        self._done.append(callback)
        self._watch()
        return self

    def on_error(self, callback: Callable[[Exception], Any]) -> AsyncJob:
        """Call ``callback(error)`` once the job ended otherwise (:class:`JobFailed`),
        or when it cannot be followed (an :class:`ApiError`)."""
        self._error.append(callback)
        self._watch()
        return self

    def _watch(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._callbacks())

    async def _callbacks(self) -> None:
        try:
            job = await self.wait()
        except Exception as error:  # JobFailed, or the API's refusal
            for callback in self._error:
                await _call(callback, error)
            return
        for callback in self._done:
            await _call(callback, job)

    async def settled(self) -> None:
        """Wait until the callbacks (if any) have run."""
        if self._watcher is not None:
            await self._watcher


async def _call(callback: Callable, argument: Any) -> None:
    result = callback(argument)
    if inspect.isawaitable(result):
        await result


def _jsonable(value: Any) -> Any:
    """Options as JSON: datetimes in ISO 8601, enums by value."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return getattr(value, "value", value)


class Services:
    """Registered services by name: ``services["billing"]`` (see :attr:`AsyncClient.services`)."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call

    def __getitem__(self, name: str) -> ServiceOperations:
        return ServiceOperations(self._call, name)


class ServiceOperations:
    """A service's operations as attributes, named as Python spells them:
    ``create_invoice`` calls ``createInvoice`` (``get_invoices_id`` is not a
    thing: an operation without an operationId is reached by ``call``)."""

    def __init__(self, call: Callable[..., Any], service: str) -> None:
        self._call = call
        self._service = service

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        if operation.startswith("_"):
            raise AttributeError(operation)

        def call(*, params: dict[str, Any] | None = None, body: Any = None, **options: Any) -> Any:
            return self._call(self._service, operation, params=params, body=body, **options)

        call.__name__ = operation
        call.__doc__ = f"Submit a job calling {operation} of service {self._service!r}."
        return call
