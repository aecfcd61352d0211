"""Field rules shared by the API, the pages and the CLI.

Text is taken the same way by every door: emails and names lose surrounding whitespace, passwords
are used exactly as typed (a space is a valid password character, at either end too).
"""

from __future__ import annotations

import unicodedata
from functools import cache

from email_validator import EmailNotValidError, validate_email

from egocrowd import i18n
from egocrowd.errors import InvalidInput

# Control (Cc), format (Cf: zero-width spaces and joiners, bidi overrides, BOM), private use,
# surrogate and line/paragraph separators: invisible or reordering, never needed in an address or
# a name shown to others (they let "alice" and "al\u200bice" look the same, or reverse text).
_INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Zl", "Zp"}


def _has_invisible(text: str) -> bool:
    return any(unicodedata.category(ch) in _INVISIBLE for ch in text)


def clean_email(email: str) -> str:
    """A syntactically valid address (no DNS look-up), normalised and lower-cased."""
    email = (email or "").strip()
    if _has_invisible(email):
        raise InvalidInput(
            "Email addresses cannot contain invisible or control characters.", code="user.bad_email", field="email"
        )
    try:
        email = validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise InvalidInput("Enter a valid email address.", code="user.bad_email", field="email") from None
    if len(email) > 254:
        raise InvalidInput("Enter a valid email address.", code="user.bad_email", field="email")
    return email


def email_key(email: str) -> str:
    """How an email typed at log-in is looked up: as :func:`clean_email` stores it when valid."""
    try:
        return clean_email(email)
    except InvalidInput:
        return (email or "").strip().lower()


@cache
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common passwords from leaked-password corpora (lower-cased).
    # On the first password check, not at import (~45 ms and 30,000 strings in every process).
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def clean_password(password: str, *, email: str | None = None) -> str:
    """10 to 200 characters, not a common password, not built on the email's local part."""
    password = password or ""
    if not 10 <= len(password) <= 200:
        raise InvalidInput("Passwords need 10 to 200 characters.", code="user.weak_password", field="password")
    lowered = password.lower()
    if lowered in _common_passwords() or lowered.strip() in _common_passwords():
        raise InvalidInput(
            "This password is one of the most common ones; choose another.",
            code="user.common_password",
            field="password",
        )
    # The email's name is the first guess of anyone who knows the address: it does not count
    # towards the length ("alice2024!!" for alice@… is refused, a long passphrase with it is not).
    local = (email or "").partition("@")[0].lower()
    if len(local) >= 3 and local in lowered and len(lowered.replace(local, "")) < 10:
        raise InvalidInput(
            "Passwords cannot be built on your email address's name; choose another.",
            code="user.password_like_email",
            field="password",
        )
    return password


def clean_country(country: str | None) -> str | None:
    """An ISO 3166 alpha-2 code ("ke" → "KE") of a real country; empty means not given."""
    country = (country or "").strip().upper()
    if not country:
        return None
    if not i18n.is_country(country):
        raise InvalidInput("Choose your country from the list.", code="user.bad_country", field="country")
    return country


def clean_language(language: str | None) -> str | None:
    """One of the shipped languages ("pt-BR" → "pt"); empty means the browser's."""
    if not (language or "").strip():
        return None
    found = i18n.supported(language)
    if found is None:
        raise InvalidInput("Choose a language from the list.", code="user.bad_language", field="language")
    return found


def clean_time_zone(zone: str | None) -> str | None:
    """An IANA time zone ("Africa/Lagos"); empty means the browser's."""
    zone = (zone or "").strip()
    if not zone:
        return None
    if zone not in i18n.zones():
        raise InvalidInput("Choose a time zone from the list.", code="user.bad_time_zone", field="time_zone")
    return zone


def clean_display_name(name: str | None) -> str:
    """NFKC-normalised (full-width and compatibility forms fold to plain ones), visible text."""
    name = unicodedata.normalize("NFKC", name or "").strip()
    if _has_invisible(name):
        raise InvalidInput(
            "Names cannot contain invisible or control characters.", code="user.bad_display_name", field="display_name"
        )
    if len(name) > 100:
        raise InvalidInput(
            "Names shown to others have at most 100 characters.", code="user.bad_display_name", field="display_name"
        )
    return name
