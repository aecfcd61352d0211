"""Hand a language's catalog to a translator as JSON, and take the translations back.

    python scripts/catalog_json.py dump fr todo.json [--all]   # untranslated entries (or all)
    python scripts/catalog_json.py merge fr todo.json           # write them into the .po
    python scripts/catalog_json.py check fr todo.json           # what is still missing or broken

A translator may also leave todo.json as it is and write only the answers, keyed by the entry's
index: answers.json = {"0": "...", "1": ["one form", "other form"], ...}; then
``merge fr todo.json answers.json`` (and ``check fr todo.json answers.json``).

JSON is easier than .po to edit in bulk and to review in a diff of one language. Each entry:
{"id": msgid, "plural": msgid_plural or null, "context": msgctxt or null, "where": [files],
"forms": ["one", "other", ...] (plural entries: the language's CLDR plural categories, one
translation per form), "translation": "..." or ["...", ...]}. Placeholders ({name}, %(name)s)
and markup must be kept as they are; `egocrowd i18n check` verifies it after the merge.
"""

from __future__ import annotations

import gettext
import json
import re
import sys
from pathlib import Path

from babel import Locale
from babel.messages.pofile import read_po, write_po

LOCALES = Path(__file__).resolve().parents[1] / "src" / "egocrowd" / "locales"


def _path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / "messages.po"


def _read(lang: str):
    with _path(lang).open("rb") as f:
        return read_po(f, locale=lang)


def _done(msg) -> bool:
    strings = msg.string if isinstance(msg.string, (list, tuple)) else (msg.string,)
    return bool(strings) and all(strings) and not msg.fuzzy


def _forms(lang: str, catalog) -> list[str]:
    """The catalog's plural slots in gettext's order, each named by its CLDR category and an example
    count ("few (e.g. 3)"): the order of the Plural-Forms expression, which a translator cannot guess."""
    choose = gettext.c2py(catalog.plural_expr)
    category = Locale.parse(lang).plural_form
    names = []
    for index in range(catalog.num_plurals):
        n = next((n for n in [*range(1001), 10**6, 10**9] if choose(n) == index), None)
        names.append(f"{category(n)} (e.g. {n})" if n is not None else f"form {index}")
    return names


def dump(lang: str, out: Path, everything: bool = False) -> int:
    catalog = _read(lang)
    forms = _forms(lang, catalog)
    entries = []
    for msg in catalog:
        if not msg.id or (_done(msg) and not everything):
            continue
        plural = isinstance(msg.id, (list, tuple))
        entries.append(
            {
                "id": msg.id[0] if plural else msg.id,
                "plural": msg.id[1] if plural else None,
                "context": msg.context,
                "where": sorted({loc for loc, _line in msg.locations}),
                **({"forms": forms} if plural else {}),
                "translation": list(msg.string) if plural else msg.string,
            }
        )
    out.write_text(json.dumps(entries, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return len(entries)


def _entries(source: Path, answers: Path | None) -> list[dict]:
    entries = json.loads(source.read_text(encoding="utf-8"))
    if answers is not None:
        for key, value in json.loads(answers.read_text(encoding="utf-8")).items():
            entries[int(key)]["translation"] = value
    return entries


_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdfr]|\{(\w+)\}|</?[a-zA-Z][^>]*>")


def _marks(text: str) -> set[str]:
    return {"".join(m) if isinstance(m, tuple) else m for m in _PLACEHOLDER.findall(text)}


def check(lang: str, source: Path, answers: Path | None = None) -> list[str]:
    """Entries left untranslated, plural entries with the wrong number of forms, translations
    whose placeholders differ from the source's."""
    problems = []
    for i, entry in enumerate(_entries(source, answers)):
        text = entry.get("translation")
        if entry.get("plural"):
            if not isinstance(text, list) or len(text) != len(entry["forms"]) or not all(text):
                problems.append(
                    f"{i}: needs {len(entry['forms'])} forms ({', '.join(entry['forms'])}): {entry['id']!r}"
                )
                continue
            allowed = _marks(entry["id"]) | _marks(entry["plural"])
            if any(not _marks(t) <= allowed for t in text):
                problems.append(f"{i}: placeholders differ: {entry['id']!r} → {text!r}")
        elif not isinstance(text, str) or not text:
            problems.append(f"{i}: untranslated: {entry['id']!r}")
        elif {m for m in _marks(text) if not m.startswith("<")} != {
            m for m in _marks(entry["id"]) if not m.startswith("<")
        }:
            problems.append(f"{i}: placeholders differ: {entry['id']!r} → {text!r}")
    return problems


def merge(lang: str, source: Path, answers: Path | None = None) -> int:
    catalog = _read(lang)
    changed = 0
    for entry in _entries(source, answers):
        key = (entry["id"], entry["plural"]) if entry.get("plural") else entry["id"]
        msg = catalog.get(key if isinstance(key, str) else key[0], entry.get("context"))
        if msg is None or not entry.get("translation"):
            continue
        msg.string = tuple(entry["translation"]) if entry.get("plural") else entry["translation"]
        if msg.fuzzy:
            msg.flags.discard("fuzzy")
        changed += 1
    with _path(lang).open("wb") as f:
        write_po(f, catalog, width=0, sort_by_file=True, include_previous=False)
    return changed


if __name__ == "__main__":
    command, lang, file = sys.argv[1:4]
    extra = next((Path(a) for a in sys.argv[4:] if not a.startswith("--")), None)
    if command == "dump":
        print(f"{dump(lang, Path(file), '--all' in sys.argv)} entries written to {file}")
    elif command == "merge":
        print(f"{merge(lang, Path(file), extra)} translations merged into {_path(lang)}")
    elif command == "check":
        found = check(lang, Path(file), extra)
        print("\n".join(found[:100]) or "complete")
        raise SystemExit(1 if found else 0)
    else:
        raise SystemExit(__doc__)
