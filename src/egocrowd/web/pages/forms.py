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

from egocrowd import i18n
from egocrowd.errors import EgocrowdError
from egocrowd.i18n import N_, gettext, ngettext

#: Key of an error that belongs to no single field (shown in the summary only).
GENERAL = ""

_NUMBER = N_("Must be a number, such as 2.5.")
_WHOLE = N_("Must be a whole number, such as 12.")
_DATETIME = N_("Give a date and time, such as 2027-01-31 18:00.")

#: pydantic error type → plain template (marked N_, translated where shown). ``{min}``/``{max}`` are
#: the limit, with the field's unit; ``{expected}`` the allowed choices; ``{input}`` what was typed;
#: ``{error}`` our own validator's words.
MESSAGES: dict[str, str] = {
    "missing": N_("Please fill this in."),
    "string_too_short": N_("Must be at least {min}."),
    "string_too_long": N_("Must be at most {max}."),
    "too_short": N_("Give at least {min}."),
    "too_long": N_("Give at most {max}."),
    "greater_than_equal": N_("Must be at least {min}."),
    "greater_than": N_("Must be more than {min}."),
    "less_than_equal": N_("Must be at most {max}."),
    "less_than": N_("Must be less than {max}."),
    "int_parsing": _WHOLE,
    "int_from_float": _WHOLE,
    "int_type": _WHOLE,
    "float_parsing": _NUMBER,
    "float_type": _NUMBER,
    "finite_number": _NUMBER,
    "decimal_parsing": _NUMBER,
    "bool_parsing": N_("Choose yes or no."),
    "literal_error": N_("Choose one of: {expected}."),
    "enum": N_("Choose one of: {expected}."),
    "string_pattern_mismatch": N_("“{input}” is not in the expected form."),
    "datetime_parsing": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    "datetime_type": _DATETIME,
    "date_parsing": N_("Give a date, such as 2027-01-31."),
    "value_error": "{error}",
    "assertion_error": "{error}",
    "extra_forbidden": N_("This is not part of the form."),
}
#: any other type (a list where text was expected, …): a form never sends those, programs do
FALLBACK = N_("This value is not valid.")


@dataclass(frozen=True)
class Words:
    """How one form speaks about its fields.

    ``names``: model field name → form field name (``pay_cents`` → ``pay``); nested fields are
    matched by their last name (``requirements.min_duration_s`` → ``min_duration_s``).
    ``units``: form field → unit word (``second`` → "at least 1 second", "… 20 seconds"), or a
    (singular, plural) pair where an "s" will not do.
    ``overrides``: form field → a message for every error, or ``{error type: message}``; templates
    take the same ``{placeholders}`` as MESSAGES. Mark override texts with ``N_``: they are
    translated where shown. Unit words are translated through :data:`UNITS` (a unit it lacks is
    shown as given).
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
        override = _override(words, key, exc.code)
        return {key: gettext(override) if override else exc.message}
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
        return gettext(_override(words, key, "missing") or MESSAGES["missing"])
    values = {
        "min": _amount(_first(ctx, "ge", "gt", "min_length"), unit, error["type"]),
        "max": _amount(_first(ctx, "le", "lt", "max_length"), unit, error["type"]),
        "expected": str(ctx.get("expected", "")).replace("'", ""),
        "input": _shown(error.get("input")),
        "error": _sentence(str(ctx.get("error", ""))) or gettext(FALLBACK),
    }
    template = _override(words, key, error["type"]) or MESSAGES.get(error["type"], FALLBACK)
    return gettext(template).format(**values) if template != "{error}" else values["error"]


def summary(errors: Mapping[str, str]) -> str:
    """The line above a form sent back: how many things to fix (each is listed next to its field)."""
    n = len(errors)
    return ngettext(
        "One thing needs fixing before this can be saved.", "{count} things need fixing before this can be saved.", n
    ).format(count=i18n.number(n))


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


#: unit word → its (singular, plural) with the amount, for :func:`ngettext` ("{count} seconds").
UNITS: dict[str, tuple[str, str]] = {
    "character": (N_("{count} character"), N_("{count} characters")),
    "item": (N_("{count} item"), N_("{count} items")),
    "second": (N_("{count} second"), N_("{count} seconds")),
    "minute": (N_("{count} minute"), N_("{count} minutes")),
    "pixel": (N_("{count} pixel"), N_("{count} pixels")),
    "clip": (N_("{count} clip"), N_("{count} clips")),
    "frame per second": (N_("{count} frame per second"), N_("{count} frames per second")),
    "MB": (N_("{count} MB"), N_("{count} MB")),
}


def _amount(v: Any, unit: str | tuple[str, str], kind: str) -> str:
    """``20.0`` → "20 seconds", ``1`` → "1 second" in the reader's language; lengths count
    characters or items."""
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if kind in ("string_too_short", "string_too_long"):
        unit = "character"
    elif kind in ("too_short", "too_long"):
        unit = "item"
    shown = i18n.number(v) if isinstance(v, (int, float)) else str(v)
    if not unit:
        return shown
    one, many = unit if isinstance(unit, tuple) else (unit, unit + "s")
    if one in UNITS:
        return ngettext(*UNITS[one], v if isinstance(v, int) else 2).format(count=shown)
    return f"{shown} {one if v == 1 else many}"


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


__all__ = ["FALLBACK", "GENERAL", "MESSAGES", "UNITS", "Words", "field_errors", "message", "summary"]
