"""The command line when nothing answers: one line that says what to start, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobledger import Client, Unavailable
from services.embedded.stack import StackSettings

NOBODY = {
    "JOBLEDGER_KAFKA_BOOTSTRAP": "127.0.0.1:1",
    "JOBLEDGER_MONGO_URL": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500",
    "JOBLEDGER_URL": "http://127.0.0.1:1",
}


def jobledger(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **NOBODY}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("audit", "verify"), 1, "no broker answers at 127.0.0.1:1"),
        (("drain", "--timeout", "2"), 1, "no broker answers at 127.0.0.1:1"),
        (("get", "some-job"), 3, "nothing answers at http://127.0.0.1:1"),
    ],
)
def test_an_unreachable_stack_is_one_clear_line(args, code, says):
    result = jobledger(*args)

    assert result.returncode == code, result.stderr
    assert says in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_the_sdk_raises_its_own_unavailable_when_nothing_answers():
    with Client("http://127.0.0.1:1") as client, pytest.raises(Unavailable) as raised:
        client.get("some-job")

    assert raised.value.status == 0 and raised.value.code == "unreachable"
    assert str(raised.value).startswith("No API answers: nothing answers at http://127.0.0.1:1")


def test_make_runs_api_port_is_the_documented_jobledger_port(monkeypatch):
    monkeypatch.setenv("JOBLEDGER_PORT", "8123")

    assert StackSettings().api_port == 8123
    assert StackSettings(api_port=0).api_port == 0, "an explicit port (the tests' 0: any free one) still wins"


@pytest.mark.parametrize("width", range(40, 100))
def test_a_listing_drops_columns_that_do_not_fit_and_cuts_none(width, monkeypatch):
    from rich.console import Console

    from jobledger import cli

    monkeypatch.setattr(cli, "out", Console(width=width, record=True))
    row = ("89c7ee79-c687-4b95-8e8d-40abc9ebf3aa", "0 3 * * *", "noop", "02:00:00", "Europe/Berlin")
    cli.out.print(cli._id_table(("id", "cron", "job", "next tick", "timezone"), [row]))

    shown = cli.out.export_text()
    assert "…" not in shown and row[0] in shown
