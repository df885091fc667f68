"""The ``jobledger`` command line."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from services.common.kafka import ensure_topics, wait_for_broker
from services.common.settings import ConnectionSettings
from services.embedded.stack import EmbeddedStack, StackSettings
from services.ingest.settings import DEV_API_KEY, IngestSettings

app = typer.Typer(
    help="jobledger: an event-sourced job service over Kafka.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


@app.callback()
def main() -> None:
    """Run and inspect jobledger. Every option can also be set as JOBLEDGER_<NAME>."""


@app.command()
def up(
    memory: bool = typer.Option(
        False, "--memory", help="Keep the broker's log in memory: faster, but lost when it stops."
    ),
    data_dir: Optional[Path] = typer.Option(None, help="Where logs and durable data live (default: ./var)."),
    api_port: Optional[int] = typer.Option(None, help="Port of the HTTP API (default: 8000)."),
) -> None:
    """Start the embedded stack — broker, database, ingest, processor, projector — until Ctrl-C."""
    overrides = {}
    if memory:
        overrides["broker_storage"] = "memory"
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if api_port is not None:
        overrides["api_port"] = api_port
    stack = EmbeddedStack(StackSettings(**overrides), echo_services=True)
    asyncio.run(_serve(stack))


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
            key = next(iter(IngestSettings().api_keys), DEV_API_KEY)
            message = (
                f"\n[bold green]jobledger is up[/]\n"
                f"  API      {stack.api_url}\n"
                f"  docs     {stack.api_url}/docs\n"
                f"  API key  {key}   (header: Authorization: Bearer {key})\n"
                f"  broker   {s.kafka_bootstrap}  (log: {s.broker_storage})\n"
                f"  database {s.mongo_url}\n"
                f"  data     {s.data_dir}\n\n"
                f"Try:  curl -s -X POST {stack.api_url}/jobs -H 'Authorization: Bearer {key}' "
                f"-H 'Content-Type: application/json' -d '{{\"type\": \"sleep\", \"payload\": {{\"seconds\": 2}}}}'\n"
                f"Ctrl-C stops everything.\n"
            )
            console.print(message, soft_wrap=True, highlight=False)
            while not stopping.is_set():
                await _watch(stack, stopping)
        else:
            starting.cancel()
    finally:
        with console.status("stopping…"):
            await asyncio.to_thread(stack.stop)
        console.print("stopped")


async def _watch(stack: EmbeddedStack, stopping: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), 1.0)
    except asyncio.TimeoutError:
        stack.check_alive()


@app.command()
def topics(
    partitions: Optional[int] = typer.Option(None, help="Partitions of each topic (default: JOBLEDGER_PARTITIONS or 8)."),
) -> None:
    """Create the jobledger topics that are missing (jobs.commands, jobs.events, jobs.dlq)."""
    settings = ConnectionSettings(**({"partitions": partitions} if partitions else {}))
    created = asyncio.run(_create_topics(settings))
    console.print(f"created: {', '.join(created)}" if created else "all topics exist")


async def _create_topics(settings: ConnectionSettings) -> list[str]:
    await wait_for_broker(settings, timeout_s=120)
    return await ensure_topics(settings)


if __name__ == "__main__":
    app()
