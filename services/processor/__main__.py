"""``python -m services.processor``: run the decider and the runner until stopped."""

from __future__ import annotations

import faust

from services.common.logging import configure_logging
from services.processor.app import create_app
from services.processor.handlers import load_handlers
from services.processor.runner import Runner
from services.processor.settings import ProcessorSettings


def main() -> None:
    settings = ProcessorSettings()
    configure_logging(settings, "processor")
    app = create_app(settings)
    registry = load_handlers(settings.handler_modules)
    services = [Runner(settings, registry)] if settings.runner_enabled else []
    worker = faust.Worker(app, *services, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
