"""The processor's wiring: which services this process runs, built from its settings.

``JOBLEDGER_DECIDER_ENABLED=false`` gives a runner-only process (more workers
for the same jobs; it never joins the decider's consumer group), and
``JOBLEDGER_RUNNER_ENABLED=false`` a decider-only one. With both, the decider
feeds the runner in memory unless ``JOBLEDGER_EAGER_DISPATCH=false``, which
makes it read ``jobs.events`` like a runner-only process. The runner gets the
handlers of ``JOBLEDGER_HANDLER_MODULES``.
"""

from __future__ import annotations

import mode

from services.processor.decider import Decider
from services.processor.handlers import load_handlers
from services.processor.runner import Runner
from services.processor.settings import ProcessorSettings


def bootstrap(settings: ProcessorSettings) -> list[mode.Service]:
    """The services, in start order (mode stops them in reverse: the runner first)."""
    services: list[mode.Service] = []
    decider = Decider(settings) if settings.decider_enabled else None
    if decider is not None:
        services.append(decider)
    if settings.runner_enabled:
        runner = Runner(settings, load_handlers(settings.handler_modules), decider if settings.eager_dispatch else None)
        if decider is not None and settings.eager_dispatch:
            decider.runner = runner
        services.append(runner)
    if not services:
        raise SystemExit("nothing to run: both JOBLEDGER_DECIDER_ENABLED and JOBLEDGER_RUNNER_ENABLED are false")
    return services
