"""``python -m services.processor``: run the decider and the runner until stopped
(see :mod:`services.processor.bootstrap` for running one of them alone). A
second SIGINT or SIGTERM while stopping ends the runner's grace at once: its
running jobs are handed back now."""

from __future__ import annotations

from services.common import metrics, tracing
from services.common.lifecycle import serve
from services.common.logging import configure_logging
from services.processor.bootstrap import bootstrap
from services.processor.settings import ProcessorSettings


def main() -> None:
    settings = ProcessorSettings()
    configure_logging(settings, "processor")
    tracing.configure_tracing("processor")
    metrics.serve(settings.metrics_host, settings.metrics_port)
    serve(lambda: bootstrap(settings))


if __name__ == "__main__":
    main()
