"""What a batch of pipelines (``run all``) did, and the one error it ends with.

Each pipeline of a batch ends in one ``Outcome``: loaded (its run record),
skipped (another run held its lock, or the credit budget refused it: no call
was made either way) or failed (the error). ``BatchResult`` turns them into
the batch's result:

- nothing failed or skipped: no error (exit 0);
- nothing failed, something skipped: ``BudgetExceeded`` (exit 15) when the
  budget refused one, since that needs someone to act; else ``RunSkipped``
  (exit 10), since an overlapping run is harmless;
- failures that share one cause while nothing loaded: that cause's own error
  class (a bad key on every route is exit 4, not 8), reported once;
- otherwise ``PartialFailure`` (exit 8).

Pipelines that failed for the same reason are named together with the reason
once: the route each message starts with is the pipeline's own, so it is
dropped when the pipelines are listed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from crypto_etl.errors import (
    BudgetExceeded,
    CryptoEtlError,
    PartialFailure,
    RunSkipped,
)
from crypto_etl.pipelines.catalog import Pipeline
from crypto_etl.records.rows import RunRecord

# The errors that mean "did nothing, on purpose".
SKIPS = (RunSkipped, BudgetExceeded)


@dataclass(frozen=True)
class Outcome:
    """How one pipeline of a batch ended: exactly one of ``run`` and ``error``."""

    pipeline: Pipeline
    run: RunRecord | None = None
    error: CryptoEtlError | None = None

    @property
    def status(self) -> str:
        """``loaded``, ``skipped`` or ``failed``."""
        if self.error is None:
            return "loaded"
        return "skipped" if isinstance(self.error, SKIPS) else "failed"

    @property
    def cause(self) -> str:
        """The error's message without the pipeline's own name or route."""
        text = str(self.error)
        for subject in (f"GET {self.pipeline.path}: ", f"{self.pipeline.name}: "):
            text = text.removeprefix(subject)
        return text


@dataclass(frozen=True)
class BatchResult:
    """The outcomes of a batch, in the order the pipelines were given."""

    outcomes: list[Outcome]

    @property
    def runs(self) -> list[RunRecord]:
        """The run records of the pipelines that loaded."""
        return [o.run for o in self.outcomes if o.run is not None]

    def error(self) -> CryptoEtlError | None:
        """The error the batch ends with (see the module docstring), or None."""
        failed = [o for o in self.outcomes if o.status == "failed"]
        skipped = [o for o in self.outcomes if o.status == "skipped"]
        if not failed and not skipped:
            return None
        if not failed:
            # The CLI prints "skipped: " before the message.
            budget = [o for o in skipped if isinstance(o.error, BudgetExceeded)]
            example = (budget or skipped)[0]
            return _grouped(example, _describe(skipped, mark_skips=False))
        causes = {(type(o.error), o.cause) for o in failed}
        if len(causes) == 1 and not self.runs:
            return _grouped(failed[0], _describe(failed + skipped))
        return PartialFailure(
            f"{len(failed)} of {len(self.outcomes)} pipelines did not load: "
            + _describe(failed + skipped)
        )


def _describe(outcomes: list[Outcome], *, mark_skips: bool = True) -> str:
    """``a, b: cause | c: other cause``, each distinct cause once."""
    groups: dict[str, list[str]] = {}
    for o in outcomes:
        skip = mark_skips and o.status == "skipped"
        label = f"skipped ({o.cause})" if skip else o.cause
        groups.setdefault(label, []).append(o.pipeline.name)
    return " | ".join(f"{', '.join(names)}: {label}" for label, names in groups.items())


def _grouped(example: Outcome, message: str) -> CryptoEtlError:
    """The example's error, same class (same exit code), with ``message``."""
    assert example.error is not None
    error = copy.copy(example.error)
    error.args = (message,)
    error.__cause__ = example.error
    return error
