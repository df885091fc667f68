"""HTTP routes, thin: they validate, append a command, or read a read model."""

from fastapi import APIRouter

from services.ingest.routes import artifacts, commands, dashboard, operations, queries, schedules, stream, submits

router = APIRouter()
for module in (submits, commands, queries, stream, artifacts, schedules, operations, dashboard):
    router.include_router(module.router)
