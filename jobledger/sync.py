"""The synchronous client, for scripts and notebooks: :class:`Client` and :class:`Job`.

    from jobledger import Client

    with Client() as client:
        job = client.submit("sleep", {"seconds": 2})
        job.on_done(lambda done: print("finished:", done.result))
        for update in job.follow():
            print(update.state, update.progress)
        print(job.wait(timeout=60).state)

The calls a producer makes for every job — ``submit``, ``get``, ``wait`` —
go from the caller's own thread over a keep-alive connection that thread keeps
(:mod:`jobledger.wire`): a few times less of the caller's CPU than a hop to an
event loop. The rest runs the :class:`~jobledger.client.AsyncClient` on an
event loop of its own, in a daemon thread, so it works whether or not the
caller has a loop running (a notebook has one; calling ``asyncio.run`` there
fails). Callbacks run on that thread; the thread starts with the first call
that needs it, so a script that only submits and waits never starts it.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from jobledger.client import LONG_POLL_S, AsyncClient, AsyncJob, JobUpdate, Services, as_of_params, resolved, submission, waiting
from jobledger.errors import ClientClosed, raise_for_problem
from jobledger.wire import Answer, BlockingHttp
from schemas.api import (
    BatchAccepted,
    BulkResult,
    JobAccepted,
    JobView,
    ScheduleView,
    ServiceSummary,
    ServiceView,
    UploadView,
    WorkerList,
)
from schemas.logs import StoredLogLine

T = TypeVar("T")


class _LoopThread:
    """An event loop running in a daemon thread; coroutines are handed to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="jobledger-client", daemon=True)
        self._thread.start()

    async def _finish(self) -> None:
        await self.loop.shutdown_asyncgens()
        pending = [task for task in asyncio.all_tasks(self.loop) if task is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=5)

    def run(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def iterate(self, iterator: AsyncGenerator[T, None]) -> Generator[T, None, None]:
        try:
            while True:
                try:
                    yield self.run(anext(iterator))
                except StopAsyncIteration:
                    return
        finally:
            if self._thread.is_alive():  # a generator dropped after the client closed has nothing left to close
                self.run(iterator.aclose())

    def stop(self) -> None:
        if self._thread.is_alive():  # what asyncio.run does at its end: no generator is left to a loop that is gone
            self.run(self._finish())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class Client:
    """Every method of :class:`~jobledger.client.AsyncClient`, blocking."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, timeout_s: float = 30.0) -> None:
        self.base_url, headers = resolved(base_url, api_key)
        self._wire = BlockingHttp(self.base_url, headers, timeout_s, timeout_s + LONG_POLL_S)
        self._given = (base_url, api_key, timeout_s)
        self._started: tuple[_LoopThread, AsyncClient] | None = None
        self._starting = threading.Lock()
        self._closed = False

    def _on_loop(self) -> tuple[_LoopThread, AsyncClient]:
        """The loop thread and the AsyncClient on it, started by the first call that needs them."""
        with self._starting:
            if self._closed:
                raise ClientClosed()
            if self._started is None:
                base_url, api_key, timeout_s = self._given
                loop = _LoopThread()

                async def make() -> AsyncClient:  # created on its loop: its connections belong there
                    return AsyncClient(base_url, api_key, timeout_s=timeout_s)

                self._started = (loop, loop.run(make()))
            return self._started

    @property
    def _loop(self) -> _LoopThread:
        return self._on_loop()[0]

    @property
    def _async(self) -> AsyncClient:
        return self._on_loop()[1]

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the loop thread; a later call raises :class:`ClientClosed`."""
        with self._starting:
            self._closed = True
            started, self._started = self._started, None
        self._wire.close()
        if started is not None:
            loop, client = started
            loop.run(client.aclose())
            loop.stop()

    def _request(self, method: str, path: str, **kwargs: Any) -> Answer:
        if self._closed:
            raise ClientClosed()
        answer = self._wire.request(method, path, **kwargs)
        raise_for_problem(answer)
        return answer

    def submit(
        self, type: str, payload: dict[str, Any] | None = None, *, idempotency_key: str | None = None, **options: Any
    ) -> Job:
        body, headers = submission(type, payload, idempotency_key, options)
        accepted = JobAccepted.model_validate_json(self._request("POST", "/jobs", json=body, headers=headers).content)
        return self.job(accepted.id)

    def submit_pipeline(
        self,
        steps: list[dict[str, Any]],
        payload: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Job:
        handle = self._loop.run(self._async.submit_pipeline(steps, payload, idempotency_key=idempotency_key, **options))
        return Job(self, handle)

    def submit_many(self, jobs: list[dict[str, Any]]) -> BatchAccepted:
        return self._loop.run(self._async.submit_many(jobs))

    def job(self, job_id: str) -> Job:
        """A handle on a job submitted earlier."""
        return Job(self, job_id)

    def get(self, job_id: str, *, as_of: datetime | None = None) -> JobView:
        return JobView.model_validate_json(self._request("GET", f"/jobs/{job_id}", params=as_of_params(as_of)).content)

    def list(self, **filters: Any) -> Iterator[JobView]:
        """Every matching job, newest first (see :meth:`AsyncClient.list` for the filters)."""
        return self._loop.iterate(self._async.list(**filters))

    def cancel(self, job_id: str, reason: str | None = None, grace_s: float = 10.0) -> JobAccepted:
        return self._loop.run(self._async.cancel(job_id, reason, grace_s))

    def retry(self, job_id: str) -> JobAccepted:
        return self._loop.run(self._async.retry(job_id))

    def update(self, job_id: str, *, priority: str | None = None, run_at: datetime | None = None) -> JobAccepted:
        return self._loop.run(self._async.update(job_id, priority=priority, run_at=run_at))

    def delete(self, job_id: str) -> JobAccepted:
        return self._loop.run(self._async.delete(job_id))

    def events(self, job_id: str, until: int | datetime | str | None = None) -> builtins.list[dict[str, Any]]:
        return self._loop.run(self._async.events(job_id, until))

    def logs(self, job_id: str, after: int = 0) -> builtins.list[StoredLogLine]:
        return self._loop.run(self._async.logs(job_id, after))

    def follow_logs(self, job_id: str, after: int = 0) -> Iterator[StoredLogLine]:
        return self._loop.iterate(self._async.follow_logs(job_id, after))

    def artifact(self, job_id: str, name: str = "result") -> bytes:
        return self._loop.run(self._async.artifact(job_id, name))

    def follow(self, job_id: str, after_seq: int = 0) -> Iterator[JobUpdate]:
        return self._loop.iterate(self._async.follow(job_id, after_seq))

    @contextmanager
    def watch(self) -> Iterator[Iterator[dict[str, Any]]]:
        """Every event of every job of your tenant as it happens, without end;
        listening once the block is entered (see :meth:`AsyncClient.watch`)."""
        opened = self._async.watch()
        events = self._loop.iterate(self._loop.run(opened.__aenter__()))
        try:
            yield events
        finally:
            events.close()
            self._loop.run(opened.__aexit__(None, None, None))

    def schedule(
        self, cron: str, type: str, payload: dict[str, Any] | None = None, *, timezone: str = "UTC", **options: Any
    ) -> ScheduleView:
        return self._loop.run(self._async.schedule(cron, type, payload, timezone=timezone, **options))

    def schedules(self) -> builtins.list[ScheduleView]:
        return self._loop.run(self._async.schedules())

    def get_schedule(self, schedule_id: str) -> ScheduleView:
        return self._loop.run(self._async.get_schedule(schedule_id))

    def delete_schedule(self, schedule_id: str) -> ScheduleView:
        return self._loop.run(self._async.delete_schedule(schedule_id))

    def pause_schedule(self, schedule_id: str) -> ScheduleView:
        return self._loop.run(self._async.pause_schedule(schedule_id))

    def resume_schedule(self, schedule_id: str) -> ScheduleView:
        return self._loop.run(self._async.resume_schedule(schedule_id))

    def trigger_schedule(self, schedule_id: str) -> Job:
        """Submit the schedule's job once, now."""
        return Job(self, self._loop.run(self._async.trigger_schedule(schedule_id)))

    def register_service(self, name: str, **given: Any) -> ServiceView:
        """Register (or replace) a service: ``document=`` or ``url=``, and ``base_url``, ``auth``, ``polling``."""
        return self._loop.run(self._async.register_service(name, **given))

    def service_list(self) -> builtins.list[ServiceSummary]:
        return self._loop.run(self._async.service_list())

    def bulk(self, action: str, **options: Any) -> BulkResult:
        """One page of a bulk cancel or retry (see :meth:`AsyncClient.bulk`)."""
        return self._loop.run(self._async.bulk(action, **options))

    def workers(self) -> WorkerList:
        """The runners alive now (``admin``)."""
        return self._loop.run(self._async.workers())

    def get_service(self, name: str) -> ServiceView:
        return self._loop.run(self._async.get_service(name))

    def delete_service(self, name: str) -> None:
        self._loop.run(self._async.delete_service(name))

    def upload(self, data: bytes, filename: str = "upload", content_type: str = "application/octet-stream") -> UploadView:
        """Store a file for a job to send or read; name it by the answer's ``ref``."""
        return self._loop.run(self._async.upload(data, filename, content_type))

    def call(self, service: str, operation: str, **given: Any) -> Job:
        """Submit a job calling ``operation`` of a registered service (``params=``, ``body=``, options)."""
        return Job(self, self._loop.run(self._async.call(service, operation, **given)))

    @property
    def services(self) -> Services:
        """``client.services["billing"].create_invoice(body={…})`` returns the job's handle."""
        return Services(self.call)

    def wait(self, job_id: str, timeout: float | None = None, *, after_version: int = 0) -> JobView:
        """See :meth:`AsyncClient.wait`."""
        polls = waiting(timeout, after_version)
        params = next(polls)
        while True:
            job = JobView.model_validate_json(self._request("GET", f"/jobs/{job_id}", params=params).content)
            try:
                params = polls.send(job)
            except StopIteration as ended:
                return ended.value


class Job:
    """A submitted job, blocking: ``wait``, ``follow``, ``cancel``, and callbacks."""

    def __init__(self, client: Client, job: str | AsyncJob) -> None:
        self._client = client
        self._made = job if isinstance(job, AsyncJob) else None
        self.id = job if isinstance(job, str) else job.id

    @property
    def _handle(self) -> AsyncJob:
        """The AsyncJob behind the calls that run on the client's loop, made by the first of them."""
        if self._made is None:
            self._made = AsyncJob(self._client._async, self.id)
        return self._made

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def get(self) -> JobView:
        return self._client.get(self.id)

    def wait(self, timeout: float | None = None) -> JobView:
        """The job once it SUCCEEDED; :class:`~jobledger.errors.JobFailed` if it ended
        otherwise, :class:`~jobledger.errors.WaitTimeout` if ``timeout`` passed first."""
        return self._client.wait(self.id, timeout, after_version=self._made.after_version if self._made else 0)

    def follow(self, after_seq: int = 0) -> Iterator[JobUpdate]:
        return self._client.follow(self.id, after_seq)

    def cancel(self, reason: str | None = None, grace_s: float = 10.0) -> JobAccepted:
        return self._client.cancel(self.id, reason, grace_s)

    def retry(self) -> JobAccepted:
        """Run the ended job again; from now on :meth:`wait` waits for the new run's end."""
        return self._client._loop.run(self._handle.retry())

    def on_done(self, callback: Callable[[JobView], Any]) -> Job:
        """Call ``callback(job)`` (on the client's thread) once the job SUCCEEDED."""
        self._client._loop.loop.call_soon_threadsafe(self._handle.on_done, callback)
        return self

    def on_error(self, callback: Callable[[Exception], Any]) -> Job:
        """Call ``callback(error)`` (on the client's thread) once the job ended otherwise."""
        self._client._loop.loop.call_soon_threadsafe(self._handle.on_error, callback)
        return self

    def settled(self, timeout: float | None = None) -> None:
        """Block until the callbacks (if any) have run."""
        asyncio.run_coroutine_threadsafe(self._handle.settled(), self._client._loop.loop).result(timeout)
