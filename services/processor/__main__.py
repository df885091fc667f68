"""``python -m services.processor``: run the decider and the runner until stopped.

``JOBLEDGER_DECIDER_ENABLED=false`` runs a runner-only process (more workers
for the same jobs); it starts no faust app, so it never joins the decider's
consumer group.
"""

from __future__ import annotations

import faust
import mode

from services.common.logging import configure_logging
from services.processor.app import create_app
from services.processor.handlers import load_handlers
from services.processor.runner import Runner
from services.processor.settings import ProcessorSettings


def main() -> None:
    settings = ProcessorSettings()
    configure_logging(settings, "processor")
    registry = load_handlers(settings.handler_modules)
    services = [Runner(settings, registry)] if settings.runner_enabled else []
    loglevel = settings.log_level.lower()
    if settings.decider_enabled:
        worker = faust.Worker(create_app(settings), *services, loglevel=loglevel, quiet=True)
    elif services:
        worker = mode.Worker(*services, loglevel=loglevel, quiet=True)
    else:
        raise SystemExit("nothing to run: both JOBLEDGER_DECIDER_ENABLED and JOBLEDGER_RUNNER_ENABLED are false")
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
