"""The one lifecycle of a service process (services/common/lifecycle.py):
parts start in order and stop in reverse, a signal stops them, a second one
hurries the stop, and a part that fails stops the process with its code."""

from __future__ import annotations

import asyncio
import gc
import os
import signal

from services.common.lifecycle import Service, _serve


class Part(Service):
    def __init__(self, name: str, journal: list[str], fail_with: BaseException | None = None) -> None:
        super().__init__()
        self.name = name
        self.journal = journal
        self.fail_with = fail_with
        self.hurried = asyncio.Event()

    def tasks(self):
        return [self._work]

    async def _work(self) -> None:
        await asyncio.sleep(0.01)
        if self.fail_with is not None:
            raise self.fail_with
        while not self.should_stop:
            await asyncio.sleep(0.01)

    async def on_start(self) -> None:
        self.journal.append(f"start {self.name}")

    async def on_stop(self) -> None:
        self.journal.append(f"stop {self.name}")

    def hurry(self) -> None:
        self.hurried.set()


def signal_soon(signum: int, after_s: float) -> None:
    asyncio.get_running_loop().call_later(after_s, os.kill, os.getpid(), signum)


async def test_parts_start_in_order_and_a_signal_stops_them_in_reverse():
    journal: list[str] = []

    async def parts():
        return [Part("decider", journal), Part("runner", journal)]

    signal_soon(signal.SIGTERM, 0.1)
    assert await _serve(parts) == 0
    assert journal == ["start decider", "start runner", "stop runner", "stop decider"]


async def test_a_second_signal_hurries_the_stop():
    journal: list[str] = []

    class SlowToStop(Part):
        async def on_stop(self) -> None:
            signal_soon(signal.SIGINT, 0.01)
            await asyncio.wait_for(self.hurried.wait(), 5)
            journal.append("hurried")

    async def parts():
        return [SlowToStop("runner", journal)]

    signal_soon(signal.SIGINT, 0.05)
    assert await _serve(parts) == 0
    assert journal == ["start runner", "hurried"]


async def test_a_part_that_fails_stops_every_part_with_its_exit_code():
    class LogLost(Exception):
        exit_code = 3

    journal: list[str] = []

    async def parts():
        return [Part("decider", journal), Part("projector", journal, fail_with=LogLost("shorter"))]

    assert await _serve(parts) == 3
    assert journal == ["start decider", "start projector", "stop projector", "stop decider"]

    journal.clear()

    async def plain_failure():
        return [Part("runner", journal, fail_with=RuntimeError("bug"))]

    assert await _serve(plain_failure) == 1


async def test_what_the_process_built_to_start_is_kept_out_of_the_collectors_scans():
    async def parts():
        return [Part("decider", [])]

    signal_soon(signal.SIGTERM, 0.1)
    try:
        assert await _serve(parts) == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # (the test process's own objects go back to the collector)
