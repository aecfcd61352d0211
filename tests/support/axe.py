"""axe-core (npm) in a playwright page: the WCAG 2.1 A and AA violations of what the page shows now.

violations = axe.check(page)       # [] when the page passes
assert not violations, axe.report(violations)
"""

from __future__ import annotations

from pathlib import Path

AXE_JS = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def check(page) -> list[dict]:
    """Inject axe into ``page`` (through the DevTools protocol, so the page's CSP does not apply) and
    run it on the whole document."""
    page.evaluate(AXE_JS.read_text())
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        WCAG_21_AA,
    )
    return result["violations"]


def report(violations: list[dict], where: str = "") -> str:
    """One readable block per rule: what is wrong, how bad, and which elements."""
    lines = []
    for v in violations:
        lines.append(f"{where}[{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:5]:
            lines.append(f"    {' '.join(node['target'])}: {_first_reason(node)}")
        if len(v["nodes"]) > 5:
            lines.append(f"    … and {len(v['nodes']) - 5} more")
    return "\n".join(lines)


def _first_reason(node: dict) -> str:
    """axe's summary is "Fix any/all of the following:" and then the reasons, one a line."""
    lines = [line.strip() for line in (node.get("failureSummary") or "").splitlines() if line.strip()]
    return "; ".join(lines[1:3]) or "(no detail)"
