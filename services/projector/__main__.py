"""``python -m services.projector``: fold jobs.events into MongoDB until stopped."""

from __future__ import annotations

import asyncio
import signal

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
    await run_projector(settings, stop)


if __name__ == "__main__":
    asyncio.run(main())
