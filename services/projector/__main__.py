"""``python -m services.projector``: fold jobs.events into MongoDB until stopped
(exit 3 when the broker's log is shorter than the read models)."""

from __future__ import annotations

from services.common import metrics, tracing
from services.common.lifecycle import serve
from services.common.logging import configure_logging
from services.projector.service import bootstrap
from services.projector.settings import ProjectorSettings


def main() -> None:
    settings = ProjectorSettings()
    configure_logging(settings, "projector")
    tracing.configure_tracing("projector")
    metrics.serve(settings.metrics_host, settings.metrics_port)
    serve(lambda: bootstrap(settings))


if __name__ == "__main__":
    main()
