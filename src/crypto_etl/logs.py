"""Logging set-up for the CLI: text or JSON lines on stderr, secrets redacted."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Iterable

REDACTED = "********"


class RedactSecrets(logging.Filter):
    """Replace every known secret value in a record's final message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self._secrets):
            for secret in self._secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(verbose: bool, log_format: str, secrets: Iterable[str] = ()) -> None:
    """Send the project's logs to stderr in ``log_format`` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.addFilter(RedactSecrets(secrets))
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("crypto_etl").setLevel(logging.DEBUG if verbose else logging.INFO)
