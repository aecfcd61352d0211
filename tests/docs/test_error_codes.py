"""Every error code the code can raise is in docs/api.md's table of codes (clients branch on them)."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "egocrowd"


@functools.cache
def raised_codes() -> dict[str, str]:
    """``{code: where}`` for every ``default_code = "..."`` of an error class and every literal
    ``code="..."`` argument in src/."""
    found: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        where = str(path.relative_to(REPO))
        for node in ast.walk(ast.parse(path.read_text(), filename=where)):
            values = []
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "default_code" for t in node.targets
            ):
                values = [node.value]
            elif isinstance(node, ast.Call):
                values = [k.value for k in node.keywords if k.arg == "code"]
            for v in values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str):
                    found.setdefault(v.value, f"{where}:{v.lineno}")
    return found


def documented_codes() -> set[str]:
    """The backticked codes in the Code column of docs/api.md's table (``video.*`` covers a family)."""
    text = (REPO / "docs" / "api.md").read_text()
    table = text[text.index("### Codes") :]
    codes: set[str] = set()
    for line in table.splitlines():
        cells = line.split("|")
        if len(cells) > 3 and cells[1].strip().isdigit():
            codes.update(re.findall(r"`([a-z0-9_.*]+)`", cells[2]))
    return codes


def _is_documented(code: str, documented: set[str]) -> bool:
    return code in documented or any(d.endswith(".*") and code.startswith(d[:-1]) for d in documented)


def test_the_scan_finds_codes_in_both_forms():
    codes = raised_codes()
    assert "too_large" in codes  # only ever a default_code (TooLarge)
    assert "assignment.no_slots" in codes  # a code="..." argument


def test_every_raised_code_is_documented():
    documented = documented_codes()
    missing = {code: where for code, where in raised_codes().items() if not _is_documented(code, documented)}
    assert not missing, f"add these codes to docs/api.md's table: {missing}"


def _status_codes() -> set[str]:
    """The codes web/problems.py derives from an HTTP status (not spelled ``code=`` anywhere)."""
    from egocrowd.web.problems import _HTTP_CODES

    return set(_HTTP_CODES.values())


def test_every_code_has_a_title_for_people():
    """RFC 9457 ``title``: one short summary per problem type, shown to people in their language.
    Every code raised anywhere, derived from a status or documented (clients see them all) has one."""
    from egocrowd.problem_titles import TITLES

    documented = {c for c in documented_codes() if not c.endswith(".*")}
    wanted = set(raised_codes()) | _status_codes() | documented | {"validation.failed", "internal"}
    missing = sorted(wanted - set(TITLES))
    assert not missing, f"add titles to egocrowd/problem_titles.py: {missing}"
    # every family documented with a wildcard (video.*) has titles for its members
    for family in (c[:-1] for c in documented_codes() if c.endswith(".*")):
        assert any(code.startswith(family) for code in TITLES), family


def test_titles_are_marked_for_translation_and_read_as_plain_sentences():
    """Each title is an ``N_("...")`` literal (so ``make i18n-extract`` finds it), a short sentence
    with no code, no placeholder and no trailing full stop."""
    path = SRC / "problem_titles.py"
    tree = ast.parse(path.read_text())
    tables = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id in ("TITLES", "STATUS_TITLES")
    ]
    assert len(tables) == 2
    for table in tables:
        assert isinstance(table, ast.Dict)
        for value in table.values:
            assert isinstance(value, ast.Call) and getattr(value.func, "id", None) == "N_", ast.dump(value)
            text = value.args[0].value
            assert text[0].isupper() and not text.endswith(".") and len(text) <= 80, text
            assert "{" not in text and "_" not in text and "%" not in text, text
