"""``python -m services.projector``: fold jobs.events into MongoDB until stopped."""

from __future__ import annotations

import asyncio
import signal

import structlog

from services.adapters.positions import LogLost
from services.common.logging import configure_logging
from services.projector.service import run_projector
from services.projector.settings import ProjectorSettings


async def main() -> None:
    settings = ProjectorSettings()
    configure_logging(settings, "projector")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_projector(settings, stop)
    except LogLost as lost:
        structlog.get_logger(component="projector").critical(
            "jobs log lost: the broker holds less than the read models; stopping. Restore the log, or rebuild "
            "(drop the read models and projector_positions) or set JOBLEDGER_ALLOW_LOG_LOSS=true to go on",
            detail=str(lost),
        )
        raise SystemExit(EXIT_LOG_LOST) from None


EXIT_LOG_LOST = 3

if __name__ == "__main__":
    asyncio.run(main())
