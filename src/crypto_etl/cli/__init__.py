"""The ``crypto-etl`` command: parse arguments, call the library, report.

Each command (``cli.commands``) is a few lines that call one library
function; the parser (``cli.parser``) declares every command and option.
Here, every ``CryptoEtlError`` becomes one line on stderr and the exit code
of its class (the table in README.md and ``--help``); a traceback only
appears with ``-v``. ``sys.exit`` is called nowhere else.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

from crypto_etl.errors import (
    BudgetExceeded,
    CryptoEtlError,
    Interrupted,
    RunSkipped,
)
from crypto_etl.cli.parser import build_parser

__all__ = ["build_parser", "main"]

log = logging.getLogger("crypto_etl.cli")


@contextmanager
def _signals_stop_cleanly() -> Iterator[None]:
    # `docker stop`, systemd and cron's kill send SIGTERM: it stops a run as
    # cleanly as Ctrl-C does (rollback, the run stored failed, locks freed).
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _signals_stop_cleanly():
            code: int = args.func(args)
    except (RunSkipped, BudgetExceeded) as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return exc.exit_code
    except CryptoEtlError as exc:
        if args.verbose:
            log.exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        stopped = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        print(stopped, file=sys.stderr)
        return 128 + stopped.signum
    except Exception as exc:  # the one place that turns a bug into an exit code
        if args.verbose:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (run with -v for details)",
            file=sys.stderr,
        )
        return 1
    return code
