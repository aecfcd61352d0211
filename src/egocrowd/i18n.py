"""The languages egocrowd speaks, and the one way text reaches a person in them (issue #15).

Every user-facing string is an English msgid marked for gettext: ``_("Slot claimed")`` in Python,
``{% trans %}`` / ``_()`` in templates, ``tr("...")`` in page scripts. ``make i18n-extract`` collects
them with Babel into ``locales/messages.pot``; each shipped language has a complete catalog beside it
(``locales/<lang>/LC_MESSAGES/messages.po``), which ``make i18n-check`` and the tests hold complete.

The language of the moment lives in a context variable: the web door sets it per request (the
account's setting, else the ``lang`` cookie, else the browser's Accept-Language), mail and
notifications set it to the recipient's. Code that builds text for someone else (an email) wraps it
in :func:`using`.

``en-XA`` is a pseudo-language for developers and tests (enabled by ``EGOCROWD_PSEUDO_LOCALE``): it
shows every translated string with accented letters between brackets, so a string that skipped
gettext stands out on the page as plain English.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
DEFAULT = "en"
PSEUDO = "en-XA"


@dataclass(frozen=True)
class Language:
    code: str  # BCP 47, as in <html lang>: "pt", "sw", "ar"
    name: str  # in its own language, as the switcher shows it

    @property
    def rtl(self) -> bool:
        return self.code != PSEUDO and Locale.parse(self.code).character_order == "right-to-left"

    @property
    def direction(self) -> str:
        return "rtl" if self.rtl else "ltr"


#: The shipped languages, each with a complete catalog (English is the msgids themselves).
LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in (
        Language("en", "English"),
        Language("fr", "Français"),
        Language("pt", "Português"),
        Language("es", "Español"),
        Language("sw", "Kiswahili"),
        Language("hi", "हिन्दी"),
        Language("ar", "العربية"),
    )
}


def pseudo_enabled() -> bool:
    return os.environ.get("EGOCROWD_PSEUDO_LOCALE", "").lower() in ("1", "true", "yes")


def languages() -> dict[str, Language]:
    """The languages a person may pick here (the pseudo-language only where it is switched on)."""
    if pseudo_enabled():
        return {**LANGUAGES, PSEUDO: Language(PSEUDO, "[Ƥšéûđö]")}
    return LANGUAGES


_language: ContextVar[str] = ContextVar("egocrowd_language", default=DEFAULT)
_zone: ContextVar[str] = ContextVar("egocrowd_zone", default="UTC")


def supported(code: str | None) -> str | None:
    """``code`` ("pt-BR", "fr_FR", "AR") as one of ours ("pt", "fr", "ar"), or None."""
    if not code:
        return None
    code = code.strip().replace("_", "-")
    ours = languages()
    if code in ours:
        return code
    base = code.split("-")[0].lower()
    return base if base in ours else None


def negotiate(accept_language: str | None) -> str | None:
    """The best of our languages for an Accept-Language header (RFC 9110 q-values), or None."""
    wanted: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        m = re.search(r"q\s*=\s*([0-9.]+)", params)
        if m:
            try:
                q = float(m.group(1))
            except ValueError:
                continue
        if tag and tag != "*" and q > 0:
            wanted.append((-q, i, tag))
    for _q, _i, tag in sorted(wanted):
        found = supported(tag)
        if found:
            return found
    return None


def current() -> str:
    return _language.get()


def zone() -> str:
    return _zone.get()


def activate(language: str | None = None, zone_name: str | None = None) -> None:
    """Set the language (and time zone) of the rest of this context: a request, a job."""
    if language is not None:
        _language.set(supported(language) or DEFAULT)
    if zone_name is not None:
        _zone.set(zone_name if valid_zone(zone_name) else "UTC")


@contextmanager
def using(language: str | None, zone_name: str | None = None) -> Iterator[None]:
    """Text built inside speaks ``language`` (an email to someone else, a notice)."""
    token = _language.set(supported(language) or DEFAULT)
    ztoken = _zone.set(zone_name if zone_name and valid_zone(zone_name) else _zone.get())
    try:
        yield
    finally:
        _language.reset(token)
        _zone.reset(ztoken)


# --- catalogs ----------------------------------------------------------------------------------


@cache
def translations(language: str) -> NullTranslations:
    """The compiled catalog of ``language``. The .po files are the source (no compiled .mo is
    kept in the tree: Babel compiles them in memory once per process)."""
    if language == PSEUDO:
        return _Pseudo()
    path = LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == DEFAULT or not path.exists():
        return NullTranslations()
    with path.open("rb") as f:
        catalog = read_po(f, locale=language)
    buf = BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(buf, domain=DOMAIN)


#: (language, msgid) looked up but missing from a shipped catalog, for tests and ``i18n-check``;
#: bounded so a long-running server cannot grow it without end.
MISSES: set[tuple[str, str]] = set()


def _note_miss(language: str, translated: str, msgid: str) -> None:
    missing = translated == msgid and msgid.strip() and msgid not in _catalog_ids(language)
    if language not in (DEFAULT, PSEUDO) and missing and len(MISSES) < 10_000:
        MISSES.add((language, msgid))


@cache
def _catalog_ids(language: str) -> frozenset[str]:
    """The msgids ``language``'s compiled catalog translates (plural entries by their singular)."""
    compiled: dict = getattr(translations(language), "_catalog", {})
    return frozenset(key[0] if isinstance(key, tuple) else key for key, text in compiled.items() if text)


def gettext(message: str) -> str:
    language = _language.get()
    out = translations(language).gettext(message)
    _note_miss(language, out, message)
    return out


def ngettext(singular: str, plural: str, n: int) -> str:
    language = _language.get()
    out = translations(language).ngettext(singular, plural, n)
    _note_miss(language, out, singular if n == 1 else plural)
    return out


def pgettext(context: str, message: str) -> str:
    language = _language.get()
    out = str(translations(language).pgettext(context, message))
    _note_miss(language, out, message)
    return out


_ = gettext


def N_(message: str) -> str:
    """Mark a string for extraction where it is defined (a table, a default); it is translated
    with :func:`gettext` where it is shown."""
    return message


def tr(message: str, **values: Any) -> str:
    """``_(message)`` with ``{name}`` placeholders filled (translators may move them)."""
    return gettext(message).format(**values)


# --- the pseudo-language -----------------------------------------------------------------------

_ACCENTED = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "àƀçđéƒĝĥîĵķĺɱñöƥǫŕšţûṽŵẋýžÀƁÇĐÉƑĜĤÎĴĶĹṀÑÖƤǪŔŠŢÛṼŴẊÝŽ",
)
# placeholders, tags and entities pass through untouched: %(name)s, %s, {name}, <a href="...">, &amp;
_KEEP = re.compile(r"%\([^)]*\)[sdfr]|%[sdfr]|\{[^{}]*\}|<[^>]*>|&[#a-zA-Z0-9]+;")
PSEUDO_OPEN, PSEUDO_CLOSE = "⟦", "⟧"


def pseudo(text: str) -> str:
    out, last = [], 0
    for m in _KEEP.finditer(text):
        out.append(text[last : m.start()].translate(_ACCENTED))
        out.append(m.group(0))
        last = m.end()
    out.append(text[last:].translate(_ACCENTED))
    return PSEUDO_OPEN + "".join(out) + PSEUDO_CLOSE


class _Pseudo(NullTranslations):
    def gettext(self, message: str) -> str:
        return pseudo(message) if message else message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return pseudo(singular if n == 1 else plural)

    def pgettext(self, context: str, message: str) -> str:
        return pseudo(message)

    def npgettext(self, context: str, singular: str, plural: str, n: int) -> str:
        return pseudo(singular if n == 1 else plural)


# --- time, numbers, money, countries -----------------------------------------------------------


def formatted(text: str) -> str:
    """What the formatters below return. In the pseudo-language, times, numbers and money are
    marked like translated words: a date or an amount left plain on a pseudo page was formatted
    by hand, not for the reader."""
    return pseudo(text) if _language.get() == PSEUDO else text


def babel_locale(language: str | None = None) -> str:
    language = language or _language.get()
    return "en" if language == PSEUDO else language.replace("-", "_")


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@cache
def zones() -> list[str]:
    """Every IANA zone a person may pick, sorted ("Africa/Lagos", ..., "UTC")."""
    return sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/"))) + ["UTC"]


def tz(name: str | None = None) -> tzinfo:
    name = name or _zone.get()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def when(moment: datetime | None, *, fmt: str = "minutes") -> str:
    """A moment in the viewer's zone and language, the zone's offset last so nobody misreads whose
    clock it is: "30 nov. 2026, 17:05 UTC+01:00"."""
    from babel.dates import format_datetime, get_timezone_gmt

    if moment is None:
        return ""
    zone_info = tz()
    locale = babel_locale()
    pattern = _minutes_pattern(locale) if fmt == "minutes" else fmt  # "minutes": no seconds, what most pages want
    text = format_datetime(moment, format=pattern, tzinfo=zone_info, locale=locale)
    return formatted(f"{text} {get_timezone_gmt(moment.astimezone(zone_info), width='long', locale=locale)}")


@cache
def _minutes_pattern(locale: str) -> str:
    loc = Locale.parse(locale)
    date_pattern = loc.date_formats["medium"].pattern
    time_pattern = loc.time_formats["short"].pattern
    combined = str(loc.datetime_formats.get("medium", "{1} {0}"))
    return combined.replace("{1}", date_pattern).replace("{0}", time_pattern)


def day(moment: datetime | None) -> str:
    from babel.dates import format_date

    if moment is None:
        return ""
    local = moment.astimezone(tz()) if isinstance(moment, datetime) else moment
    return formatted(format_date(local, format="medium", locale=babel_locale()))


def number(value: int | float | Decimal, *, digits: int | None = None) -> str:
    from babel.numbers import format_decimal

    if digits is not None:
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return formatted(format_decimal(value, format=pattern, locale=babel_locale(), decimal_quantization=True))
    return formatted(format_decimal(value, locale=babel_locale()))


def percent(fraction: float | Decimal, digits: int = 0) -> str:
    from babel.numbers import format_percent

    pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
    return formatted(format_percent(fraction, format=pattern, locale=babel_locale()))


def money(amount: Decimal, currency: str, digits: int) -> str:
    """An exact amount (a Decimal in major units) as the viewer's language writes money, with the
    ISO code where the language puts its symbol: "USD 1,500.00", "1 500,00 USD", "US$" would be
    ambiguous for people paid in many dollars. ``digits``: the currency's ISO 4217 minor digits
    (pay.money), which Babel's own table can differ from; the amount shows exactly those."""
    from babel.numbers import format_currency

    locale = babel_locale()
    text = format_currency(
        amount, currency, format=_money_pattern(locale, digits), locale=locale, currency_digits=False
    )
    return formatted(text)


@cache
def _money_pattern(locale: str, digits: int) -> str:
    """The language's money pattern with ``digits`` decimals and the ISO code for the symbol (made
    once per language and digit count: pages show many amounts)."""
    pattern = Locale.parse(locale).currency_formats["standard"].pattern.split(";")[0]
    pattern = re.sub(r"0(\.0+)?", "0" + ("." + "0" * digits if digits else ""), pattern, count=1)
    pattern = re.sub(r"¤+", "¤¤", pattern)
    # a code is a word: keep it apart from the digits (a symbol like "$" may touch them; "USD" may not)
    return re.sub(r"¤¤(?=[#0])", "¤¤\xa0", re.sub(r"(?<=[#0])¤¤", "\xa0¤¤", pattern))


def country_name(code: str | None, language: str | None = None) -> str:
    """A country's name in the viewer's language (CLDR territories), or the code if unknown."""
    if not code:
        return ""
    try:
        return formatted(Locale.parse(babel_locale(language)).territories.get(code.upper(), code.upper()))
    except (UnknownLocaleError, ValueError):
        return code.upper()


def countries(language: str | None = None) -> list[tuple[str, str]]:
    """Every country of ISO 3166-1 (pycountry's list, offline) as (alpha-2 code, name in the
    viewer's language from CLDR), in that language's alphabetical order."""
    found = _countries(babel_locale(language))
    return [(code, pseudo(name)) for code, name in found] if (language or _language.get()) == PSEUDO else found


def is_country(code: str) -> bool:
    """Whether ``code`` is an ISO 3166-1 alpha-2 code of a country ("KE"; upper case)."""
    return code in _country_codes()


@cache
def _country_codes() -> frozenset[str]:
    return frozenset(code for code, _name in _countries(DEFAULT))


@cache
def _countries(locale: str) -> list[tuple[str, str]]:
    import unicodedata

    import pycountry

    names = Locale.parse(locale).territories
    out = [(c.alpha_2, names.get(c.alpha_2) or getattr(c, "common_name", None) or c.name) for c in pycountry.countries]
    return sorted(out, key=lambda item: unicodedata.normalize("NFKD", item[1]).casefold())


# --- words stored to be shown later in the reader's language -----------------------------------


@dataclass(frozen=True)
class Text:
    """Words for a person kept translatable (a QC verdict, a notice): an English msgid (marked
    with ``N_`` where it is written) and the values of its ``{name}`` placeholders. Stored in the report as
    ``message_id``/``params`` so a page shows it in the reader's language; the English text is
    stored beside it for old readers and the API.

    Placeholder values: a float is a measured number (shown in the reader's number format), a
    value whose name ends in ``share`` a fraction (shown as a percent), an int as written (sizes),
    ``clip`` an identifier as written, any other string an ``N_``-marked label (translated), a
    ``Text`` a nested phrase."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"message_id": self.id, "params": _stored(self.params)}

    def english(self) -> str:
        with using(DEFAULT):
            return self.shown()

    def shown(self) -> str:
        """The words in the language of the moment."""
        return render_text(self.id, _stored(self.params))

    __str__ = shown


class Verbatim(str):
    """A placeholder value shown as written in every language (a version, a name, an id), where a
    plain string would be taken for an ``N_`` label and translated."""


def say(message_id: str, **params: Any) -> Text:
    return Text(message_id, params)


def _stored(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v.to_dict() if isinstance(v, Text) else v for k, v in params.items()}


def render_text(message_id: str, params: dict[str, Any] | None = None) -> str:
    """A stored ``message_id`` and ``params`` as words in the language of the moment."""
    values = {}
    for key, v in (params or {}).items():
        if isinstance(v, dict) and "message_id" in v:
            values[key] = render_text(v["message_id"], v.get("params"))
        elif key == "clip" or isinstance(v, Verbatim):
            values[key] = str(v)
        elif isinstance(v, str):
            values[key] = gettext(v)
        elif isinstance(v, bool) or v is None:
            values[key] = str(v)
        elif key.endswith("share") and isinstance(v, (int, float)):
            values[key] = percent(v)
        elif isinstance(v, float):
            values[key] = number(v)
        else:
            values[key] = str(v)
    try:
        return tr(message_id, **values)
    except (KeyError, IndexError, ValueError):  # a translation that names another placeholder
        return message_id.format(**values)


def check_words(result: dict[str, Any], part: str = "message") -> str:
    """A QC check's (or feedback item's) ``message``, ``advice`` or ``title`` from a stored
    report, in the reader's language where the report keeps the msgid (``message_id`` +
    ``params``, ``advice_id`` + ``advice_params``); reports written before issue #15 keep only
    the English words, shown as stored."""
    if part == "title":
        return gettext(result["title"]) if result.get("title") else ""
    text = result.get(f"{part}_id")
    if text:
        return render_text(text, result.get("params" if part == "message" else f"{part}_params"))
    return str(result.get(part) or "")


# --- catalog checks (make i18n-check, tests/i18n) ---------------------------------------------

_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdfr]|\{(\w+)\}")


def _placeholders(text: str) -> set[str]:
    return {a or b for a, b in _PLACEHOLDER.findall(text)}


def check_catalogs(template: Path | None = None) -> list[str]:
    """What keeps the shipped catalogs from being complete, one line per problem: a language
    without a catalog, a msgid of the template untranslated or fuzzy, a translation whose
    placeholders differ from its msgid's (it would fail or lie when filled in)."""
    with (template or LOCALES_DIR / f"{DOMAIN}.pot").open("rb") as f:
        wanted = [m for m in read_po(f) if m.id]
    problems: list[str] = []
    for code in LANGUAGES:
        if code == DEFAULT:
            continue
        path = LOCALES_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"
        if not path.exists():
            problems.append(f"{code}: no catalog at {path}")
            continue
        with path.open("rb") as f:
            catalog = read_po(f, locale=code)
        for msg in wanted:
            found = catalog.get(msg.id, msg.context)
            ids = msg.id if isinstance(msg.id, (list, tuple)) else (msg.id,)
            raw = found.string if found is not None else ""
            strings = tuple(str(x or "") for x in raw) if isinstance(raw, (list, tuple)) else (str(raw or ""),)
            if found is None or found.fuzzy or not all(strings):
                problems.append(f"{code}: untranslated: {ids[0]!r}")
                continue
            named = set().union(*(_placeholders(i) for i in ids))
            plural = len(ids) > 1  # a plural form may leave the count out ("one clip")
            if any(not _placeholders(s) <= named or (not plural and _placeholders(s) != named) for s in strings):
                problems.append(f"{code}: placeholders differ: {ids[0]!r} → {strings[0]!r}")
    return problems
