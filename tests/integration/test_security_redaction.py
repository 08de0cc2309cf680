"""Secrets never reach logs: the redacting filter and its process-wide installation."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from shared.core import telemetry
from shared.core.telemetry import RedactingFilter, install_redaction, redact

API_KEY = "asc_0123456789ab_S3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3t"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_api_key_keeps_only_its_prefix() -> None:
    """An Ascent API key is cut to its public prefix."""
    assert redact(f"key={API_KEY} end") == "key=asc_0123456789ab_[REDACTED] end"


def test_bearer_value_is_redacted() -> None:
    """Whatever follows `Bearer` is hidden."""
    assert "opaque-token-value" not in redact("Authorization: Bearer opaque-token-value")


def test_jwt_is_redacted() -> None:
    """A JWT anywhere in a message is hidden."""
    assert redact(f"token {JWT} rejected") == "token [REDACTED] rejected"


def test_openai_key_is_redacted() -> None:
    """An OpenAI-style secret key is hidden."""
    assert "sk-proj-abcdef123456" not in redact("using sk-proj-abcdef123456 now")


def test_url_password_is_redacted() -> None:
    """The password of a connection URL is hidden, user and host kept."""
    text = redact("postgresql://ascent:hunter2@db.example:5432/app")
    assert text == "postgresql://ascent:[REDACTED]@db.example:5432/app"


def test_connection_string_secrets_are_redacted() -> None:
    """Password= and AccountKey= fields of connection strings are hidden."""
    text = redact("Server=x;Password=pw1;AccountName=a;AccountKey=abc+/==;")
    assert "pw1" not in text and "abc+/==" not in text and "AccountName=a" in text


def test_filter_redacts_arguments_and_exceptions() -> None:
    """The filter rewrites %-arguments and exception text of a record."""
    try:
        raise ValueError(f"bad key {API_KEY}")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "got %s", (API_KEY,), None)
        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    assert "S3cr3t" not in record.getMessage() and "S3cr3t" not in (record.exc_text or "")


@pytest.fixture
def fresh_install(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Allow one installation in this test and undo it afterwards."""
    factory = logging.getLogRecordFactory()
    root = logging.getLogger()
    filters = list(root.filters)
    monkeypatch.setattr(telemetry, "_installed", False)
    yield
    logging.setLogRecordFactory(factory)
    root.filters = filters
    for handler in root.handlers:
        handler.filters = [f for f in handler.filters if not isinstance(f, RedactingFilter)]


def test_installed_redaction_covers_child_loggers(
    fresh_install: None, caplog: pytest.LogCaptureFixture
) -> None:
    """After install_redaction(), a record from any logger is redacted before handlers see it."""
    install_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info("calling with %s", API_KEY)
    assert "S3cr3t" not in caplog.text and "asc_0123456789ab_[REDACTED]" in caplog.text


def test_install_is_idempotent(fresh_install: None) -> None:
    """Installing twice wraps the record factory once."""
    install_redaction()
    factory = logging.getLogRecordFactory()
    install_redaction()
    assert logging.getLogRecordFactory() is factory
