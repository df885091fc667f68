"""Where every bench writes what it measured: ``bench/results/<name>-<time>.json``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def save(name: str, result: dict, suffix: str = ".json") -> Path:
    """Write ``result`` as JSON; the path (whose stem other files of the run may share)."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat()[:19].replace(":", "")
    path = RESULTS / f"{name}-{stamp}{suffix}"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path
