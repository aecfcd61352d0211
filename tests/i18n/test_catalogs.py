"""The catalogs (issue #15): the template holds every marked string, each shipped language
translates all of them with the same placeholders, and the language machinery picks and formats
as people expect."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from egocrowd import i18n

ROOT = Path(__file__).parents[2]


def _ids(path: Path) -> set[str]:
    with path.open("rb") as f:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f) if m.id}


def test_the_template_holds_every_marked_string(tmp_path):
    fresh = tmp_path / "messages.pot"
    keywords = ["-k", "_", "-k", "N_", "-k", "tr", "-k", "gettext", "-k", "ngettext:1,2", "-k", "pgettext:1c,2"]
    subprocess.run(
        [
            str(Path(sys.executable).parent / "pybabel"),
            "-q",
            "extract",
            "-F",
            "babel.cfg",
            *keywords,
            "-o",
            str(fresh),
            ".",
        ],
        cwd=ROOT,
        check=True,
    )
    missing = _ids(fresh) - _ids(i18n.LOCALES_DIR / "messages.pot")
    assert not missing, f"run `make i18n-update`: {len(missing)} new strings, e.g. {sorted(missing)[:5]}"


def test_every_shipped_language_is_complete():
    problems = i18n.check_catalogs()
    assert not problems, f"{len(problems)} problems, e.g.\n" + "\n".join(problems[:30])


@pytest.mark.parametrize("code", [c for c in i18n.LANGUAGES if c != "en"])
def test_each_catalog_compiles_and_translates(code):
    translations = i18n.translations(code)
    with i18n.using(code):
        assert i18n.gettext("Log in") != "Log in" and translations.gettext("Log in") == i18n.gettext("Log in")


def test_arabic_is_right_to_left_and_the_others_are_not():
    assert {c for c, lang in i18n.LANGUAGES.items() if lang.rtl} == {"ar"}


@pytest.mark.parametrize(
    "header, expected",
    [
        ("fr-FR,fr;q=0.9,en;q=0.8", "fr"),
        ("de-DE,pt-BR;q=0.8,en;q=0.5", "pt"),
        ("en;q=0.1, sw-KE", "sw"),
        ("de, it;q=0.5", None),
        ("ar-EG;q=0.0, hi", "hi"),  # q=0: not acceptable
        ("garbage;;q=x, es", "es"),
        ("", None),
    ],
)
def test_the_browser_language_is_negotiated(header, expected):
    assert i18n.negotiate(header) == expected


def test_times_are_shown_in_the_readers_zone_and_language():
    moment = datetime(2026, 11, 30, 16, 5, tzinfo=UTC)
    with i18n.using("en", "Africa/Nairobi"):
        assert i18n.when(moment) == "Nov 30, 2026, 7:05\u202fPM GMT+03:00"
    with i18n.using("fr", "America/Sao_Paulo"):
        assert i18n.when(moment) == "30 nov. 2026, 13:05 UTC-03:00"
    with i18n.using("en", "Not/AZone"):
        assert i18n.when(moment).endswith("GMT+00:00")


def test_money_is_exact_and_written_the_readers_way():
    with i18n.using("es"):
        assert i18n.money(Decimal("1234567.89"), "USD", 2) == "1.234.567,89\xa0USD"
    with i18n.using("hi"):
        assert i18n.money(Decimal("1234567.89"), "INR", 2) == "INR\xa012,34,567.89"  # lakh grouping
    with i18n.using("en"):  # never through a float: the last cent survives at any size
        assert i18n.money(Decimal("12345678901234567.01"), "USD", 2).endswith(".01")


def test_countries_come_from_a_real_list_with_local_names():
    french = dict(i18n.countries("fr"))
    assert len(french) >= 249 and french["KE"] == "Kenya" and french["DE"] == "Allemagne"
    assert dict(i18n.countries("sw"))["US"] == "Marekani"
    assert i18n.country_name("EG", "ar") == "مصر"


def test_the_pseudo_language_keeps_placeholders_and_markup():
    assert i18n.pseudo('Hello %(name)s, <a href="/x">see {n}</a> &amp; more') == (
        '⟦Ĥéĺĺö %(name)s, <a href="/x">šéé {n}</a> &amp; ɱöŕé⟧'
    )
