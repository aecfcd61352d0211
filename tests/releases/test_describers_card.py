"""The data card: Markdown and one self-contained HTML page with the release's composition, licence,
consent, changes, how to verify and how to load each format; looked at in Chromium on a phone and a
desktop (no sideways scrolling, no accessibility violation, nothing fetched)."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from egocrowd.releases.describers.card import bar_chart, card_context
from egocrowd.releases.exporting import FileEntry
from tests.releases.describe_world import build_world, describe
from tests.support.browser import ARTIFACTS, DESKTOP, PHONE, look


@pytest.fixture
def world(tmp_path):
    w = build_world(tmp_path)
    w.carried = describe(w, "card")
    w.md = (w.root / "card" / "README.md").read_text()
    w.html = (w.root / "card" / "index.html").read_text()
    return w


class _Refs(HTMLParser):
    """Every tag and every attribute that could fetch something."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.fetching: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action") and value:
                self.fetching.append((tag, name, value))


def test_both_cards_show_the_composition(world):
    for text in (world.md, world.html):
        assert "Kitchen chores, egocentric" in text
        assert "version 2" in text and "Robot Hands Lab" in text and "2026-10-11" in text
        # countries: KE 2 clips (1.0 + 1.5 s), IN 1, and the clip without a country
        assert "unknown" in text
        assert "open jar" in text and "fold shirt" in text
        assert "Krippendorff's alpha" in text and "median 0.70" in text
        assert "Too dark" in text
        assert "1.50 USD" in text  # the median piece rate
        assert "18.00 USD" in text  # the median hourly rate
        assert "centerface v2 (4 clips)" in text
        assert "hid 6 face tracks and 1 text regions in 3 of 4 clips" in text
        assert "Faces: blur (3 clips), fill (1 clips). Sound: drop (3 clips), kept (1 clips)." in text
        assert "egocrowd data licence 1.0" in text and "Train models; no re-identification." in text
        assert "commercial use (in products or paid work)" in text.split("Not allowed")[0]
        assert "passing the data on to others" in text.split("Not allowed")[1]
        assert world.spec.previous["root_hash"] in text
        assert world.spec.changes["withdrawn"][0] in text
        assert "Added: 2 clips. Withdrawn: 1 clips." in text
        assert "sha256sum manifest.json" in text
        assert 'LeRobotDataset("local/kitchen-chores", root="lerobot")' in text.replace("&#34;", '"')
        assert 'wds.WebDataset("webdataset/shard-000000.tar"' in text.replace("&#34;", '"')
        assert 'load_dataset("hf/data")' in text.replace("&#34;", '"')
        assert 'records("clips")' in text.replace("&#34;", '"')
    assert "| KE | 2 | 0.00 | 2 |" in world.md
    assert '<th scope="row">KE</th><td class="n">2</td><td class="n">0.00</td><td class="n">2</td>' in world.html
    assert world.carried == {}  # the card carries no clip's data


def test_text_from_people_is_escaped(world):
    assert "Fold &lt;shirts&gt; &amp; towels" in world.html
    assert "<shirts>" not in world.html
    assert "Fold &lt;shirts&gt; &amp; towels" in world.md  # Markdown renders HTML: escaped there too
    assert "commercial\\_use" in world.md


def test_the_html_is_self_contained(world):
    refs = _Refs()
    refs.feed(world.html)
    assert refs.fetching == []
    assert "script" not in refs.tags and "link" not in refs.tags and "img" not in refs.tags
    assert "url(" not in world.html and "@import" not in world.html
    assert refs.tags.count("svg") == 2  # hours per country, spans per label
    assert world.html.count("http") == world.html.count('xmlns="http://www.w3.org/2000/svg"')


def test_a_first_version_says_so(tmp_path):
    w = build_world(tmp_path, previous=False, n=2)
    describe(w, "card")
    for name in ("README.md", "index.html"):
        text = (w.root / "card" / name).read_text()
        assert "This is the first version." in text
        assert "Withdrawn" not in text


def test_numbered_shards_are_loaded_with_brace_notation(world):
    shards = [FileEntry(f"webdataset/shard-{k:06d}.tar", 10, "0" * 64, "webdataset") for k in range(4)]
    context = card_context(world.spec, shards)
    assert 'wds.WebDataset("webdataset/shard-{000000..000003}.tar"' in context["formats"][0]["load"]["code"]


def test_stats_from_the_build_fill_only_what_the_clips_cannot_tell(world):
    pay = [{"campaign_id": 1, "currency": "EUR", "per_clip": "1.20", "median_hourly": "13.00"}]
    no_pay = tuple({k: v for k, v in c.items() if k not in ("pay", "pay_cents")} for c in world.spec.campaigns)
    spec = replace(world.spec, campaigns=no_pay, stats={"pay": pay, "clips": 999, "extra": 1})
    context = card_context(spec, world.files)
    assert context["c"]["clips"] == len(world.spec.items)  # counted from the clips, not taken on trust
    assert context["c"]["extra"] == 1
    assert context["pay"] == [
        {"currency": "EUR", "clips": "n/a", "per_clip": "1.20 EUR", "hourly": "13.00 EUR", "total": "n/a"}
    ]


def test_bar_chart_bars_are_proportional_and_names_escaped():
    svg = str(bar_chart("Hours", [("KE", 2.0), ("<b>", 1.0)], unit="h", decimals=1))
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([\d.]+)"', svg)]
    assert widths == [180.0, 90.0]
    assert "&lt;b&gt;" in svg and "<b>" not in svg
    assert 'role="img"' in svg and "<title" in svg
    assert str(bar_chart("Nothing", [], unit="", decimals=0)) == ""


@pytest.mark.browser
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_html_card_reads_on_a_phone_and_a_desktop(world, chromium, viewport):
    ARTIFACTS.mkdir(exist_ok=True)
    browser = chromium()
    context = browser.new_context(viewport=viewport, java_script_enabled=True)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((world.root / "card" / "index.html").as_uri())
    assert page.title() == "Kitchen chores, egocentric · version 2 · data card"
    assert page.get_by_role("heading", name="How to load it").is_visible()
    assert page.get_by_role(
        "img", name=re.compile("Minutes of video per country: KE 0.04 min, IN 0.03 min, unknown 0.04 min")
    ).is_visible()
    look(page, "release-data-card")
    assert [u for u in requests if not u.startswith("file://")] == []
    context.close()
