"""``python -m services.processor``: run the decider and the runner until stopped
(see :mod:`services.processor.bootstrap` for running one of them alone)."""

from __future__ import annotations

import mode

from services.common.logging import configure_logging
from services.processor.bootstrap import bootstrap
from services.processor.settings import ProcessorSettings


def main() -> None:
    settings = ProcessorSettings()
    configure_logging(settings, "processor")
    mode.Worker(*bootstrap(settings), override_logging=False, quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
