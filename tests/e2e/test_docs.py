"""The examples of docs/getting-started.md run, as written, against the stack:
every ``bash`` block with ``bash -e``, every ``python`` block with Python."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.api import DEV_API_KEY
from services.embedded.stack import REPO

pytestmark = pytest.mark.e2e

GUIDE = REPO / "docs" / "getting-started.md"
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(GUIDE.read_text())


def test_the_guide_has_examples_for_every_kind_of_user():
    text = GUIDE.read_text()

    assert len(blocks()) >= 5
    for heading in ("## Producers", "## Downstream consumers", "## Auditors", "## Operators"):
        assert heading in text


@pytest.mark.timeout(400)
async def test_every_example_of_the_guide_runs(stack, tmp_path: Path):
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("JOBLEDGER_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "JOBLEDGER_URL": stack.api_url,
        "JOBLEDGER_API_KEY": DEV_API_KEY,
        "JOBLEDGER_KAFKA_BOOTSTRAP": stack.settings.kafka_bootstrap,
        "JOBLEDGER_MONGO_URL": stack.settings.mongo_url,
        "JOBLEDGER_MONGO_DB": stack.settings.mongo_db,
    }
    for language, code in blocks():
        argv = ["bash", "-e", "-c", code] if language == "bash" else [sys.executable, "-c", code]
        ran = await asyncio.to_thread(subprocess.run, argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
        assert ran.returncode == 0, f"this {language} example failed:\n{code}\n--- stdout\n{ran.stdout}\n--- stderr\n{ran.stderr}"
