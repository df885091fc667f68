"""``python -m services.processor``: run the decider and the runner until stopped.

``JOBLEDGER_DECIDER_ENABLED=false`` runs a runner-only process (more workers
for the same jobs; it never joins the decider's consumer group), and
``JOBLEDGER_RUNNER_ENABLED=false`` a decider-only one.
"""

from __future__ import annotations

import mode

from services.common.logging import configure_logging
from services.processor.decider import Decider
from services.processor.handlers import load_handlers
from services.processor.runner import Runner
from services.processor.settings import ProcessorSettings


def main() -> None:
    settings = ProcessorSettings()
    configure_logging(settings, "processor")
    services: list[mode.Service] = []
    if settings.decider_enabled:
        services.append(Decider(settings))
    if settings.runner_enabled:
        services.append(Runner(settings, load_handlers(settings.handler_modules)))
    if not services:
        raise SystemExit("nothing to run: both JOBLEDGER_DECIDER_ENABLED and JOBLEDGER_RUNNER_ENABLED are false")
    mode.Worker(*services, loglevel=settings.log_level.lower(), quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
