"""``python -m services.processor``: run the decider and the runner until stopped
(see :mod:`services.processor.bootstrap` for running one of them alone)."""

from __future__ import annotations

import mode

from services.common.logging import configure_logging
from services.processor.bootstrap import bootstrap
from services.processor.runner import Runner
from services.processor.settings import ProcessorSettings


def main() -> None:
    settings = ProcessorSettings()
    configure_logging(settings, "processor")
    Worker(*bootstrap(settings), override_logging=False, quiet=True).execute_from_commandline()


class Worker(mode.Worker):
    """mode's worker, where a second SIGINT or SIGTERM while stopping ends the
    runner's grace at once: its running jobs are handed back now."""

    def _schedule_shutdown(self, signum) -> None:
        if self._signal_stop_time:
            for service in self.services:
                if isinstance(service, Runner):
                    service.hurry()
        super()._schedule_shutdown(signum)


if __name__ == "__main__":
    main()
