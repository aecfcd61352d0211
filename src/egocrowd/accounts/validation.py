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
