"""The HTML report in a real browser (issue #19): nothing scrolls sideways on a 1366 px laptop, and on
a phone each table row becomes a card whose lines name their column."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from egocrowd.bench.cli import bench
from egocrowd.bench.synthetic import SynthPolicy, write_synthetic

# every element that pokes out of the page or scrolls inside it
OVERFLOW = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > innerWidth + 1 || e.scrollWidth > e.clientWidth + 1)
    .filter(e => !['svg', 'g', 'path', 'text', 'line', 'rect', 'circle', 'polyline', 'polygon'].includes(e.tagName.toLowerCase()))
    .map(e => e.tagName + ' ' + (e.textContent || '').slice(0, 40))"""


def test_report_fits_a_laptop_and_a_phone(tmp_path, chromium):
    synth_log = tmp_path / "runs.jsonl"
    write_synthetic(synth_log, [SynthPolicy(name, 0.7) for name in ("a-long-policy-name", "b", "c", "d")], 10, seed=1)
    html = tmp_path / "report.html"
    res = CliRunner().invoke(bench, ["report", str(synth_log), "-o", str(html), "--rounds", "30"])
    assert res.exit_code == 0, res.output
    browser = chromium()
    for width in (1366, 390):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(Path(html).as_uri())
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.evaluate(OVERFLOW) == [], width
        if width == 390:
            cell = page.locator("td[data-label='Subtask success']").first
            label = page.evaluate("e => getComputedStyle(e, '::before').content", cell.element_handle())
            assert label == '"Subtask success"'
            assert page.locator("thead").first.bounding_box()["x"] < 0  # the header row is out of sight
