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
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from shared.core.sensitive import redact_cards

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
    # Payment card numbers (Luhn-valid): the data policy keeps them out of storage, and no
    # log line may carry one either (an error message quoting a request, say).
    return redact_cards(text, REDACTED)


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


_lock = threading.Lock()
_installed = False


def install_redaction() -> None:
    """Redact every log record of the process from now on (idempotent, thread-safe, cheap)."""
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
            return record

        logging.setLogRecordFactory(factory)
        root = logging.getLogger()
        root.addFilter(redactor)
        for handler in root.handlers:
            handler.addFilter(redactor)
        _installed = True
