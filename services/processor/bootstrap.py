"""The processor's wiring: which services this process runs, built from its settings.

``JOBLEDGER_DECIDER_ENABLED=false`` gives a runner-only process (more workers
for the same jobs; it never joins the decider's consumer group), and
``JOBLEDGER_RUNNER_ENABLED=false`` a decider-only one. The runner gets the
handlers of ``JOBLEDGER_HANDLER_MODULES``.
"""

from __future__ import annotations

import mode

from services.processor.decider import Decider
from services.processor.handlers import load_handlers
from services.processor.runner import Runner
from services.processor.settings import ProcessorSettings


def bootstrap(settings: ProcessorSettings) -> list[mode.Service]:
    services: list[mode.Service] = []
    if settings.decider_enabled:
        services.append(Decider(settings))
    if settings.runner_enabled:
        services.append(Runner(settings, load_handlers(settings.handler_modules)))
    if not services:
        raise SystemExit("nothing to run: both JOBLEDGER_DECIDER_ENABLED and JOBLEDGER_RUNNER_ENABLED are false")
    return services
