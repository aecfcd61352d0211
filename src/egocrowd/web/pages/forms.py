"""Form errors in plain words, all at once, each next to its field.

The API answers a bad body with one problem document (its callers are programs); a page answers a
person, so it turns every error of a pydantic ``ValidationError`` (and our own ``InvalidInput`` or
``Conflict`` that name a ``field``) into ``{form field name: message}``. Messages come from one
table of pydantic error types, with per-field overrides where a field needs its own words; no
message ever shows pydantic's wording ("Value error, …", "String should match pattern …").

    errors = field_errors(exc, words=CAMPAIGN_WORDS)   # {"title": "Must be at least 3 characters.", ...}
    summary(errors)                                     # "2 things need fixing before this can be saved."
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from egocrowd.errors import EgocrowdError

#: Key of an error that belongs to no single field (shown in the summary only).
GENERAL = ""

_NUMBER = "Must be a number, such as 2.5."
_WHOLE = "Must be a whole number, such as 12."
_DATETIME = "Give a date and time, such as 2027-01-31 18:00."

#: pydantic error type → plain template. ``{min}``/``{max}`` are the limit, with the field's unit;
#: ``{expected}`` the allowed choices; ``{input}`` what was typed; ``{error}`` our own validator's words.
MESSAGES: dict[str, str] = {
    "missing": "Please fill this in.",
    "string_too_short": "Must be at least {min}.",
    "string_too_long": "Must be at most {max}.",
    "too_short": "Give at least {min}.",
    "too_long": "Give at most {max}.",
    "greater_than_equal": "Must be at least {min}.",
    "greater_than": "Must be more than {min}.",
    "less_than_equal": "Must be at most {max}.",
    "less_than": "Must be less than {max}.",
    "int_parsing": _WHOLE,
    "int_from_float": _WHOLE,
    "int_type": _WHOLE,
    "float_parsing": _NUMBER,
    "float_type": _NUMBER,
    "finite_number": _NUMBER,
    "decimal_parsing": _NUMBER,
    "bool_parsing": "Choose yes or no.",
    "literal_error": "Choose one of: {expected}.",
    "enum": "Choose one of: {expected}.",
    "string_pattern_mismatch": "“{input}” is not in the expected form.",
    "datetime_parsing": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    "datetime_type": _DATETIME,
    "date_parsing": "Give a date, such as 2027-01-31.",
    "value_error": "{error}",
    "assertion_error": "{error}",
    "extra_forbidden": "This is not part of the form.",
}
#: any other type (a list where text was expected, …): a form never sends those, programs do
FALLBACK = "This value is not valid."


@dataclass(frozen=True)
class Words:
    """How one form speaks about its fields.

    ``names``: model field name → form field name (``pay_cents`` → ``pay``); nested fields are
    matched by their last name (``requirements.min_duration_s`` → ``min_duration_s``).
    ``units``: form field → unit word (``second`` → "at least 1 second", "… 20 seconds"), or a
    (singular, plural) pair where an "s" will not do.
    ``overrides``: form field → a message for every error, or ``{error type: message}``; templates
    take the same ``{placeholders}`` as MESSAGES.
    """

    names: Mapping[str, str] = field(default_factory=dict)
    units: Mapping[str, str | tuple[str, str]] = field(default_factory=dict)
    overrides: Mapping[str, str | Mapping[str, str]] = field(default_factory=dict)


def field_errors(exc: ValidationError | EgocrowdError, words: Words = Words()) -> dict[str, str]:
    """Every error of ``exc`` as ``{form field: plain message}``; the first error of a field wins
    (one message per field is what a person can act on). Errors of no field go under GENERAL."""
    if isinstance(exc, EgocrowdError):
        name = exc.extra.get("field")
        key = words.names.get(name, name) if isinstance(name, str) else GENERAL
        return {key: _override(words, key, exc.code) or exc.message}
    out: dict[str, str] = {}
    for e in exc.errors(include_url=False):
        key = _field_of(e["loc"], words)
        if key not in out:
            out[key] = message(e, key, words)
    return out


def message(error: Mapping[str, Any], key: str, words: Words = Words()) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) in plain words."""
    ctx = error.get("ctx") or {}
    unit = words.units.get(key, "")
    if error["type"] == "string_too_short" and (ctx.get("min_length") == 1 or not str(error.get("input", "")).strip()):
        return _override(words, key, "missing") or MESSAGES["missing"]
    values = {
        "min": _amount(_first(ctx, "ge", "gt", "min_length"), unit, error["type"]),
        "max": _amount(_first(ctx, "le", "lt", "max_length"), unit, error["type"]),
        "expected": str(ctx.get("expected", "")).replace("'", ""),
        "input": _shown(error.get("input")),
        "error": _sentence(str(ctx.get("error", ""))) or FALLBACK,
    }
    template = _override(words, key, error["type"]) or MESSAGES.get(error["type"], FALLBACK)
    return template.format(**values)


def summary(errors: Mapping[str, str]) -> str:
    """The line above a form sent back: how many things to fix (each is listed next to its field)."""
    n = len(errors)
    if n == 1:
        return "One thing needs fixing before this can be saved."
    return f"{n} things need fixing before this can be saved."


def _field_of(loc: tuple[int | str, ...], words: Words) -> str:
    """The form field an error location points at: the full dotted path if the form names it, else
    the last name in it (list positions skipped: ``allowed_countries.1`` → ``allowed_countries``)."""
    names = [p for p in loc if isinstance(p, str)]
    if not names:
        return GENERAL
    dotted = ".".join(names)
    if dotted in words.names:
        return words.names[dotted]
    return words.names.get(names[-1], names[-1])


def _override(words: Words, key: str, kind: str) -> str | None:
    o = words.overrides.get(key)
    if isinstance(o, str):
        return o
    if o is not None:
        return o.get(kind)
    return None


def _first(ctx: Mapping[str, Any], *keys: str) -> Any:
    return next((ctx[k] for k in keys if k in ctx), None)


def _amount(v: Any, unit: str | tuple[str, str], kind: str) -> str:
    """``20.0`` → "20 seconds", ``1`` → "1 second"; lengths count characters or items."""
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if kind in ("string_too_short", "string_too_long"):
        unit = "character"
    elif kind in ("too_short", "too_long"):
        unit = "item"
    if not unit:
        return f"{v}"
    one, many = unit if isinstance(unit, tuple) else (unit, unit + "s")
    return f"{v} {one if v == 1 else many}"


def _shown(v: Any) -> str:
    text = v if isinstance(v, str) else repr(v)
    return text if len(text) <= 40 else text[:39] + "…"


_PYDANTIC_PREFIX = re.compile(r"^(Value error|Assertion failed), ?", re.IGNORECASE)


def _sentence(text: str) -> str:
    """Our validators' words ("the deadline must be in the future") as a sentence."""
    text = _PYDANTIC_PREFIX.sub("", text).strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


__all__ = ["FALLBACK", "GENERAL", "MESSAGES", "Words", "field_errors", "message", "summary"]
