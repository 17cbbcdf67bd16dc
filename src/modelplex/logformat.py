"""Log line formats shared by the CLI and the worker processes: the plain text lines, or JSON lines.

`--log-format json` (or MODELPLEX_LOG_FORMAT=json, which the CLI sets for the workers it starts)
writes one JSON object per line: {"time", "level", "logger", "message", "pid"} and "exception"
when a traceback is attached, so log shippers need no parsing rules.
"""

from __future__ import annotations

import json
import logging
import time

LOG_FORMATS = ("text", "json")
LOG_FORMAT_ENV = "MODELPLEX_LOG_FORMAT"  # set by the modelplex CLI's --log-format; workers inherit it


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside the message are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        event: dict[str, object] = {
            "time": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            event["exception"] = record.exc_text
        return json.dumps(event, ensure_ascii=False)


def parse_log_format(name: str | None) -> str | None:
    """The format `name` (case and spaces ignored; empty means text), or None when unknown."""
    value = (name or "text").strip().lower()
    return value if value in LOG_FORMATS else None
