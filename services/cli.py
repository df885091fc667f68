"""The ``jobledger`` command line."""

from __future__ import annotations

import asyncio
import functools
import signal
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from jobledger.cli import register as register_job_commands
from services.adapters.broker import STARTING_BROKER_WAIT_S, ensure_topics, wait_for_broker
from services.common.settings import ConnectionSettings
from services.embedded import kafka, s3
from services.embedded.stack import REPO, EmbeddedStack, StackSettings, taken_ports
from services.embedded.supervisor import KeepsDying, Supervisor
from services.ingest.keys import HASHED, new_key, parse_grant
from services.ingest.settings import IngestSettings
from services.processor.settings import ProcessorSettings

app = typer.Typer(
    help="jobledger: an event-sourced job service over Kafka.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
console = Console(stderr=True)
register_job_commands(app)


def _reaching_out(command):
    """For a command that talks to the broker or the database: when neither
    answers, one line that says which and how to start it, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
        from pymongo.errors import ServerSelectionTimeoutError

        settings = ConnectionSettings()
        try:
            return command(*args, **kwargs)
        except (KafkaConnectionError, KafkaTimeoutError) as error:
            console.print(
                f"[red]no broker answers at {settings.kafka_bootstrap}[/] ({type(error).__name__}). "
                "Start the stack with `make run`, or set JOBLEDGER_KAFKA_BOOTSTRAP.",
                highlight=False,
            )
        except ServerSelectionTimeoutError as error:
            console.print(
                f"[red]no database answers at {settings.mongo_url}[/] ({type(error).__name__}). "
                "Start the stack with `make run`, or set JOBLEDGER_MONGO_URL.",
                highlight=False,
            )
        raise typer.Exit(1)

    return wrapper


@app.callback()
def main() -> None:
    """Run and inspect jobledger. Every option can also be set as JOBLEDGER_<NAME>."""


CLUSTER: dict[str, Any] = dict(data_dir=REPO / "var" / "cluster", brokers=3, replicas=2, ingest_replicas=2)
"""``jobledger up --cluster``: every part more than once, on one machine."""


@app.command()
def up(
    data_dir: Optional[Path] = typer.Option(None, help="Where logs and durable data live (default: ./var)."),
    api_port: Optional[int] = typer.Option(None, help="Port of the HTTP API (default: 8000)."),
    replicas: Optional[int] = typer.Option(
        None,
        min=1,
        help="Processor and projector processes: each takes a share of the partitions (default: 1; 2 with --cluster).",
    ),
    cluster: bool = typer.Option(
        False,
        "--cluster",
        help="Three Kafka nodes (replication factor 3, min.insync.replicas 2) and two of each service, "
        "data under ./var/cluster: what `make cluster` starts (docs/scaling.md).",
    ),
) -> None:
    """Start the embedded stack — Apache Kafka, the database, the S3 artifact store, ingest, processor, projector — until Ctrl-C.

    The first start fetches the pinned jars of Kafka and S3Proxy with `mvn` (Java 17+ and Maven needed);
    the log and the read models stay under --data-dir across restarts."""
    overrides: dict[str, Any] = dict(CLUSTER) if cluster else {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if api_port is not None:
        overrides["api_port"] = api_port
    if replicas is not None:
        overrides["replicas"] = replicas
    try:
        kafka.ensure_installed(say=lambda line: console.print(line, highlight=False))
        s3.ensure_installed(say=lambda line: console.print(line, highlight=False))
    except kafka.MissingTool as missing:
        console.print(f"[red]cannot start the stack:[/] {missing}", highlight=False)
        raise typer.Exit(1) from None
    stack = EmbeddedStack(StackSettings(**overrides), echo_services=True)
    taken = taken_ports(stack.settings, stack.nodes[1:])
    if taken:
        for line in taken:
            console.print(f"[red]cannot start the stack:[/] {line}", highlight=False)
        raise typer.Exit(1)
    try:
        asyncio.run(_serve(stack))
    except KeepsDying as dying:
        console.print(f"[red]{dying}[/]", highlight=False)
        raise typer.Exit(2) from None


async def _serve(stack: EmbeddedStack) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    s = stack.settings
    with console.status("starting broker, database and services…"):
        starting = asyncio.create_task(stack.start())
        await asyncio.wait([starting, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED)
    try:
        if starting.done():
            starting.result()
            key = next((key for key in IngestSettings().api_keys if not key.startswith(HASHED)), "(one of JOBLEDGER_API_KEYS)")
            message = (
                f"\n[bold green]jobledger is up[/]\n"
                f"  API       {stack.api_url}\n"
                f"  docs      {stack.api_url}/docs\n"
                f"  API key   {key}   (header: Authorization: Bearer {key})\n"
                f"  broker    {s.kafka_bootstrap}  (Apache Kafka {kafka.kafka_version()}, {_nodes(stack)})\n"
                f"  database  {s.mongo_url}\n"
                f"  artifacts {s.s3_endpoint}  (S3Proxy {s3.version()}, bucket {s.s3_bucket})\n"
                f"  data      {s.data_dir}\n"
                f"  dashboard {stack.api_url}/ui\n"
                f"  metrics   {'  '.join(f'{name} {url}' for name, url in stack.metrics_urls().items())}\n"
                f"{_client_env(stack)}\n"
                f"Try:  curl -s -X POST {stack.api_url}/jobs -H 'Authorization: Bearer {key}' "
                f'-H \'Content-Type: application/json\' -d \'{{"type": "sleep", "payload": {{"seconds": 2}}}}\'\n'
                f'      jobledger submit pipeline --payload \'{{"object": {{"Name": " Ada ", "born": 1815}}}}\' '
                f'--steps \'[{{"name": "export", "type": "export"}}]\' --wait\n'
                f"Ctrl-C stops everything.\n"
            )
            console.print(message, soft_wrap=True, highlight=False)
            supervisor = Supervisor(stack)
            while not stopping.is_set():
                await _watch(supervisor, stopping)
        else:
            starting.cancel()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stack.hurry)
        grace = ProcessorSettings().shutdown_grace_s
        with console.status(f"stopping… a running job gets {grace:g} s to finish, then is handed back (Ctrl-C again: now)"):
            await asyncio.to_thread(stack.stop)
        console.print("stopped")


def _nodes(stack: EmbeddedStack) -> str:
    s = stack.settings
    if not s.cluster:
        return f"log: {s.broker_dir}"
    return f"{s.brokers} nodes, replication factor {s.replication_factor}, logs: {s.data_dir}/kafka-*"


def _client_env(stack: EmbeddedStack) -> str:
    """How the CLI and the SDK find this stack: nothing to set on the defaults."""
    moved = {
        "JOBLEDGER_URL": (stack.api_url, f"http://127.0.0.1:{StackSettings.model_fields['api_port'].default}"),
        "JOBLEDGER_KAFKA_BOOTSTRAP": (stack.settings.kafka_bootstrap, ConnectionSettings.model_fields["kafka_bootstrap"].default),
        "JOBLEDGER_MONGO_URL": (stack.settings.mongo_url, ConnectionSettings.model_fields["mongo_url"].default),
    }
    exports = [f"{name}={value}" for name, (value, default) in moved.items() if value != default]
    if not exports:
        return "  CLI, SDK  find it on their defaults (JOBLEDGER_URL, JOBLEDGER_KAFKA_BOOTSTRAP unset)\n"
    return f"  CLI, SDK  in another shell: export {' '.join(exports)}\n"


async def _watch(supervisor: Supervisor, stopping: asyncio.Event) -> None:
    """Every half second: start again what exited (KeepsDying, which stops everything, when it keeps exiting)."""
    try:
        await asyncio.wait_for(stopping.wait(), 0.5)
    except asyncio.TimeoutError:
        for line in supervisor.heal():
            console.print(f"[yellow]{line}[/]", highlight=False)


@app.command()
@_reaching_out
def topics(
    partitions: Optional[int] = typer.Option(None, help="Partitions of each topic (default: JOBLEDGER_PARTITIONS or 8)."),
) -> None:
    """Create the jobledger topics that are missing: jobs.commands, jobs.events, jobs.dlq, jobs.workers,
    jobs.slots, jobs.schedules and the compacted *.state changelogs."""
    settings = ConnectionSettings(partitions=partitions) if partitions else ConnectionSettings()
    created = asyncio.run(_create_topics(settings))
    console.print(f"created: {', '.join(created)}" if created else "all topics exist")


async def _create_topics(settings: ConnectionSettings) -> list[str]:
    await wait_for_broker(settings, timeout_s=STARTING_BROKER_WAIT_S)
    return await ensure_topics(settings)


@app.command()
@_reaching_out
def drain(
    timeout: float = typer.Option(60.0, help="Seconds to wait before giving up (exit 1)."),
    read_model: bool = typer.Option(
        False,
        "--read-model",
        help="Only the decider and the projector: the read models hold the whole log (running jobs may go on).",
    ),
) -> None:
    """Wait until the decider, the runners and the projector have processed every
    record of their topics, then exit 0: the system is idle. A running job keeps
    the runners busy until it ends; jobs waiting on a timer (a backoff, a run_at)
    do not count."""
    from services.adapters.broker import GROUP_TOPICS, READ_MODEL_GROUPS
    from services.adapters.broker import drain as drained

    try:
        asyncio.run(drained(ConnectionSettings(), timeout_s=timeout, groups=READ_MODEL_GROUPS if read_model else GROUP_TOPICS))
    except TimeoutError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    console.print("[green]drained[/]: every consumer group has processed its topics")


@app.command()
@_reaching_out
def replay(
    swap: bool = typer.Option(False, "--swap", help="Put the rebuilt read models in place of the live ones."),
    keep: bool = typer.Option(False, "--keep", help="Keep the rebuilt collections (*_replay) to inspect them."),
) -> None:
    """Rebuild the read models (jobs, job_events, schedules) from the logs into fresh
    collections and compare them with the live ones. Exits 1 if they differ (and then never swaps)."""
    from services import replay as tools
    from services.adapters.readmodel import connect

    settings = ConnectionSettings()
    suffix = "_replay"

    async def run() -> tools.Comparison:
        mongo = connect(settings)
        db = mongo[settings.mongo_db]
        ends: dict[int, int] = {}
        try:
            with _bar("replaying jobs.events") as (bar, task):
                read = await tools.rebuild(settings, db, suffix, _advance(bar, task), ends)
            result = await tools.compare(db, suffix, settings, ends)
            _report(read, result)
            if swap and result.same:
                with _bar("swapping, then applying the tail") as (bar, task):
                    tail = await tools.swap(settings, db, suffix, ends, _advance(bar, task))
                console.print(f"[green]swapped[/]: the live read models are the replay (+{tail} events since)")
            elif not keep:
                await tools.discard(db, suffix)
            return result
        finally:
            await mongo.close()

    if not asyncio.run(run()).same:
        raise typer.Exit(1)


def _advance(bar, task):
    def progress(total, done: int) -> None:
        if total is not None:
            bar.update(task, total=total)
        bar.advance(task, done)

    return progress


def _report(read: int, result) -> None:
    console.print(
        f"replayed {read} records: {result.identical} jobs identical to the live read model, "
        f"{len(result.newer_live)} newer live (events after the replay began), "
        f"{len(result.differing)} differing, {len(result.missing_live)} missing live, "
        f"{len(result.only_live)} only live, {result.swept} swept by retention (JOBLEDGER_RETENTION; --swap brings "
        f"them back); job_events {result.events_replayed} replayed / {result.events_live} live, "
        f"{len(result.events_differing)} differing"
    )
    for job_id, fields in result.differing[:20]:
        console.print(f"[red]differs[/] job {job_id}: {', '.join(fields)}")
    for job_id in result.missing_live[:20]:
        console.print(f"[red]missing live[/] job {job_id}")
    for job_id in result.only_live[:20]:
        console.print(f"[red]only live[/] job {job_id}: in the read model, not in the log")
    for event_id in result.events_differing[:20]:
        console.print(f"[red]differs[/] event {event_id}: missing live or changed")
    for schedule_id in result.schedules_differing[:20]:
        console.print(f"[red]differs[/] schedule {schedule_id}")
    console.print("[green]identical[/]" if result.same else "[red]the read models differ from the log[/]")


keys = typer.Typer(help="Make API keys.", no_args_is_help=True)
app.add_typer(keys, name="keys")


@keys.command("new")
def keys_new(
    tenant: str = typer.Option(..., "--tenant", help="The tenant the key acts for."),
    scope: list[str] = typer.Option([], "--scope", help="jobs:read, jobs:write or admin; repeat for more. Default: all three."),
) -> None:
    """Make a random API key. Prints the key (give it to its user: it is shown
    once) and the JOBLEDGER_API_KEYS entry that configures it by its hash, so
    the configuration never holds the key itself."""
    try:
        grant = parse_grant(f"{tenant}:{'+'.join(scope)}" if scope else tenant)
    except ValueError as error:
        console.print(f"[red]{error}[/]", highlight=False)
        raise typer.Exit(2) from None
    key, hashed = new_key()
    typer.echo(key)
    console.print(
        f"configure it with: JOBLEDGER_API_KEYS='{hashed}={grant}' (comma-separated with the other keys)",
        highlight=False,
        soft_wrap=True,
    )


dlq = typer.Typer(help="Dead letters: records a consumer could not take (jobs.dlq).", no_args_is_help=True)
app.add_typer(dlq, name="dlq")


@dlq.command("ls")
@_reaching_out
def dlq_list(
    every: bool = typer.Option(False, "--all", help="Also those sent back already."),
    stage: Optional[str] = typer.Option(None, help="Only those of this stage (decider, slots, schedules, projector, logs)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per dead letter."),
) -> None:
    """List the dead letters: where each is (partition:offset), when, which stage gave up on it, and why."""
    from rich.table import Table

    from services.dlq import dead_letters

    letters = [
        letter
        for letter in asyncio.run(dead_letters(ConnectionSettings()))
        if (every or not letter.redriven) and (stage is None or letter.stage == stage)
    ]
    if as_json:
        for letter in letters:
            typer.echo(_letter_json(letter))
        return
    table = Table("at", "when", "stage", "source", "error", "sent back")
    for letter in letters:
        table.add_row(
            letter.address,
            letter.at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            letter.stage,
            f"{letter.source_topic}:{letter.source_partition}:{letter.source_offset}",
            letter.error[:80],
            "yes" if letter.redriven else "",
        )
    Console().print(table)  # the listing on stdout, the count on stderr
    console.print(f"{len(letters)} dead letters", highlight=False)


@dlq.command("show")
@_reaching_out
def dlq_show(address: str = typer.Argument(..., help="partition:offset, as `jobledger dlq ls` shows it.")) -> None:
    """One dead letter in full: its error, headers, key and value."""
    from services.dlq import dead_letters

    letter = next((letter for letter in asyncio.run(dead_letters(ConnectionSettings())) if letter.address == address), None)
    if letter is None:
        console.print(f"[red]no dead letter at {address}[/] (see `jobledger dlq ls --all`)", highlight=False)
        raise typer.Exit(1)
    typer.echo(_letter_json(letter, indent=True))


@dlq.command("redrive")
@_reaching_out
def dlq_redrive(
    addresses: list[str] = typer.Argument(None, help="partition:offset of each; none: choose with --stage or --all."),
    stage: Optional[str] = typer.Option(None, help="Every dead letter of this stage not sent back yet."),
    every: bool = typer.Option(False, "--all", help="Every dead letter not sent back yet."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be sent back; send nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask first."),
) -> None:
    """Send dead letters back to their source topics, once what made them fail is fixed. A
    record that is still poison comes back as a new dead letter; events are never sent back
    (they are in the log: fix the projector, then `jobledger replay --swap`)."""
    from services.dlq import dead_letters, redrive

    settings = ConnectionSettings()
    pending = [letter for letter in asyncio.run(dead_letters(settings)) if not letter.redriven]
    if addresses:
        known = {letter.address: letter for letter in pending}
        missing = [address for address in addresses if address not in known]
        if missing:
            console.print(f"[red]not pending dead letters:[/] {', '.join(missing)}", highlight=False)
            raise typer.Exit(1)
        chosen = [known[address] for address in addresses]
    elif stage is not None or every:
        chosen = [letter for letter in pending if every or letter.stage == stage]
    else:
        console.print("[red]name dead letters (partition:offset), or choose --stage or --all[/]")
        raise typer.Exit(2)
    stuck = [letter for letter in chosen if letter.redrivable]
    for letter in stuck:
        console.print(f"[yellow]skipped[/] {letter.address}: {letter.redrivable}", highlight=False)
    chosen = [letter for letter in chosen if not letter.redrivable]
    console.print(f"{len(chosen)} to send back", highlight=False)
    if dry_run or not chosen:
        return
    if not yes and not typer.confirm("send them back?"):
        raise typer.Exit(1)
    sent = asyncio.run(redrive(settings, chosen))
    console.print(f"[green]sent back[/]: {sent}", highlight=False)


def _letter_json(letter, indent: bool = False) -> str:
    import json

    document = {
        "at": letter.address,
        "time": letter.at.isoformat(),
        "stage": letter.stage,
        "error": letter.error,
        "source": {"topic": letter.source_topic, "partition": letter.source_partition, "offset": letter.source_offset},
        "redriven": letter.redriven,
        "key": letter.key.decode("utf-8", "replace") if letter.key is not None else None,
        "headers": {name: value.decode("utf-8", "replace") for name, value in letter.headers},
        "value": letter.value.decode("utf-8", "replace"),
    }
    return json.dumps(document, indent=2 if indent else None, ensure_ascii=False)


audit = typer.Typer(help="Check and export the job log (jobs.events) for auditors.", no_args_is_help=True)
app.add_typer(audit, name="audit")


@audit.command("verify")
@_reaching_out
def audit_verify(
    job: Optional[str] = typer.Option(None, "--job", help="Check only this job's chain."),
    file: Optional[Path] = typer.Option(
        None, "--file", exists=True, dir_okay=False, help="Check an exported JSONL copy instead of the live topic."
    ),
) -> None:
    """Check every job's hash chain in the log: gapless seq, linked prevhash, correct hash. Exits 1 at a break."""
    from schemas.chain import ChainCheck
    from services import audit as tools
    from services.adapters.log import log_records

    chain = ChainCheck()

    def take(raw: bytes, where: str) -> None:
        if job is not None and f'"{job}"'.encode() not in raw:
            return
        tools.verify(chain, raw, where)

    with _bar("verifying") as (bar, task):
        if file is not None:
            bar.update(task, total=None)
            for line, raw in enumerate(tools.file_records(file), start=1):
                take(raw, f"line {line}")
                bar.advance(task)
        else:

            async def walk() -> None:
                async for raw in log_records(ConnectionSettings(), lambda total: bar.update(task, total=total)):
                    take(raw, "topic")
                    bar.advance(task)

            asyncio.run(walk())
    if chain.foreign:
        console.print(
            f"[yellow]{chain.foreign} record(s) are not job events[/] (not JSON objects): the consumers "
            "dead-lettered them (see jobs.dlq) and they change no job's history"
        )
    if chain.broken:
        for link in chain.broken:
            console.print(f"[red]broken[/] job {link.job_id} at seq {link.seq}: {link.reason}")
        console.print(f"[red]{len(chain.broken)} broken chain(s)[/] in {chain.events} events of {len(chain.jobs)} jobs")
        raise typer.Exit(1)
    console.print(f"[green]intact[/]: {chain.events} events, {len(chain.jobs)} jobs, every chain verified")


@audit.command("export")
@_reaching_out
def audit_export(
    job: Optional[str] = typer.Option(None, "--job", help="Only this job's events."),
    since: Optional[datetime] = typer.Option(None, "--since", help="Only events at or after this time (UTC if no zone)."),
    until: Optional[datetime] = typer.Option(None, "--until", help="Only events at or before this time (UTC if no zone)."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl (the records, byte for byte) or csv."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: standard output)."),
) -> None:
    """Write the history for auditors, hash chain included, in log order per job."""
    import sys

    from services import audit as tools
    from services.adapters.log import log_records

    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("use jsonl or csv", param_hint="--format")
    since, until = _utc(since), _utc(until)
    out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    exporter = tools.Exporter(out, fmt)
    foreign = [0]

    async def walk(bar, task) -> None:
        async for raw in log_records(ConnectionSettings(), lambda total: bar.update(task, total=total)):
            bar.advance(task)
            event = tools.decoded(raw)
            if event is None:
                foreign[0] += 1
            elif tools.selected(event, job, since, until):
                exporter.write(raw, event)

    try:
        with _bar("exporting") as (bar, task):
            asyncio.run(walk(bar, task))
    finally:
        if output:
            out.close()
    console.print(f"exported {exporter.count} events" + (f" to {output}" if output else ""))
    if foreign[0]:
        console.print(f"[yellow]skipped {foreign[0]} record(s) that are not job events[/] (not JSON objects; see jobs.dlq)")


def _utc(value: Optional[datetime]) -> Optional[datetime]:
    from datetime import timezone

    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


class _bar:
    """A rich progress bar on standard error."""

    def __init__(self, label: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)

    def __enter__(self):
        self.progress.__enter__()
        return self.progress, self.progress.add_task("", total=None)

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)


if __name__ == "__main__":
    app()
