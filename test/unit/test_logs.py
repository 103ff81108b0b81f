"""Secrets never reach a log line or an error message: one ``redact`` for both."""

import io
import logging

from crypto_etl.logs import REDACTED, RedactSecrets, redact


def test_redact_masks_every_occurrence_of_every_secret():
    text = "login etl:pw-1 failed; retry etl:pw-1 with key sk-2"
    assert redact(text, ["pw-1", "sk-2"]) == (
        f"login etl:{REDACTED} failed; retry etl:{REDACTED} with key {REDACTED}"
    )


def test_redact_ignores_empty_secrets_and_leaves_other_text_alone():
    assert redact("nothing secret here", ["", "absent"]) == "nothing secret here"


def test_a_secret_containing_another_is_masked_whole():
    # Masking "abc" first would leave "-long" of the longer secret behind.
    assert redact("key abc-long and abc", ["abc", "abc-long"]) == (
        f"key {REDACTED} and {REDACTED}"
    )


def test_the_log_filter_masks_secrets_passed_as_arguments():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactSecrets(["hunter2"]))
    logger = logging.getLogger("crypto_etl.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("connect failed for password %s", "hunter2")
        logger.warning("nothing to hide: %d rows", 3)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert out.getvalue() == (
        f"connect failed for password {REDACTED}\nnothing to hide: 3 rows\n"
    )
