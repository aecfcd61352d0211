"""Field rules shared by the API, the pages and the CLI."""

from __future__ import annotations

import re

from egocrowd.errors import InvalidInput

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def clean_email(email: str) -> str:
    email = (email or "").strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidInput("Enter a valid email address.", code="user.bad_email", field="email")
    return email


def clean_password(password: str) -> str:
    if not 10 <= len(password or "") <= 200:
        raise InvalidInput("Passwords need 10 to 200 characters.", code="user.weak_password", field="password")
    return password


_COUNTRY = re.compile(r"^[A-Z]{2}$")


def clean_country(country: str | None) -> str | None:
    """ISO 3166 alpha-2 ("ke" → "KE"); empty means not given."""
    country = (country or "").strip().upper()
    if not country:
        return None
    if not _COUNTRY.match(country):
        raise InvalidInput("Enter your country as two letters, e.g. KE.", code="user.bad_country", field="country")
    return country


def clean_display_name(name: str | None) -> str:
    name = (name or "").strip()
    if len(name) > 100:
        raise InvalidInput("Names shown to others have at most 100 characters.", code="user.bad_display_name",
                           field="display_name")
    return name
