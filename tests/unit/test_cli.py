"""The command line when nothing answers: one line that says what to start, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

NOBODY = {"JOBLEDGER_KAFKA_BOOTSTRAP": "127.0.0.1:1", "JOBLEDGER_MONGO_URL": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500", "JOBLEDGER_URL": "http://127.0.0.1:1"}


def jobledger(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **NOBODY}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "code", "says"), [
    (("audit", "verify"), 1, "no broker answers at 127.0.0.1:1"),
    (("drain", "--timeout", "2"), 1, "no broker answers at 127.0.0.1:1"),
    (("get", "some-job"), 3, "no API answers at http://127.0.0.1:1"),
])
def test_an_unreachable_stack_is_one_clear_line(args, code, says):
    result = jobledger(*args)

    assert result.returncode == code, result.stderr
    assert says in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
