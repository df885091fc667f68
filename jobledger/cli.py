"""``jobledger submit | get | ls | follow | events | cancel | retry | schedules``: the API from a shell.

Built on the SDK only. Every read command takes ``--json`` for scripts. Exit
codes: 0 done (or accepted); 1 the waited job ended FAILED, CANCELLED or
REJECTED; 3 the API refused the request (its problem document is printed) or
did not answer; 4 ``--wait`` ran out of time; 2 a usage error.
"""

from __future__ import annotations

import itertools
import json
import mimetypes
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import httpx
import typer
import yaml
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from jobledger.client import JobUpdate
from jobledger.errors import ApiError, JobFailed, WaitTimeout
from jobledger.sync import Client, Job
from schemas import TERMINAL, JobStatus, Priority
from schemas.api import BulkAction, JobView, ServiceView
from schemas.job import StepPhase
from schemas.logs import StoredLogLine

EXIT_JOB_FAILED = 1
EXIT_REFUSED = 3
EXIT_WAIT_TIMEOUT = 4
ID_LENGTH = 36
"""A job id is a UUID; anything shorter is taken as the start of one."""

console = Console(stderr=True)
out = Console()

Url = typer.Option(None, "--url", envvar="JOBLEDGER_URL", help="The API (default http://127.0.0.1:8000).")
Key = typer.Option(None, "--api-key", envvar="JOBLEDGER_API_KEY", help="API key (default: the embedded stack's).")
Json = typer.Option(False, "--json", help="Print JSON instead of a table.")


schedules = typer.Typer(help="Cron schedules: each tick submits one job.", no_args_is_help=True)
services = typer.Typer(help="HTTP services described by OpenAPI documents, which jobs call.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for command in (submit, get, ls, follow, watch, events, logs, cancel, retry, update, delete, artifact):
        app.command(rich_help_panel="Jobs")(command)
    app.add_typer(schedules, name="schedules", rich_help_panel="Jobs")
    app.add_typer(services, name="services", rich_help_panel="Services")
    app.command(rich_help_panel="Services")(call)
    app.command(rich_help_panel="Operations")(workers)
    app.command(rich_help_panel="Operations")(bulk)


def bulk(
    action: BulkAction = typer.Argument(..., help="cancel (PENDING, QUEUED, RUNNING jobs) or retry (FAILED, CANCELLED)."),
    state: Optional[JobStatus] = typer.Option(None, help="Only jobs in this state (one the action takes)."),
    type: Optional[str] = typer.Option(None, "--type", help="Only jobs of this type."),
    label: list[str] = typer.Option([], "--label", "-l", help="key:value; repeat to require several."),
    created_after: Optional[datetime] = typer.Option(None, help="Only jobs created at or after this time (UTC)."),
    created_before: Optional[datetime] = typer.Option(None, help="Only jobs created before this time (UTC)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count the matching jobs; change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before acting."),
    reason: Optional[str] = typer.Option(None, help="cancel: kept in each job's history."),
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """Cancel or retry every job of a filter, with a progress bar (needs an admin key).
    It counts first and asks; --dry-run only counts."""
    filters = dict(
        state=state,
        type=type,
        labels=dict(_pair(item, "--label") for item in label),
        created_after=_aware(created_after),
        created_before=_aware(created_before),
    )
    filters = {name: value for name, value in filters.items() if value}
    with _client(url, api_key) as client:
        matched = client.bulk(action.value, dry_run=True, **filters).matched or 0
        console.print(f"{matched:,} job matches" if matched == 1 else f"{matched:,} jobs match", highlight=False)
        if dry_run or not matched:
            return
        if not yes and not typer.confirm(f"{action.value} them?"):
            raise typer.Exit(1)
        accepted, refused, cursor = 0, [], None
        with Progress(TextColumn(action.value), BarColumn(), TextColumn("{task.completed}/{task.total}"), console=console) as bar:
            task = bar.add_task(action.value, total=matched)
            while True:
                page = client.bulk(action.value, cursor=cursor, reason=reason, **filters)
                accepted += len(page.accepted)
                refused.extend(page.refused)
                bar.update(task, advance=len(page.accepted) + len(page.refused))
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
    console.print(f"{accepted} accepted, {len(refused)} refused (they moved on)", highlight=False)
    for refusal in refused[:20]:
        console.print(f"  {refusal.id}: {refusal.detail}", highlight=False)


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def workers(as_json: bool = Json, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """List the runners alive now: where they run, how busy, which job types (needs an admin key)."""
    with _client(url, api_key) as client:
        found = client.workers()
    if as_json:
        out.print_json(data=found.model_dump(mode="json"))
        return
    rows = [
        (w.runner_id, f"{w.running}/{w.concurrency}", _when(w.beat_at), _when(w.started_at), ", ".join(w.job_types))
        for w in found.items
    ]
    out.print(_id_table(("runner", "running", "last beat", "started", "job types"), rows))
    console.print(f"{len(found.items)} runners, {found.running} of {found.concurrency} slots busy", highlight=False)


@services.command("register")
def service_register(
    name: str = typer.Argument(..., help="How jobs name the service: lower case, digits, - and _."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="The OpenAPI or Swagger document (JSON or YAML)."),
    document_url: Optional[str] = typer.Option(None, "--document-url", help="Where the server fetches the document instead."),
    base_url: Optional[str] = typer.Option(None, help="Where calls go (default: the document's first server)."),
    auth_file: Optional[Path] = typer.Option(
        None, help='Credentials, as a JSON or YAML file: {"type": "bearer", "token": …} (kept out of your shell history).'
    ),
    polling: Optional[str] = typer.Option(None, help='How a 202 is followed, as JSON: {"progress_field": "progress", …}.'),
    as_json: bool = Json,
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """Register (or replace) a service; print its operations."""
    if (file is None) == (document_url is None):
        raise typer.BadParameter("give the document's --file or its --document-url, one of them")
    document = _read_file(file, "--file") if file is not None else None
    auth = yaml.safe_load(_read_file(auth_file, "--auth-file")) if auth_file is not None else None
    with _client(url, api_key) as client:
        registered = client.register_service(
            name,
            document=document,
            url=document_url,
            base_url=base_url,
            auth=auth,
            polling=_json_option(polling, "--polling") if polling is not None else None,
        )
    _print(as_json, registered.model_dump(mode="json"), lambda: _show_service(registered))


@services.command("ls")
def service_list(as_json: bool = Json, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """List your services."""
    with _client(url, api_key) as client:
        found = client.service_list()
    if as_json:
        out.print_json(data=[service.model_dump(mode="json") for service in found])
        return
    rows = [(service.name, str(len(service.operations)), service.base_url or "", service.title or "") for service in found]
    out.print(_id_table(("name", "operations", "base url", "title"), rows))


@services.command("show")
def service_show(name: str, as_json: bool = Json, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """Show a service: its operations, how to name them, and what they take."""
    with _client(url, api_key) as client:
        service = client.get_service(name)
    _print(as_json, service.model_dump(mode="json"), lambda: _show_service(service))


@services.command("rm")
def service_delete(name: str, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """Remove a service from the registry: later jobs cannot call it."""
    with _client(url, api_key) as client:
        client.delete_service(name)
    console.print(f"removed {name}")


def call(
    service: str = typer.Argument(..., help="A registered service (jobledger services ls)."),
    operation: str = typer.Argument(..., help="Its operationId, or 'METHOD /path'."),
    params: str = typer.Option("{}", "--params", help="Path, query, header and cookie parameters, as JSON."),
    body: Optional[str] = typer.Option(None, "--body", "-b", help="The request body, as JSON."),
    file: list[str] = typer.Option(
        [],
        "--file",
        "-f",
        help="field=PATH: upload the file and send it as that form field (or as the raw body); repeat for more.",
    ),
    max_attempts: Optional[int] = typer.Option(None, help="Attempts before the job ends FAILED (default 5)."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the job to its end with a progress bar; exit 1 if it fails."),
    wait_timeout: Optional[float] = typer.Option(None, help="With --wait: give up after this many seconds (exit 4)."),
    as_json: bool = Json,
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """Call an operation of a service as a job; print its id (with --wait, its result)."""
    options = {"max_attempts": max_attempts} if max_attempts is not None else {}
    paths = {field: Path(path) for field, path in (_pair(item, "--file") for item in file)}
    with _client(url, api_key) as client:
        files = {
            field: client.upload(
                _read_bytes(path, "--file"), path.name, mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            ).ref
            for field, path in paths.items()
        }
        job = client.call(
            service,
            operation,
            params=_json_option(params, "--params"),
            body=_json_option(body, "--body") if body is not None else None,
            files=files,
            **options,
        )
        _submitted(client, job, wait, wait_timeout, as_json)


def _show_service(service: ServiceView) -> None:
    out.print(f"[bold]{service.name}[/] {service.title or ''} {service.version or ''} → {service.base_url or '(no base URL)'}")
    rows = [(operation.key, operation.method, operation.path, operation.summary or "") for operation in service.operations]
    out.print(_id_table(("operation", "method", "path", "summary"), rows))
    for warning in service.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _read_bytes(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise typer.BadParameter(f"{path}: {error.strerror}", param_hint=option) from None


def _read_file(path: Path, option: str) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise typer.BadParameter(f"{path}: {error.strerror}", param_hint=option) from None


@schedules.command("create")
def schedule_create(
    cron: str = typer.Argument(..., help="Five fields (a sixth, last, is seconds), e.g. '0 2 * * *'."),
    type: str = typer.Argument(..., help="The job type each tick submits."),
    payload: str = typer.Option("{}", "--payload", "-p", help="The job's payload, as JSON."),
    timezone: str = typer.Option("UTC", help="IANA time zone the expression is read in."),
    as_json: bool = Json,
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """Create a schedule; print its id."""
    with _client(url, api_key) as client:
        created = client.schedule(cron, type, _json_option(payload, "--payload"), timezone=timezone)
    _print(as_json, created.model_dump(mode="json"), lambda: out.print(created.id))


@schedules.command("ls")
def schedule_list(as_json: bool = Json, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """List the schedules."""
    with _client(url, api_key) as client:
        found = client.schedules()
    if as_json:
        out.print_json(data=[schedule.model_dump(mode="json") for schedule in found])
        return
    rows = [
        (schedule.id, schedule.cron, schedule.job.get("type", ""), _when(schedule.next_tick), schedule.timezone)
        for schedule in found
    ]
    out.print(_id_table(("id", "cron", "job", "next tick", "timezone"), rows))


@schedules.command("get")
def schedule_get(schedule_id: str, as_json: bool = Json, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """Show a schedule: its cron, job template, last and next tick."""
    with _client(url, api_key) as client:
        schedule = client.get_schedule(schedule_id)
    _print(as_json, schedule.model_dump(mode="json"), lambda: out.print_json(data=schedule.model_dump(mode="json")))


@schedules.command("rm")
def schedule_delete(schedule_id: str, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """Delete a schedule: no later tick submits a job."""
    with _client(url, api_key) as client:
        client.delete_schedule(schedule_id)
    console.print(f"deleted {schedule_id}")


@schedules.command("pause")
def schedule_pause(schedule_id: str, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """Pause a schedule: no tick submits a job until it is resumed."""
    with _client(url, api_key) as client:
        client.pause_schedule(schedule_id)
    console.print(f"paused {schedule_id}")


@schedules.command("resume")
def schedule_resume(schedule_id: str, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """Resume a paused schedule: it ticks again from now on (missed ticks are skipped)."""
    with _client(url, api_key) as client:
        resumed = client.resume_schedule(schedule_id)
    console.print(f"resumed {schedule_id}; next tick {_when(resumed.next_tick)}", highlight=False)


@schedules.command("trigger")
def schedule_trigger(
    schedule_id: str,
    wait: bool = typer.Option(False, "--wait", help="Wait for the job to end (exit 1 if it fails)."),
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """Submit the schedule's job now, whatever its cron; prints the job's id."""
    with _client(url, api_key) as client:
        job = client.trigger_schedule(schedule_id)
        _submitted(client, job, wait, None, False)


def submit(
    type: str = typer.Argument(..., help="Job type, e.g. sleep, noop, fail, flaky; or pipeline, with --steps."),
    payload: str = typer.Option("{}", "--payload", "-p", help="The payload, as JSON (a pipeline: for each step without one)."),
    steps: Optional[str] = typer.Option(
        None,
        "--steps",
        help='A pipeline\'s steps, as JSON: [{"name": "a", "type": "noop", "depends_on": [], "compensate": {"type": "noop"}}, …].',
    ),
    priority: Optional[str] = typer.Option(None, help="high, normal or low."),
    max_attempts: Optional[int] = typer.Option(None, help="Attempts before the job ends FAILED."),
    timeout_s: Optional[float] = typer.Option(None, help="An attempt running longer fails (and is retried)."),
    label: list[str] = typer.Option([], "--label", "-l", help="key:value (or key=value); repeat for more."),
    concurrency_key: Optional[str] = typer.Option(None, help="Jobs sharing it run one (or --concurrency-limit) at a time."),
    concurrency_limit: Optional[int] = typer.Option(None, help="With --concurrency-key: how many may run at once."),
    idempotency_key: Optional[str] = typer.Option(None, help="Submitting again with it returns the same job."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the job to its end with a progress bar; exit 1 if it fails."),
    wait_timeout: Optional[float] = typer.Option(None, help="With --wait: give up after this many seconds (exit 4)."),
    as_json: bool = Json,
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """Submit a job; print its id (and, with --wait, follow it to its end)."""
    options: dict[str, Any] = {
        name: value
        for name, value in dict(
            priority=priority,
            max_attempts=max_attempts,
            timeout_s=timeout_s,
            concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
        ).items()
        if value is not None
    }
    if label:
        options["labels"] = dict(_pair(item, "--label") for item in label)
    if steps is not None:
        options["steps"] = _json_option(steps, "--steps")
    body = _json_option(payload, "--payload")
    with _client(url, api_key) as client:
        job = client.submit(type, body, idempotency_key=idempotency_key, **options)
        _submitted(client, job, wait, wait_timeout, as_json)


def _submitted(client: Client, job: Job, wait: bool, wait_timeout: float | None, as_json: bool) -> None:
    """Print a submitted job's id; with ``wait``, follow it to its end with a
    progress bar (a bar per step of a pipeline) and exit 1 if it fails."""
    if not wait:
        _print(as_json, {"id": job.id}, lambda: out.print(job.id))
        return
    console.print(f"submitted {job.id}")
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("PENDING", total=100)
        step_bars = StepBars(bar)
        for update in job.follow():
            bar.update(task, description=_describe(update), completed=update.progress or 0)
            step_bars.update(update.event)
    final = _final(client, job.id, wait_timeout)
    _print(as_json, final.model_dump(mode="json"), lambda: _show_job(final))
    if final.state is not JobStatus.SUCCEEDED:
        raise typer.Exit(EXIT_JOB_FAILED)


def get(job_id: str, as_json: bool = Json, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """Show a job: state, attempts, progress, result or error."""
    with _client(url, api_key) as client:
        job = client.get(_full_id(client, job_id))
    _print(as_json, job.model_dump(mode="json"), lambda: _show_job(job))


def ls(
    state: Optional[str] = typer.Option(None, help="Only jobs in this state."),
    type: Optional[str] = typer.Option(None, "--type", help="Only jobs of this type."),
    label: list[str] = typer.Option([], "--label", "-l", help="key:value (or key=value); repeat to require several."),
    limit: int = typer.Option(20, min=1, help="How many jobs, newest first."),
    as_json: bool = Json,
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """List jobs, newest first."""
    labels = dict(_pair(item, "--label") for item in label)
    with _client(url, api_key) as client:
        jobs = []
        for job in client.list(state=state, type=type, labels=labels, page_size=min(limit, 1000)):
            jobs.append(job)
            if len(jobs) >= limit:
                break
    if as_json:
        out.print_json(data=[job.model_dump(mode="json") for job in jobs])
        return
    rows = [
        (
            job.id,
            _state(job.state.value),
            job.type,
            f"{job.attempt}/{job.max_attempts}",
            f"{job.progress:.0f}%" if job.progress is not None else "",
            _when(job.created_at),
        )
        for job in jobs
    ]
    out.print(_id_table(("id", "state", "type", "attempt", "progress", "created"), rows))


_COLUMN_GAP = 3
"""Between two columns of :func:`_id_table`: a cell's right padding, the box's divider, the next one's left padding."""


def _id_table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> Table:
    """A table led by whole ids (they are for copying), with as many of the
    other columns, left to right, as fit the terminal: none is cut or wrapped."""
    widths = [
        max([len(header)] + [Text.from_markup(row[index]).cell_len for row in rows]) for index, header in enumerate(headers)
    ]
    shown = len(headers)
    while shown > 1 and sum(widths[:shown]) + _COLUMN_GAP * (shown - 1) > out.width:
        shown -= 1
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1))
    for header in headers[:shown]:
        table.add_column(header, no_wrap=True)
    for row in rows:
        table.add_row(*row[:shown])
    return table


def _when(at: datetime | None) -> str:
    """A time in the terminal's zone, the date left out when it is today's."""
    if at is None:
        return ""
    local = at.astimezone()
    return local.strftime("%H:%M:%S" if local.date() == datetime.now().date() else "%Y-%m-%d %H:%M")


def follow(job_id: str, as_json: bool = Json, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """Print each change of a job as it happens, until it ends."""
    with _client(url, api_key) as client:
        for update in client.follow(_full_id(client, job_id)):
            if as_json:
                out.print(
                    json.dumps(
                        {"seq": update.seq, "type": update.event_type, "state": update.state.value, "progress": update.progress}
                    )
                )
            else:
                out.print(
                    f"{update.seq:>3}  {update.event_type.rsplit('.', 1)[-1]:<16} {_state(update.state.value)}  {_progress(update)}".rstrip()
                )


def watch(
    limit: Optional[int] = typer.Option(None, help="Stop after this many events."),
    as_json: bool = Json,
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """Print every event of every job of yours as it happens (live; Ctrl-C stops)."""
    with _client(url, api_key) as client, client.watch() as events:
        for seen, event in enumerate(events, start=1):
            if as_json:
                out.print(json.dumps(event), highlight=False, soft_wrap=True)
            else:
                data = event.get("data", {})
                step = f" {data['step']}" if "step" in data else ""
                kind = event.get("type", "").removeprefix("jobledger.")
                line = f"{event.get('time', '')[:23]}  {event.get('subject')}  {event.get('seq'):>3}  {kind}{step}"
                out.print(line, highlight=False, soft_wrap=True)
            if limit is not None and seen >= limit:
                return


def events(
    job_id: str,
    until: Optional[str] = typer.Option(None, help="Only events up to this seq or ISO 8601 time."),
    as_json: bool = Json,
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """A job's history: its events, hash chain included."""
    with _client(url, api_key) as client:
        history = client.events(_full_id(client, job_id), until)
    if as_json:
        out.print_json(data=history)
        return
    table = Table("seq", "type", "time", "hash")
    for event in history:
        table.add_row(str(event["seq"]), event["type"].rsplit(".", 1)[-1], event["time"], event["hash"][:12])
    out.print(table)


def logs(
    job_id: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the job has ended."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """A job's own log: the lines its handlers wrote with ctx.log (level, attempt, message, fields)."""
    with _client(url, api_key) as client:
        full = _full_id(client, job_id)
        lines = client.follow_logs(full) if follow else iter(client.logs(full))
        for line in lines:
            if as_json:
                out.print(line.model_dump_json(), highlight=False, soft_wrap=True)
            else:
                out.print(_log_line(line), highlight=False, soft_wrap=True)


_LEVEL_STYLE = {"debug": "dim", "info": "", "warning": "yellow", "error": "red"}


def _log_line(line: StoredLogLine) -> Text:
    text = Text(f"{line.at.astimezone().strftime('%H:%M:%S.%f')[:-3]} ")
    text.append(f"{line.level.value:<7}", style=_LEVEL_STYLE[line.level.value])
    where = f"{line.step}#{line.attempt}" if line.step else f"#{line.attempt}"
    text.append(f" {where} ", style="dim")
    text.append(line.message)
    if line.fields:
        text.append(" " + " ".join(f"{key}={json.dumps(value)}" for key, value in line.fields.items()), style="cyan")
    return text


def cancel(
    job_id: str,
    reason: Optional[str] = typer.Option(None, help="Kept in the job's history."),
    grace_s: float = typer.Option(10.0, help="How long a running job may take to stop."),
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """Cancel a job (a running one is asked to stop, then stopped after the grace)."""
    with _client(url, api_key) as client:
        accepted = client.cancel(_full_id(client, job_id), reason, grace_s)
    console.print(f"cancel requested for {accepted.id} (was {accepted.state.value})")


def artifact(
    job_id: str,
    name: str = typer.Argument("result", help="A pipeline step's name, or result for a job's own result."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write it to this file instead of standard output."),
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """Download a result stored as an artifact (one too large for the log), checked against its sha256."""
    with _client(url, api_key) as client:
        data = client.artifact(_full_id(client, job_id), name)
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
        console.print(f"wrote {len(data)} bytes to {output}")


def retry(job_id: str, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """Run a FAILED, CANCELLED or REJECTED job again with a fresh attempt budget."""
    with _client(url, api_key) as client:
        accepted = client.retry(_full_id(client, job_id))
    console.print(f"retry accepted for {accepted.id}")


def update(
    job_id: str,
    priority: Optional[Priority] = typer.Option(None, help="A PENDING or QUEUED job's new priority."),
    run_at: Optional[datetime] = typer.Option(None, help="A PENDING job's new run_at (UTC); a past time runs it now."),
    url: Optional[str] = Url,
    api_key: Optional[str] = Key,
) -> None:
    """Change a job that has not started: its priority, or its run_at while it waits for it."""
    if priority is None and run_at is None:
        console.print("[red]name what to change: --priority, --run-at or both[/]")
        raise typer.Exit(2)
    with _client(url, api_key) as client:
        accepted = client.update(_full_id(client, job_id), priority=priority.value if priority else None, run_at=_aware(run_at))
    console.print(f"changed {accepted.id}")


def delete(job_id: str, url: Optional[str] = Url, api_key: Optional[str] = Key) -> None:
    """Delete a job that ended: reads answer 404 and lists leave it out; the log keeps its history."""
    with _client(url, api_key) as client:
        accepted = client.delete(_full_id(client, job_id))
    console.print(f"deleted {accepted.id}")


def _full_id(client: Client, given: str) -> str:
    """``given``, or the one job id it is an unambiguous start of (as ``ls`` shows ids, ``get 7debcd5c`` works)."""
    if len(given) >= ID_LENGTH:
        return given
    matches = [job.id for job in itertools.islice(client.list(id_prefix=given, page_size=2), 2)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ApiError(404, {"title": "Not Found", "detail": f"no job of yours has an id starting with {given!r}"})
    raise ApiError(
        409,
        {"title": "Ambiguous id", "detail": f"{given!r} starts more than one job id ({', '.join(matches)}, …): give more of it"},
    )


class _client:
    """The SDK client; a refusal prints the problem and exits 3."""

    def __init__(self, url: Optional[str], api_key: Optional[str]) -> None:
        self.client = Client(url, api_key)

    def __enter__(self) -> Client:
        return self.client

    def __exit__(self, kind, error, traceback) -> None:
        self.client.close()
        if isinstance(error, httpx.TransportError):
            console.print(
                f"[red]no API answers at {self.client.base_url}[/] ({type(error).__name__}). "
                "Start the stack with `make run`, or set JOBLEDGER_URL.",
                highlight=False,
            )
            raise typer.Exit(EXIT_REFUSED)
        if isinstance(error, ApiError):
            title = f"{error.status} {error.title}" if error.status else error.title
            console.print(f"[red]{title}[/]: {error.detail or ''}", highlight=False)
            for item in error.errors:
                console.print(f"  {item.get('field')}: {item.get('message')}", highlight=False)
            raise typer.Exit(EXIT_REFUSED)


def _final(client: Client, job_id: str, timeout: Optional[float]) -> JobView:
    try:
        return client.wait(job_id, timeout)
    except JobFailed as failed:
        return failed.job
    except WaitTimeout as timed_out:
        console.print(f"[yellow]{timed_out}[/]")
        raise typer.Exit(EXIT_WAIT_TIMEOUT) from None


STEP_STATES = {
    "queued": "QUEUED",
    "started": "RUNNING",
    "succeeded": "SUCCEEDED",
    "retry_scheduled": "PENDING",
    "released": "PENDING",
    "failed": "FAILED",
    "cancelled": "CANCELLED",
    "skipped": "SKIPPED",
    "compensated": "COMPENSATED",
    "compensation_failed": "COMPENSATION_FAILED",
}
"""A step event's kind → the step's state after it."""


class StepBars:
    """One bar per pipeline step under the job's, fed by the step events of its stream."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def update(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        if not kind.startswith("jobledger.step."):
            return
        data = event.get("data", {})
        name = data.get("step", "?")
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(f"  {name}", total=100)
        kind = kind.removeprefix("jobledger.step.")
        compensating = data.get("compensation") or kind.startswith("compensat")
        state = "COMPENSATING" if compensating and kind in ("queued", "started") else STEP_STATES.get(kind)
        fields: dict[str, Any] = {}
        if state is not None:
            fields["description"] = f"  {name} {_state(state)}"
        if kind == "progressed":
            fields["completed"] = data.get("percent") or 0
        elif kind == "succeeded":
            fields["completed"] = 100
        elif kind == "queued" and not compensating:
            fields["completed"] = 0
        self.progress.update(self.tasks[name], **fields)


def _describe(update: JobUpdate) -> str:
    return " ".join(filter(None, (update.state.value, _progress(update))))


def _progress(update: JobUpdate) -> str:
    """``40% · resizing`` while the job runs; empty when there is nothing to say."""
    parts = []
    if update.progress is not None and update.state not in TERMINAL:
        parts.append(f"{update.progress:.0f}%")
    if update.progress_message:
        parts.append(update.progress_message)
    return " · ".join(parts)


def _show_job(job: JobView) -> None:
    tries = f"run {job.attempt}" if job.steps else f"attempt {job.attempt}/{job.max_attempts}"
    out.print(f"[bold]{job.id}[/]  {job.type}  {_state(job.state.value)}  {tries}", highlight=False)
    if job.progress is not None and job.state not in TERMINAL:
        out.print(f"  progress {job.progress:.0f}% {job.progress_message or ''}")
    if job.result is not None:
        out.print("  result ", json.dumps(job.result), highlight=False)
    if job.artifact is not None:
        out.print(
            f"  artifact {job.artifact.href} ({job.artifact.size} bytes, sha256 {job.artifact.sha256[:12]}…)", highlight=False
        )
    if job.error:
        out.print(f"  error  [red]{job.error_type or ''}[/] {job.error}", highlight=False)
    _show_errors(job.errors, job.error is None)
    if job.compensated is not None:
        out.print(f"  compensated {str(job.compensated).lower()}", highlight=False)
    for step in job.steps or []:
        phase = (
            " (compensation)"
            if step.phase == StepPhase.COMPENSATE and step.state.value not in ("COMPENSATED", "COMPENSATION_FAILED")
            else ""
        )
        line = f"  step {step.name:<16} {_state(step.state.value)}{phase}  attempt {step.attempt}"
        if step.depends_on:
            line += f"  after {', '.join(step.depends_on)}"
        if step.artifact is not None:
            line += f"  artifact {step.artifact.href} ({step.artifact.size} bytes)"
        if step.error:
            line += f"  [red]{step.error}[/]"
        out.print(line, highlight=False)
        if step.state.value in ("FAILED", "COMPENSATION_FAILED"):
            _show_errors(step.errors[-1:], False, indent="    ")


def _show_errors(errors, every: bool, indent: str = "  ") -> None:
    """Each failed attempt's error (``every``: the job has no error of its own,
    e.g. it succeeded on a later attempt), then the last one's traceback."""
    if every or len(errors) > 1:
        for error in errors:
            out.print(f"{indent}attempt {error.attempt} failed: [red]{error.error_type or ''}[/] {error.error}", highlight=False)
    if errors and errors[-1].traceback:
        out.print(indent + errors[-1].traceback.rstrip().replace("\n", "\n" + indent), style="dim", highlight=False, markup=False)


def _state(state: str) -> str:
    colour = {
        "SUCCEEDED": "green",
        "FAILED": "red",
        "REJECTED": "red",
        "CANCELLED": "yellow",
        "RUNNING": "cyan",
        "COMPENSATED": "yellow",
        "COMPENSATING": "yellow",
        "COMPENSATION_FAILED": "red",
        "SKIPPED": "dim",
    }.get(state)
    return f"[{colour}]{state}[/]" if colour else state


def _print(as_json: bool, data: Any, show) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        show()


def _json_option(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise typer.BadParameter(f"not JSON: {error}", param_hint=option) from None


def _pair(item: str, option: str) -> tuple[str, str]:
    """``key:value`` as the API and a schedule's link write a label, or ``key=value``."""
    cut = min((at for at in (item.find(":"), item.find("=")) if at >= 0), default=-1)
    if cut <= 0:
        raise typer.BadParameter(f"{item!r} is not key:value (or key=value)", param_hint=option)
    return item[:cut], item[cut + 1 :]
