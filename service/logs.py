"""structlog set-up, for every process (the one log line per request is service/http/logs.py)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    pretty = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if pretty else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _process_id,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        # one write per line, newline included: under PYTHONUNBUFFERED (as the image runs) print() writes the line and its
        # newline in two system calls, and the workers of one server, sharing stderr, cut into each other's lines
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _process_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Which server worker process wrote the line (`parley serve --workers N`)."""
    event["pid"] = os.getpid()
    return event
