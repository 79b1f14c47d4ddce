"""Scrubbing at the boundary: text from a service is made safe to show, and secrets never leave.

Three things own it, and everything else calls them:

- `clean_text` strips what a terminal would act on from a string a vendor or PSA sent (escape
  sequences — CSI, OSC (window title, OSC 52 clipboard), DCS/APC/PM/SOS —, the C0 and C1 control
  characters, DEL, bidi overrides and isolates) and replaces lone surrogates. `clean_json` applies it
  to every string (and key) of a parsed JSON body: `engine.connectors.http.loads` calls it, so no
  service string reaches the store, a log, the CLI or Textual unscrubbed. The console's rows pass it
  too (data stored before this existed).
- `redact` replaces the configured secrets (environment / OS keyring, registered by
  `engine.settings` as it hands them out), their base64 forms inside a Basic credential, and the
  values of authorization headers and token fields (`Authorization`, `Secret`, `ApiIntegrationCode`,
  `client_secret`, `access_token`…) with `[redacted]`. Every message bound for the journal, the audit
  trail, a log or the screen passes it: `ServiceError`, `engine.audit.record`, the journal's
  messages, and the log records (`install_log_redaction`, installed by the CLI at start).
- `spreadsheet_text` keeps a text cell bound for a spreadsheet (the CSV and XLSX writers: `trueup
  plan --csv`, the margin check's files, `trueup renewals --csv`, the console's `w`) from being
  run as a formula — a vendor company named `=HYPERLINK(…)` (OWASP "CSV Injection").
  `starts_formula` is its test, for a writer with typed cells (openpyxl) that can mark a cell as
  text instead. Money and quantity cells never pass it: a leading `-` there is a negative amount.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from typing import Any

REDACTED = "[redacted]"

# --- control characters ---------------------------------------------------------------------------

# Whole escape sequences first (so an OSC's payload — a window title, a clipboard — goes with it),
# then any control character left. 7-bit (ESC …) and 8-bit (C1) introducers alike.
_STRING_END = r"(?:\x07|\x1b\\|\x9c)"
_ESCAPES = re.compile(
    r"(?:\x1b[\]P^_X]|[\x9d\x90\x9e\x9f\x98])[^\x07\x1b\x9c]*" + _STRING_END + "?"  # OSC, DCS, PM, APC, SOS
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI (cursor moves, erase, colours)
    r"|\x1b[ -/]*[0-~]?"  # any other ESC sequence (charset switches, RIS…)
)
# C0 (but tab and newline, handled by `newlines`), DEL, C1; bidi embedding/override/isolate marks.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_TAB_NEWLINE = re.compile("[\t\n]")


def clean_text(value: str, *, newlines: bool = False) -> str:
    """`value` without escape sequences, control characters or bidi controls, lone surrogates
    replaced by U+FFFD. Tab and newline become spaces unless `newlines` (multi-line text)."""
    if value.isprintable():  # the common case, at C speed (no control, format or surrogate char)
        return value
    if (
        "\x1b" in value
        or "\x9b" in value
        or "\x9d" in value
        or "\x90" in value
        or "\x9e" in value
        or "\x9f" in value
        or "\x98" in value
    ):
        value = _ESCAPES.sub("", value)
    value = _CONTROLS.sub("", value)
    value = _SURROGATES.sub("\ufffd", value)
    if not newlines:
        value = _TAB_NEWLINE.sub(" ", value)
    return value


def clean_json(data: Any) -> Any:
    """Every string (value or key) of a parsed JSON document through `clean_text` (newlines kept:
    descriptions and notes may hold them). In place for lists and dicts; iterative, so a deeply
    nested body cannot exhaust the stack here."""
    if isinstance(data, str):
        return clean_text(data, newlines=True)
    if not isinstance(data, (dict, list)):
        return data
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, str):
                    if not item.isprintable():
                        node[index] = clean_text(item, newlines=True)
                elif isinstance(item, (dict, list)):
                    stack.append(item)
        else:
            dirty = [k for k in node if not k.isprintable()]
            for key in dirty:
                node[clean_text(key, newlines=True)] = node.pop(key)
            for key, item in node.items():
                if isinstance(item, str):
                    if not item.isprintable():
                        node[key] = clean_text(item, newlines=True)
                elif isinstance(item, (dict, list)):
                    stack.append(item)
    return data


# --- spreadsheet cells ----------------------------------------------------------------------------

# OWASP "CSV Injection": a cell starting with =, +, -, @, tab or carriage return is read as a
# formula by Excel, LibreOffice and Google Sheets. Leading whitespace is looked through too: an
# import that trims it ("Trim spaces" in LibreOffice's CSV dialog) would leave the formula bare.
_FORMULA_STARTS = ("=", "+", "-", "@")


def starts_formula(text: str) -> bool:
    """Would a spreadsheet read this text cell as a formula (`=HYPERLINK(…)`, `-5+3`, `@SUM(…)`)?"""
    return text.lstrip(" \t\r\n")[:1] in _FORMULA_STARTS


def spreadsheet_text(text: str, *, newlines: bool = False) -> str:
    """A text cell for a CSV a spreadsheet will open: through `clean_text` (no escape sequences or
    control characters; newlines kept if `newlines`), then prefixed with `'` when it would start a
    formula — the prefix spreadsheets show as text and never evaluate. For text cells only, never
    money or quantities."""
    text = clean_text(text, newlines=newlines)
    return "'" + text if starts_formula(text) else text


# Text fields of a scenario that the console shows (ids are left alone: actions write them back).
_SHOWN_TEXT: dict[str | None, dict[str, tuple[str, ...]]] = {
    "vendor": {
        "companies": ("name",),
        "products": ("name", "sku", "edition", "storage_location"),
        "billing_configurations": ("name",),
    },
    "psa": {
        "companies": ("name",),
        "products": ("name", "sku"),
        "agreements": ("name",),
        "lines": ("description",),
    },
    None: {"ignored": ("by", "reason")},
}


def clean_scenario(scenario: Any) -> Any:
    """The scenario with every shown text field through `clean_text` — for data stored before the
    service boundary scrubbed it. The same object when nothing needed it (the usual case: one
    `isprintable` per field, no copy)."""
    updates: dict[str, Any] = {}
    for side, lists in _SHOWN_TEXT.items():
        holder = getattr(scenario, side) if side else scenario
        side_updates: dict[str, Any] = {}
        for name, fields in lists.items():
            items = getattr(holder, name)
            copied: list[Any] | None = None
            for index, item in enumerate(items):
                changed = {
                    f: clean_text(v, newlines=f in ("description", "reason"))
                    for f in fields
                    if isinstance(v := getattr(item, f), str) and not v.isprintable()
                }
                changed = {f: v for f, v in changed.items() if v != getattr(item, f)}
                if changed:
                    copied = list(items) if copied is None else copied
                    copied[index] = item.model_copy(update=changed)
            if copied is not None:
                side_updates[name] = copied
        if side_updates:
            if side:
                updates[side] = holder.model_copy(update=side_updates)
            else:
                updates.update(side_updates)
    prefix = scenario.settings.description_prefix
    if isinstance(prefix, str) and not prefix.isprintable():
        updates["settings"] = scenario.settings.model_copy(update={"description_prefix": clean_text(prefix)})
    return scenario.model_copy(update=updates) if updates else scenario


# --- secrets --------------------------------------------------------------------------------------

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None
MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words


def register_secret(value: str | None) -> None:
    """Make `redact` replace `value` wherever it appears (and inside a base64 Basic credential)."""
    global _secret_pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


# Header and field names whose value is a credential, with the value after `:`/`=` (quoted or not;
# an `Authorization` value keeps its scheme word: `Basic …`, `Bearer …`).
_CREDENTIAL_NAMES = (
    r"proxy-authorization|authorization|apiintegrationcode|api[_-]?integration[_-]?code|integration[_-]?code"
    r"|client[_-]?secret|private[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token|api[_-]?key"
    r"|x-api-key|password|passwd|secret|token"
)
_CREDENTIALS = re.compile(
    r"(?i)(?<![A-Za-z0-9_-])(?P<name>" + _CREDENTIAL_NAMES + r")(?![A-Za-z0-9_-])"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>(?:(?:basic|bearer|digest|token|negotiate)\s+)?[^\s\"',;&}\]<>]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+(?!\[redacted)[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s/]+)(?=@)")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{12,}={0,2}")


def _credential(match: re.Match[str]) -> str:
    value = match.group("value")
    scheme, _, rest = value.partition(" ")
    keep = (
        f"{scheme} " if rest and scheme.lower() in ("basic", "bearer", "digest", "token", "negotiate") else ""
    )
    if value.startswith(REDACTED[:-1]) or rest.startswith(REDACTED[:-1]):
        return match.group(0)
    return f"{match.group('name')}{match.group('sep')}{keep}{REDACTED}"


def _encoded_secret(match: re.Match[str]) -> str:
    token = match.group(0)
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return token
    return REDACTED if any(secret in decoded for secret in _secrets) else token


def redact(text: str) -> str:
    """`text` with every known secret, base64 credential holding one, and credential-header value
    replaced by `[redacted]`."""
    if not text:
        return text
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
        if _secrets:
            text = _BASE64.sub(_encoded_secret, text)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
    text = _CREDENTIALS.sub(_credential, text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


def redact_data(data: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with every string through `clean_text`
    and `redact`, and the value of every credential-named key replaced."""
    if isinstance(data, str):
        return redact(clean_text(data, newlines=True))
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            name = str(key)
            if isinstance(value, str) and value and re.fullmatch(_CREDENTIAL_NAMES, name, re.IGNORECASE):
                out[key] = REDACTED
            else:
                out[key] = redact_data(value)
        return out
    if isinstance(data, (list, tuple)):
        return [redact_data(item) for item in data]
    return data


# --- logs -----------------------------------------------------------------------------------------

_installed = False


def install_log_redaction() -> None:
    """Every log record, from any logger to any handler, is redacted when it is made: its message
    (with its arguments) and its traceback text. Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: logging reports it itself, later
                return record
            cleaned = redact(clean_text(message, newlines=True))
            if cleaned != message or record.args:
                record.msg, record.args = cleaned, None
            if record.exc_info and not record.exc_text:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def redacted_message(values: dict[str, Any]) -> dict[str, Any]:
    """`{"message": redact(values["message"])}` when `values` holds a message, else `{}` (the
    journal merges it into the values it stores)."""
    message = values.get("message")
    return {"message": redact(message)} if isinstance(message, str) else {}
