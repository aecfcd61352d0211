"""The shell in Arabic, in Chromium: a worker picks العربية from the language switcher and gets a
right-to-left page whose nav went through the Arabic catalog; the nav wraps inside the screen and
the switcher's list opens towards the page (its end edge under the button), on a phone and a laptop."""

from __future__ import annotations

import pytest

from egocrowd import i18n
from tests.platform.helpers import make_user
from tests.support.browser import PHONE, log_in, look

pytestmark = pytest.mark.browser
LAPTOP = {"width": 1280, "height": 800}
NAV = ("Tasks", "My work", "Clips", "Earnings", "Consent", "Notices", "Account")


def _arabic_nav_went_through_gettext(nav_text: str) -> None:
    """Translated once the Arabic catalog has the nav's words; until then, each was looked up in it."""
    for word in NAV:
        if i18n.translations("ar").gettext(word) != word:
            assert word not in nav_text
        else:
            assert ("ar", word) in i18n.MISSES, f"{word!r} did not go through gettext in Arabic"


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["phone", "laptop"])
def test_a_worker_switches_to_arabic(live, db, chromium, viewport):
    worker = make_user(db, "worker")
    page = log_in(chromium(), live.base, worker.email, viewport)
    assert page.get_attribute("html", "dir") == "ltr"
    page.locator(".lang-switch summary").click()
    page.locator('.lang-switch button[value="ar"]').click()
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "ar" and page.get_attribute("html", "dir") == "rtl"
    nav = page.locator("header nav")
    _arabic_nav_went_through_gettext(nav.inner_text())

    width = viewport["width"]
    # the nav wraps inside the screen; in RTL its first link sits at the right-hand edge
    links = nav.locator("a").all()
    boxes = [link.bounding_box() for link in links]
    assert all(b is not None and b["x"] >= 0 and b["x"] + b["width"] <= width for b in boxes)
    first = boxes[0]
    assert first is not None and first["x"] > max(b["x"] for b in boxes if b is not None) - 1  # rightmost
    # the switcher opens on the correct side: its list hangs from the button's end (left, in RTL)
    page.locator(".lang-switch summary").click()
    summary = page.locator(".lang-switch summary").bounding_box()
    menu = page.locator(".lang-switch form").bounding_box()
    assert summary is not None and menu is not None
    assert abs(menu["x"] - summary["x"]) <= 2  # left edges line up: the list grows towards the page
    assert menu["x"] >= 0 and menu["x"] + menu["width"] <= width
    look(page, f"rtl-shell-{viewport['width']}")
    page.locator(".lang-switch summary").click()  # closed again
    # the choice is the account's now: a new visit in another browser speaks Arabic too
    page.context.close()
    again = log_in(chromium(), live.base, worker.email, viewport)
    assert again.get_attribute("html", "dir") == "rtl"
