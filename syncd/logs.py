"""Structured logs: one line per event on stderr (journald takes it), as logfmt `key=value` or
JSON (`[syncd] log_format`), with every secret replaced by `***` before it is written.

    configure_logging(settings.syncd.log_format, "INFO", settings_secrets(settings))
    log = get_logger(__name__)
    log.info("poll_done", source="zendesk", changes=3)
    log.bind(record=str(ref), rule=rule_id).warning("intent_failed", intent=key, error=str(exc))
    log.exception("cycle_failed")                      # the traceback goes in `exc=`, one line

    ts=2026-03-02T09:00:00.123Z level=info event=poll_done logger=syncd.daemon source=zendesk ...

Every line starts with `ts level event logger`, then the event's fields (under journald, after
the line's syslog priority, `<3>` for an error, `<4>` a warning, `<6>` info, which journald
strips and keeps as the entry's priority: `journalctl -p warning -u syncd`); third-party libraries'
records (httpx, apscheduler) come out the same way with their message as `event`. The
redaction runs as a filter on the handler, so it covers those too: it rewrites the message
(after %-formatting its arguments), the fields and the exception and stack text, replacing
configured secret values (also URL- and JSON-escaped, and line by line for PEM keys), fields
named like credentials (`access_token`, `client_secret`, `authorization`, ...), the value of an
`Authorization:` header, `Bearer` tokens, JWTs, and `access_token=`-style pairs in URLs,
headers, form bodies and JSON.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import UTC, date, datetime
from typing import Any, Literal, TextIO
from urllib.parse import quote, quote_plus

from pydantic import SecretStr

from syncd.printable import escape_json_text
from syncd.redact import install
from syncd.settings import SECRET_FILES, Settings

LogFormat = Literal["keyvalue", "json"]
REDACTED = "***"
FIELDS_ATTR = "syncd_fields"
HANDLER_NAME = "syncd"
_HEAD = ("ts", "level", "event", "logger")
# Libraries that log every request or job run at INFO: quiet unless debugging.
_CHATTY = ("httpx", "httpcore", "urllib3", "apscheduler")
# Keys whose value is a credential wherever they appear: fields, mapping keys, `k=v` text.
_SENSITIVE_NAMES = (
    "access_token", "refresh_token", "id_token", "token", "client_secret", "client_assertion",
    "assertion", "password", "passwd", "secret", "private_key", "api_key", "apikey",
    "x-api-key", "tempauth", "sig", "cookie", "set-cookie",
)
_SENSITIVE_KEYS = frozenset((*_SENSITIVE_NAMES, "authorization", "proxy-authorization"))
_VALUE_END = r"[^\s&\"',;}\]]+"
_TOKEN_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # JSON Web Tokens (OAuth access tokens, JWT bearer assertions), wherever they appear.
    (re.compile(r"\beyJ[\w-]+\.eyJ[\w-]+\.[\w-]*"), REDACTED),
    # `Authorization: Bearer x`, `'authorization': 'Basic x'`: keep the scheme, hide the rest.
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?)"
            r"((?:bearer|basic|token|negotiate|digest|sharedaccesssignature)\s+)?" + _VALUE_END
        ),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"(?i)(\bbearer\s+)[\w\-.~+/]+=*"), rf"\1{REDACTED}"),
    # HTTP Basic credentials wherever they appear (an error page echoing request headers).
    (re.compile(r"(?i)(\bbasic\s+)[A-Za-z0-9+/]{6,}=*"), rf"\1{REDACTED}"),
    (
        re.compile(
            r"(?i)(\b(?:" + "|".join(map(re.escape, _SENSITIVE_NAMES)) + r")\b[\"']?\s*[:=]\s*"
            r"[\"']?)" + _VALUE_END
        ),
        rf"\1{REDACTED}",
    ),
)


class Redactor:
    """Replaces secrets and credential-shaped substrings in text with `***`."""

    def __init__(self, secrets: Iterable[str | SecretStr] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            if not value:
                continue
            # Lines of a multi-line secret (a PEM key) alone, if long enough to be no word.
            lines = [line.strip() for line in value.splitlines()]
            for form in (value, *(line for line in lines if len(line) >= 8)):
                variants.update((form, quote(form, safe=""), quote_plus(form), _json_inner(form)))
        alternatives = sorted(variants, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        for pattern, replacement in _TOKEN_SHAPES:
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any) -> Any:
        """A field value made plain (str, number, bool, None, list, dict) and redacted;
        mapping entries under credential-like keys are replaced whole."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, Mapping):
            return {
                str(k): REDACTED if _is_sensitive(str(k)) else self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(item) for item in value]
        return self(str(value))


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so that no handler after it sees a secret. Never raises: a
    log call with arguments that do not fit its format still logs (and cannot crash the
    caller or dump the raw arguments through `handleError`)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = f"{record.msg!s} (log arguments did not match the format)"
        record.msg, record.args = self._redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # what remains is the redacted text
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        fields = getattr(record, FIELDS_ATTR, None)
        if fields:
            setattr(record, FIELDS_ATTR, self._redact.value(fields))
        return True


# syslog(3) priorities by logging level, for journald's `<N>` line prefix
SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
                   logging.DEBUG: 7}


def writes_to_journal(stream: TextIO, env: Mapping[str, str]) -> bool:
    """True when `stream` is the journal stream systemd connected ($JOURNAL_STREAM names its
    device and inode), as sd_journal_stream_fd's users check."""
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    try:
        stat = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return f"{stat.st_dev}:{stat.st_ino}" == f"{device}:{inode}"


class EventFormatter(logging.Formatter):
    """`ts level event logger` + fields (+ `exc`, `stack`) on one line, logfmt or JSON; with
    `priority`, after the syslog priority prefix journald reads."""

    def __init__(self, fmt: LogFormat = "keyvalue", priority: bool = False) -> None:
        super().__init__()
        self._json = fmt == "json"
        self._priority = priority

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        for key, value in getattr(record, FIELDS_ATTR, {}).items():
            line[f"{key}_" if key in _HEAD else key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        if self._json:  # one event, one line, whatever a reader takes for a line break
            text = escape_json_text(json.dumps(line, ensure_ascii=False, default=str))
        else:
            text = " ".join(f"{_logfmt_key(k)}={_logfmt_value(v)}" for k, v in line.items())
        if self._priority:
            level = max((n for n in SYSLOG_PRIORITY if n <= record.levelno), default=logging.DEBUG)
            return f"<{SYSLOG_PRIORITY[level]}>{text}"
        return text


class EventLogger(logging.LoggerAdapter[logging.Logger]):
    """`log.info(event, **fields)`: keyword arguments other than logging's own (exc_info,
    stack_info, stacklevel, extra) become the event's fields, after those bound by `bind`.
    `level` and `msg` cannot be field names (the `log()` method takes them)."""

    def __init__(self, logger: logging.Logger, context: Mapping[str, Any] | None = None) -> None:
        super().__init__(logger, dict(context or {}))

    def bind(self, **context: Any) -> EventLogger:
        """A logger that adds `context` (record, rule, intent, vendor, ...) to every event."""
        return EventLogger(self.logger, {**(self.extra or {}), **context})

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        own = {k: kwargs.pop(k) for k in ("exc_info", "stack_info", "stacklevel") if k in kwargs}
        extra = dict(kwargs.pop("extra", None) or {})
        extra[FIELDS_ATTR] = {**(self.extra or {}), **kwargs}
        return msg, {**own, "extra": extra}


def get_logger(name: str, **context: Any) -> EventLogger:
    return EventLogger(logging.getLogger(name), context)


def configure_logging(
    fmt: LogFormat = "keyvalue",
    level: int | str = "INFO",
    secrets: Iterable[str | SecretStr] = (),
    stream: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Route every log record (syncd's, libraries', warnings) through one redacting handler on
    the root logger. Calling it again (a reload with new secrets) replaces that handler. Lines
    carry syslog priorities when the stream is systemd's journal stream (`env`: os.environ)."""
    stream = stream or sys.stderr
    journal = writes_to_journal(stream, os.environ if env is None else env)
    handler = logging.StreamHandler(stream)
    handler.set_name(HANDLER_NAME)
    redactor = Redactor(secrets)
    install(redactor)  # the same masking for what syncd stores and prints (redact.py)
    handler.addFilter(RedactingFilter(redactor))
    handler.setFormatter(EventFormatter(fmt, priority=journal))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet = logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
    for name in _CHATTY:
        logging.getLogger(name).setLevel(quiet)
    logging.captureWarnings(True)
    return handler


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret value the settings hold, for `configure_logging(secrets=...)`, and the
    forms clients send them in: HTTP Basic's base64 of `email/token:TOKEN` (zenpy) and of
    `client_id:client_secret` (OAuth clients); URL-encoded forms are added by `Redactor`."""
    found = (getattr(getattr(settings, section), key, None) for section, key in SECRET_FILES)
    values = [secret.get_secret_value() for secret in found if isinstance(secret, SecretStr)]
    pairs = []
    if settings.zendesk is not None and settings.zendesk.token is not None:
        pairs.append(f"{settings.zendesk.email}/token:{settings.zendesk.token.get_secret_value()}")
    for section in (settings.salesforce, settings.graph):
        secret = getattr(section, "client_secret", None)
        if isinstance(secret, SecretStr):
            pairs.append(f"{section.client_id}:{secret.get_secret_value()}")  # type: ignore[union-attr]
    return values + [base64.b64encode(p.encode()).decode() for p in pairs]


def _json_inner(text: str) -> str:
    """`text` as it appears inside a JSON string (quotes, backslashes, newlines escaped)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _is_sensitive(key: str) -> bool:
    return key.lower() in _SENSITIVE_KEYS


def _logfmt_key(key: str) -> str:
    return re.sub(r"[^\w.\-]", "_", key) or "_"


def _logfmt_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    else:
        text = str(value)
    needs_quotes = not text or not text.isprintable() or any(c in text for c in ' ="\\')
    return escape_json_text(json.dumps(text, ensure_ascii=False)) if needs_quotes else text
