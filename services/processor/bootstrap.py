"""The processor's wiring: which parts this process runs, and every adapter
they use, built from its settings.

``JOBLEDGER_DECIDER_ENABLED=false`` gives a runner-only process (more workers
for the same jobs; it never joins the decider's consumer group), and
``JOBLEDGER_RUNNER_ENABLED=false`` a decider-only one. With both, the decider
feeds the runner in memory unless ``JOBLEDGER_EAGER_DISPATCH=false``, which
makes it read ``jobs.events`` like a runner-only process. The runner gets the
handlers of ``JOBLEDGER_HANDLER_MODULES``.
"""

from __future__ import annotations

from services.adapters.artifacts import ArtifactStore
from services.adapters.log import make_consumer, make_producer
from services.common.lifecycle import Service
from services.processor import decider as decider_module
from services.processor import runner as runner_module
from services.processor.decider import Decider
from services.processor.handlers import load_handlers
from services.processor.runner import Runner
from services.processor.service_calls import ServiceCalls
from services.processor.settings import ProcessorSettings


async def bootstrap(settings: ProcessorSettings) -> list[Service]:
    """The parts, in start order (they stop in reverse: the runner first). The
    service registry comes first, so it is ready before the decider hands its
    runner any attempt."""
    if not (settings.decider_enabled or settings.runner_enabled):
        raise SystemExit("nothing to run: both JOBLEDGER_DECIDER_ENABLED and JOBLEDGER_RUNNER_ENABLED are false")
    parts: list[Service] = []
    handlers = load_handlers(settings.handler_modules) if settings.runner_enabled else None
    artifacts = ArtifactStore(settings) if settings.s3_endpoint else None  # (started by the runner)
    if handlers is not None:  # first: the registry is ready before the decider hands out any attempt
        parts.append(ServiceCalls(settings, handlers, artifacts))
    decider = None
    if settings.decider_enabled:
        decider = Decider(
            settings, make_producer(settings), make_consumer(settings, settings.app_id, **decider_module.CONSUMER_OPTIONS)
        )
        parts.append(decider)
    if handlers is not None:
        feeder = decider if settings.eager_dispatch else None
        runner = Runner(
            settings,
            handlers,
            make_producer(settings),
            decider=feeder,
            consumer=None if feeder else make_consumer(settings, settings.runner_group_id, **runner_module.CONSUMER_OPTIONS),
            artifacts=artifacts,
        )
        if decider is not None and feeder is not None:
            decider.runner = runner
        parts.append(runner)
    return parts
