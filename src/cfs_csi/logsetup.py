"""The one logging set-up of every component, and the redaction that keeps credentials out of every log line.

Every process (controller, node plugin, operator, sub-directory provisioner, emulator, CLI) calls
:func:`configure` once, from its ``main``. :func:`protect_handlers` can be called again after a library adds a
handler of its own (kopf did: one that posted log lines as Kubernetes Events, which namespaced users can read).

Why redaction and not only "our code never logs secrets": libraries do. At DEBUG the Tencent SDK logs every
request with its ``Authorization`` header (``Credential=<SecretId>/..., Signature=<hex>``), the session token
(``X-TC-Token``) and, when it refreshes a TKE OIDC credential, the answer holding the temporary key; the
Kubernetes client logs response bodies; an exception message can quote anything. So the output itself is
cleaned, in two independent layers (defence in depth):

1. a record factory (:func:`logging.setLogRecordFactory`) redacts every record when it is created, whatever
   logger or handler it will reach, including handlers a library adds later: the message with its ``args``
   merged in, the traceback text and the stack;
2. every handler's formatter is wrapped (:class:`RedactingFormatter`), so the final formatted line, with any
   extra field a library's formatter adds, is redacted again.

Redaction is by pattern (TC3 ``Credential=``/``Signature=``, ``Authorization``/``X-TC-Token`` header values,
``SecretId``/``SecretKey``/``Token``-like keys in JSON, dict, tuple and query-string forms, bearer tokens,
JWTs, ``AKID`` secret ids) and by value: the credentials module registers every secret id, key and token it
reads or refreshes (:func:`register_secret`), so a value is removed wherever it shows up, even inside a repr
or an exception message. Text with none of the trigger words and no registered value is returned after one
lower-casing and a few substring checks, so DEBUG logging stays cheap.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import quote

REDACTED = "[redacted]"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Shorter values are not redacted by value: no Tencent credential is this short (a SecretId has 36
#: characters, a SecretKey 32), and blanking every occurrence of a short string would make logs unreadable.
MIN_SECRET_LENGTH = 8

# -- redaction by pattern --------------------------------------------------------------------------------------

#: Cheap pre-check: text containing none of these (lower-cased) cannot match a pattern below.
_TRIGGERS = ("token", "secret", "authoriz", "signature", "credential", "bearer", "akid", "eyj", "passw", "private")

_NOT_WORD_BEFORE = r"(?<![A-Za-z0-9])"  # unlike \b, "_" counts as a boundary: TENCENTCLOUD_SECRET_KEY matches
_AUTH_KEYS = r"(?:proxy-)?authorization"
_HIDDEN_KEYS = (
    r"(?:x-tc-token|(?:tmp_?)?secret[-_]?(?:id|key)"
    r"|(?:web[-_]?identity[-_]?|session[-_]?|security[-_]?|access[-_]?|refresh[-_]?|id[-_]?|auth[-_]?|bearer[-_]?)?"
    r"token|password|passwd|client[-_]?secret|private[-_]?key)"
)
_QUOTED = r"(?P<q>[\"'])(?P<qv>[^\"'\r\n]*)(?P=q)"
#: ``key: value``, ``key=value``, ``"key": "value"``, ``'key': b'value'``, and a tuple ``('key', 'value')``.
_SEPARATOR = r"[\"']?(?:\s*[:=]\s*|\s*,\s*(?=b?[\"']))b?"
_KEYED = re.compile(
    rf"{_NOT_WORD_BEFORE}(?P<key>{_AUTH_KEYS}|{_HIDDEN_KEYS})(?![A-Za-z0-9])(?P<sep>{_SEPARATOR})"
    rf"(?:{_QUOTED}|(?P<v>[^\s,;&'\"{{}}\[\])]+))",
    re.IGNORECASE,
)
#: An unquoted Authorization header value runs to the end of the line (``TC3-HMAC-SHA256 Credential=...``).
_AUTH_LINE = re.compile(rf"{_NOT_WORD_BEFORE}(?P<key>{_AUTH_KEYS})(?P<sep>\s*[:=]\s*)(?![\"'])[^\r\n]+", re.I)
_STANDALONE = (
    # TC3 signature v3 and the older HmacSHA256 query string.
    (re.compile(r"(Credential=)[^\s,/'\"&]+", re.I), rf"\g<1>{REDACTED}"),
    (re.compile(r"(Signature=)[^\s,'\"&]+", re.I), rf"\g<1>{REDACTED}"),
    (re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.I), rf"\g<1>{REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),  # a JWT
    (re.compile(r"\bAKID[A-Za-z0-9]{8,}"), REDACTED),  # a Tencent SecretId, permanent or temporary
)


def _keyed(match: re.Match[str]) -> str:
    if match.group("q") is not None:
        quote_char = match.group("q")
        return f"{match.group('key')}{match.group('sep')}{quote_char}{REDACTED}{quote_char}"
    return f"{match.group('key')}{match.group('sep')}{REDACTED}"


def redact_patterns(text: str) -> str:
    """``text`` with every credential-shaped value replaced by ``[redacted]`` (keys and layout kept)."""
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    text = _AUTH_LINE.sub(lambda m: f"{m.group('key')}{m.group('sep')}{REDACTED}", text)
    text = _KEYED.sub(_keyed, text)
    for pattern, replacement in _STANDALONE:
        text = pattern.sub(replacement, text)
    return text


# -- redaction by value ----------------------------------------------------------------------------------------

_lock = threading.Lock()
_values: tuple[str, ...] = ()  # longest first, so a value that contains another is replaced whole


def variants(value: str) -> set[str]:
    """The forms a value takes in a log line: as is, URL-encoded, JSON-escaped, repr-escaped."""
    forms = {value, quote(value, safe=""), value.replace("/", "\\/"), repr(value)[1:-1]}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def register_secret(value: str | None) -> None:
    """From now on, ``value`` is redacted from every log line of this process (values under
    :data:`MIN_SECRET_LENGTH` characters are left to the patterns)."""
    global _values
    if not value or len(value) < MIN_SECRET_LENGTH or value in _values:
        return
    with _lock:
        _values = tuple(sorted(set(_values) | variants(value), key=len, reverse=True))


def forget_secrets() -> None:
    """Tests only: start again with no registered values."""
    global _values
    with _lock:
        _values = ()


def redact(text: str) -> str:
    """``text`` without any registered secret value and without anything credential-shaped."""
    for value in _values:
        if value in text:
            text = text.replace(value, REDACTED)
    return redact_patterns(text)


# -- the two layers --------------------------------------------------------------------------------------------

_TRACEBACKS = logging.Formatter()


def scrub_record(record: logging.LogRecord) -> None:
    """Redact ``record`` in place: message with its args merged, traceback text, stack."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: the handler reports it, the formatter redacts its output
        return
    record.msg, record.args = redact(message), ()
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class _RedactingFactory:
    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        scrub_record(record)
        return record


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's own formatter and redacts its final output (message, traceback, extra fields)."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def protect_handlers() -> None:
    """Wrap the formatter of every handler of every logger that exists now (root, ours, libraries')."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)]
    handlers = [h for lg in loggers for h in lg.handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("cfs_csi").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


# -- formats ------------------------------------------------------------------------------------------------

#: ``--log-format`` values of every component.
LOG_FORMATS = ("text", "json")
#: Attributes a record may carry (``extra={"volume": ...}``) naming what it is about; the JSON format gives them
#: fields of their own, so a log pipeline can select one volume's or one claim's lines without parsing messages.
SUBJECT_FIELDS = ("volume", "claim", "tcfs", "target")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, RFC 3339 with milliseconds), ``level``, ``component``,
    ``logger``, ``message``, the subject fields the record carries, and ``exception`` with the traceback.

    The message is already redacted when the record was created, and the line is redacted again by the
    :class:`RedactingFormatter` around this one; JSON escaping happens before that second pass, and the
    registered secret values include their JSON-escaped form (:func:`variants`).
    """

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z"
        line: dict[str, object] = {
            "time": stamp, "level": record.levelname, "component": self.component, "logger": record.name,
            "message": record.getMessage(),
        }  # fmt: skip
        for name in SUBJECT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None and value != "":
                line[name] = str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def formatter(log_format: str, component: str) -> logging.Formatter:
    """The formatter of ``--log-format`` (ValueError for any other value)."""
    if log_format == "text":
        return logging.Formatter(FORMAT)
    if log_format == "json":
        return JsonFormatter(component)
    raise ValueError(f"--log-format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")


def configure(level: str, stream: TextIO | None = None, log_format: str = "text", component: str = "") -> None:
    """Set up logging for this process: one stream handler on the root logger at ``level`` in ``log_format``
    (text, or one JSON object per line naming ``component``), redaction on every record and every handler,
    warnings and uncaught exceptions routed through logging (so through the redaction; a bare traceback on
    stderr would bypass it).

    Library loggers keep their levels: at DEBUG the SDK's request and response lines stay, redacted,
    because they are what one turns DEBUG on for.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format, component))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(factory))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    protect_handlers()


def unconfigure() -> None:
    """Tests only: undo the process-wide parts of :func:`configure`."""
    factory = logging.getLogRecordFactory()
    if isinstance(factory, _RedactingFactory):
        logging.setLogRecordFactory(factory.previous)
    logging.captureWarnings(False)
    sys.excepthook = sys.__excepthook__
    threading.excepthook = threading.__excepthook__


__all__ = [
    "LOG_FORMATS",
    "REDACTED",
    "JsonFormatter",
    "RedactingFormatter",
    "configure",
    "protect_handlers",
    "redact",
    "register_secret",
]
