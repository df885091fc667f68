"""``make run`` heals: a process of the stack that exits is started again, with backoff.

A process that dies is started again after 0.5 s, then 1, 2, 4 … up to 30 s
while it keeps dying; one that dies more than :attr:`Supervisor.max_restarts`
times within :attr:`Supervisor.window_s` stops the whole stack (something is
wrong that a restart will not fix: its log says what). Each restart is
logged with the exit code and counted in ``supervisor.json`` in the data
directory, which ``GET /status`` reports as ``restarts``.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from schemas.errors import JobledgerError
from services.embedded.stack import EmbeddedStack


class KeepsDying(JobledgerError):
    """A process died too often to be worth starting again."""


@dataclass
class Supervisor:
    stack: EmbeddedStack
    window_s: float = 60.0
    max_restarts: int = 5
    first_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    restarts: Counter[str] = field(default_factory=Counter)
    _deaths: dict[str, deque[float]] = field(default_factory=dict)
    _due: dict[str, float] = field(default_factory=dict)
    """Processes that died, and when each starts again."""

    def __post_init__(self) -> None:
        self._record()  # none yet: a file left by an earlier run counts nothing of this one

    def heal(self, now: float | None = None) -> list[str]:
        """Look at every process: schedule a dead one's restart, start those due. What happened, as lines to show."""
        now = time.monotonic() if now is None else now
        said = []
        for name, process in list(self.stack.processes.items()):
            code = process.poll()
            if code is None or name in self._due:
                continue
            deaths = self._deaths.setdefault(name, deque())
            while deaths and now - deaths[0] > self.window_s:
                deaths.popleft()
            deaths.append(now)
            log = self.stack.logs / f"{name}.log"
            if len(deaths) > self.max_restarts:
                raise KeepsDying(
                    f"{name} exited {len(deaths)} times within {self.window_s:g} s (last with code {code}); "
                    f"stopping everything: see {log}"
                )
            backoff = min(self.max_backoff_s, self.first_backoff_s * 2 ** (len(deaths) - 1))
            self._due[name] = now + backoff
            said.append(f"{name} exited with code {code}; starting it again in {backoff:g} s (see {log})")
        for name, due in list(self._due.items()):
            if now >= due:
                del self._due[name]
                self.stack.respawn(name)
                self.restarts[name] += 1
                said.append(f"{name} started again ({self.restarts[name]} restarts)")
                self._record()
        return said

    def _record(self) -> None:
        self.stack.supervisor_file.write_text(json.dumps({"restarts": dict(self.restarts)}))
