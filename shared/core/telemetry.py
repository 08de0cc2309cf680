"""Keep secrets out of logs: a redacting logging.Filter and an idempotent installer.

Redacted: Ascent API keys (`asc_<prefix>_<secret>` keeps its public prefix), `Bearer <token>`
values, JWTs, OpenAI-style `sk-` keys, passwords in URLs (`scheme://user:password@host`) and in
`Password=`/`AccountKey=`/`SharedAccessKey=` connection-string fields.

Where it is installed: `local/devhost.py` calls `install_redaction()` in `main()`; in Azure the
`shared.api.http.api` wrapper calls it on every request, which installs it once, on the first
request. `function_app.py` must NOT call it: the Functions host imports that module to index
functions (no side effects allowed), and the Python worker configures its own logging handlers
after import, so anything attached at import could be replaced or miss the worker's handlers.
The installer wraps the log record factory, so every record of every logger is redacted when it
is created, whichever handlers exist now or are added later.

The same factory makes the lines structured (issue 16): every record carries `tenant_id`,
`run_id`, `thread_id` (set by the run engine with `log_context` for the run's duration) and the
OpenTelemetry `trace_id` and `span_id` current when it was logged ("" where none applies).
`JsonFormatter` writes them as one JSON object per line (ASCENT_LOG_FORMAT=json); the Azure
Monitor log exporter sends record attributes as custom dimensions.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

REDACTED = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Ascent API keys: keep the public prefix so the key stays identifiable.
    (re.compile(r"\b(asc_[A-Za-z0-9]+_)[A-Za-z0-9_\-]+"), r"\1" + REDACTED),
    # JWTs (three base64url segments, header starts with {" → eyJ).
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), REDACTED),
    # Any bearer credential.
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}"), r"\1" + REDACTED),
    # OpenAI-style secret keys.
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), REDACTED),
    # Passwords in URLs: scheme://user:password@host.
    (re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+(@)"), r"\1" + REDACTED + r"\2"),
    # Connection-string fields (ADO.NET, Azure Storage, Service Bus, Redis).
    (
        re.compile(r"(?i)\b(password|pwd|accountkey|sharedaccesskey|access_key)=([^;\s,]+)"),
        r"\1=" + REDACTED,
    ),
)


def redact(text: str) -> str:
    """Return the text with every known secret shape replaced by [REDACTED]."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrite a record's message, exception and stack text with secrets redacted (never drops)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; always keep it."""
        if getattr(record, "_ascent_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._ascent_redacted = True
        return True


LOG_FIELDS = ("tenant_id", "run_id", "thread_id")
_FIELDS: ContextVar[Mapping[str, str] | None] = ContextVar("ascent_log_fields", default=None)


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add `fields` (tenant_id, run_id, thread_id) to every log record made in this block."""
    given = {k: v for k, v in fields.items() if v}
    token = _FIELDS.set({**(_FIELDS.get() or {}), **given})
    try:
        yield
    finally:
        _FIELDS.reset(token)


def current_log_fields() -> Mapping[str, str]:
    """The log context of the current task (what `log_context` set)."""
    return _FIELDS.get() or {}


def enrich(record: logging.LogRecord) -> None:
    """Put the log context and the current trace and span ids on a record."""
    fields = _FIELDS.get() or {}
    for name in LOG_FIELDS:
        setattr(record, name, fields.get(name, ""))
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        record.trace_id = format(span.trace_id, "032x")
        record.span_id = format(span.span_id, "016x")
    else:
        record.trace_id = record.span_id = ""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids, and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (its message already redacted by the factory)."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*LOG_FIELDS, "trace_id", "span_id"):
            value = getattr(record, name, "")
            if value:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


_lock = threading.Lock()
_installed = False


def install_redaction() -> None:
    """Redact and enrich every log record of the process from now on (idempotent, cheap)."""
    global _installed
    if _installed:
        return
    with _lock:
        if _installed:
            return
        redactor = RedactingFilter()
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redactor.filter(record)
            enrich(record)
            return record

        logging.setLogRecordFactory(factory)
        root = logging.getLogger()
        root.addFilter(redactor)
        for handler in root.handlers:
            handler.addFilter(redactor)
        _installed = True


TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


def setup_logging(level: int | str, *, json_lines: bool) -> None:
    """Configure the root logger of a process we own (dev host, jobs): text or JSON lines,
    redacted and enriched (Azure's worker configures its own handlers; see the module doc)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    install_redaction()
    handler.addFilter(RedactingFilter())
