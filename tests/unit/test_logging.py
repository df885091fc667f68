"""Every log line says which service wrote it and, inside a job's context, which job, command and tenant."""

from __future__ import annotations

import json
import logging

import structlog

from services.common.logging import configure_logging, job_context
from services.common.settings import ConnectionSettings


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_line_logged_in_a_jobs_context_names_the_service_job_command_tenant_and_correlation(capsys):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(ConnectionSettings(log_format="json"), "processor")
    try:
        with job_context("job-1", "acme", "corr-1", command_id="cmd-1"):
            structlog.get_logger(component="decider").info("decided")
            logging.getLogger("aiokafka").warning("a library speaks")
        structlog.get_logger(component="decider").info("outside")
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level

    inside, library, outside = lines(capsys.readouterr().err)
    wanted = {"service": "processor", "job_id": "job-1", "tenant": "acme", "correlation_id": "corr-1", "command_id": "cmd-1"}
    assert wanted.items() <= inside.items() and wanted.items() <= library.items()
    assert outside["service"] == "processor" and "job_id" not in outside
