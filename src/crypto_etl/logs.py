"""What the CLI shows while it works: logs and progress.

Logs are text or JSON lines on stderr with every secret redacted; progress
of a long job is a bar on a terminal and a log line per step under cron.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime, timezone
from typing import Iterable, Never

from tqdm import tqdm

REDACTED = "********"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every occurrence of each non-empty secret masked.

    Longer secrets are masked first, so a secret that contains another one
    is hidden whole rather than leaving its remainder in the text.
    """
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    """Replace every known secret value in a record's final message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message, self._secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
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


class Progress:
    """Report a long job's steps: a bar on a terminal, else a log line each.

    Its ``advance`` fits ``pipelines.backfill.OnProgress``.

    Args:
        unit: what a step is ("window").
        tty: draw a bar (default: whether stderr is a terminal).
    """

    def __init__(self, unit: str, tty: bool | None = None) -> None:
        self.unit = unit
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.rows = 0
        self._bar: tqdm[Never] | None = None
        self._started = time.monotonic()

    def advance(self, done: int, total: int, rows: int, label: str) -> None:
        """Count step ``done`` of ``total``, which brought ``rows`` rows."""
        self.rows += rows
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = self.rows / elapsed
        if not self.tty:
            logging.getLogger("crypto_etl.progress").info(
                "%d/%d %ss: %s, %d rows (%.0f rows/s, ETA %.0f s)",
                done,
                total,
                self.unit,
                label,
                rows,
                rate,
                (total - done) * elapsed / done,
            )
            return
        bar = self._bar or tqdm(total=total, unit=self.unit, file=sys.stderr)
        self._bar = bar
        bar.set_postfix(rows=self.rows, rows_s=f"{rate:,.0f}", refresh=False)
        bar.update(done - bar.n)

    def close(self) -> None:
        """Finish the bar (nothing to do for log lines)."""
        if self._bar is not None:
            self._bar.close()
