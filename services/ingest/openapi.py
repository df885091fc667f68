"""``python -m services.ingest.openapi [--check]``: write the API's OpenAPI
document to ``docs/openapi.json`` (or, with ``--check``, exit 1 if it is stale).

Third parties generate clients from this file without running the service;
a test keeps it in step with the routes (``make schemas`` rewrites it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings

PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def document() -> str:
    spec = create_app(IngestSettings()).openapi()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.ingest.openapi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/openapi.json is current; exit 1 if not")
    args = parser.parse_args()
    text = document()
    if args.check:
        current = PATH.exists() and PATH.read_text() == text
        if not current:
            print(f"stale: {PATH} (run `make schemas`)", file=sys.stderr)
        sys.exit(0 if current else 1)
    PATH.write_text(text)
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
