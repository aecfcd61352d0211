"""Protocol files: the shipped library loads, and bad files are refused with a precise error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from egocrowd.bench.protocols import (
    PROTOCOL_DIR,
    PROTOCOL_FORMAT_VERSION,
    list_protocols,
    load_protocol,
    parse_protocol,
)
from egocrowd.errors import InvalidInput


def base() -> dict[str, Any]:
    return {"name": "t", "version": "1", "steps": 100, "people": [{"id": "a", "role": "parent", "priority": 0}]}


def test_shipped_library() -> None:
    names = list_protocols()
    assert {"weekday-kitchen", "family-evening", "one-week"} <= set(names)
    for name in names:
        p = load_protocol(name)
        raw = yaml.safe_load((PROTOCOL_DIR / f"{name}.yaml").read_text())
        assert raw["format_version"] == PROTOCOL_FORMAT_VERSION and p.name == name
        assert p.steps >= 2000  # long sessions, no resets
        assert p.digest() == load_protocol(PROTOCOL_DIR / f"{name}.yaml").digest()
    week = load_protocol("one-week")
    assert week.seconds >= 7 * 24 * 3600 and week.steps >= 10_000
    evening = load_protocol("family-evening")
    assert len(evening.people) == 4 and set(evening.conflict_kinds) == {"priority", "equal", "safety"}


def test_overrides_revalidate_and_change_the_digest() -> None:
    p = load_protocol("weekday-kitchen")
    short = p.with_overrides(steps=500, chores=4)
    assert (short.steps, short.chores) == (500, 4) and short.digest() != p.digest()
    assert p.with_overrides().digest() == p.digest()  # to_dict round-trips
    with pytest.raises(InvalidInput):
        p.with_overrides(steps=0)
    with pytest.raises(InvalidInput):
        p.with_overrides(nonsense=1)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"rules": ["ask_when_equal", "priority_by_role"]}, "rules"),
        ({"rules": ["priority_by_role"]}, "rules"),
        ({"rules": ["be_nice", "ask_when_equal"]}, "be_nice"),
        ({"chores": {"kinds": ["juggle"]}}, "juggle"),
        ({"drift": [{"kind": "earthquake", "at": 3}]}, "earthquake"),
        ({"drift": [{"kind": "object_moved"}]}, "'at'"),
        ({"drift": [{"kind": "person_arrives", "at": 3, "person": "nobody"}]}, "person"),
        ({"conflicts": {"rate": 1.5}}, "rate"),
        ({"conflicts": {"kinds": ["fistfight"]}}, "fistfight"),
        ({"people": []}, "people"),
        ({"people": [{"id": "a", "role": "parent", "priority": 0, "style": "shouting"}]}, "style"),
        (
            {"people": [{"id": "a", "role": "parent", "priority": 0}, {"id": "a", "role": "child", "priority": 1}]},
            "unique",
        ),
        ({"clock": {"start": "yesterday"}}, "clock.start"),
        ({"script": [{"at": 3, "person": "zed", "chore": "put"}]}, "person"),
        ({"script": [{"at": 3, "conflict": {"kind": "brawl"}}]}, "conflict.kind"),
        ({"steps": "long"}, "steps"),
    ],
)
def test_invalid_protocols_are_refused(change: dict[str, Any], fragment: str) -> None:
    d = base()
    d.update(change)
    with pytest.raises(InvalidInput) as exc:
        parse_protocol(d)
    assert exc.value.code == "bench.protocol_invalid"
    assert fragment in exc.value.message


def test_newer_format_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_protocol({**base(), "format_version": PROTOCOL_FORMAT_VERSION + 1})
    assert exc.value.code == "bench.unsupported_version"
    with pytest.raises(InvalidInput) as exc:
        load_protocol("no-such-protocol")
    assert exc.value.code == "bench.protocol_not_found"
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump({**base(), "name": "mine"}))
    assert load_protocol(f).name == "mine" and load_protocol(str(f)).source == str(f)
    f.write_text("name: [unclosed")
    with pytest.raises(InvalidInput) as exc:
        load_protocol(f)
    assert exc.value.code == "bench.protocol_invalid"
