"""Loading what a setting names: the modules that declare job types (ingest)
or bind handlers to them (the processor). Importing is I/O, so it is here
and not in the contract (``schemas``), whose modules only declare."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from schemas.jobtypes import JobTypes, catalog


def import_modules(modules: Iterable[str]) -> None:
    """Import the modules a setting names (they declare or bind job types as they load)."""
    for module in modules:
        importlib.import_module(module)


def load_job_types(modules: Iterable[str]) -> JobTypes:
    """Import the modules that declare job types; return the catalog they filled."""
    import_modules(modules)
    return catalog
