"""make run's supervisor: a process that exits starts again, with backoff; one that keeps exiting stops the stack."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.embedded.supervisor import KeepsDying, Supervisor


@dataclass
class Process:
    code: int | None = None

    def poll(self) -> int | None:
        return self.code


@dataclass
class Stack:
    home: Path
    processes: dict[str, Process] = field(default_factory=lambda: {"ingest": Process(), "processor": Process()})
    started: list[str] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.home

    @property
    def supervisor_file(self) -> Path:
        return self.home / "supervisor.json"

    def respawn(self, name: str) -> None:
        self.started.append(name)
        self.processes[name] = Process()


def test_a_process_that_exits_starts_again_after_a_backoff_that_grows_and_is_counted(tmp_path):
    stack = Stack(tmp_path)
    supervisor = Supervisor(stack)  # type: ignore[arg-type]  # what the supervisor uses of a stack
    assert json.loads(stack.supervisor_file.read_text()) == {"restarts": {}}

    stack.processes["processor"].code = -9
    said = supervisor.heal(now=100.0)
    early = supervisor.heal(now=100.4)
    supervisor.heal(now=100.5)
    stack.processes["processor"].code = 1
    supervisor.heal(now=101.0)
    supervisor.heal(now=101.9)
    later = list(stack.started)
    supervisor.heal(now=102.0)

    assert "processor exited with code -9; starting it again in 0.5 s" in said[0] and early == []
    assert later == ["processor"] and stack.started == ["processor", "processor"], "the second wait is 1 s"
    assert json.loads(stack.supervisor_file.read_text()) == {"restarts": {"processor": 2}}
    assert stack.processes["ingest"].code is None and "ingest" not in stack.started


def test_a_process_that_keeps_exiting_stops_everything(tmp_path):
    stack = Stack(tmp_path)
    supervisor = Supervisor(stack, max_restarts=2, first_backoff_s=0.1)  # type: ignore[arg-type]
    now = 0.0
    with pytest.raises(KeepsDying, match="ingest exited 3 times within 60 s"):
        for _ in range(10):
            stack.processes["ingest"].code = 2
            supervisor.heal(now=now)
            supervisor.heal(now=now + 1)
            now += 2
