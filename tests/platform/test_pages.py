"""Pages rendered outside a request's unit of work (error pages, forms sent back) see the same
viewer as every other page, and a form sent back never shows a campaign to a stranger (#16)."""

from __future__ import annotations

import pytest

from egocrowd import i18n
from egocrowd.db.models import User
from tests.platform.helpers import (
    create_campaign,
    make_user,
    open_campaign,
    publish_consent,
)
from tests.platform.test_access import _csrf, page_login
from tests.platform.test_campaigns import _form

SECRET = "Secret draft of Lab A"


def _suspend(db, actor) -> None:
    with db.transaction() as s:
        s.get(User, actor.id).is_active = False


def _anonymous(r) -> bool:
    """The page was rendered for nobody: the log-in link, no log-out form."""
    return 'href="/login"' in r.text and 'action="/logout"' not in r.text


def test_suspended_user_is_anonymous_on_error_pages_and_forms_sent_back(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    token = page_login(client, lab)
    r = client.get("/no-such-page")
    assert r.status_code == 404 and not _anonymous(r)  # the nav knows who is looking...
    _suspend(db, lab)
    r = client.get("/no-such-page")
    assert r.status_code == 404 and 'data-code="http.not_found"' in r.text and _anonymous(r)  # ...no more
    r = client.post("/campaigns/new", data={**_form(pay="lots"), "csrf_token": token})
    assert r.status_code == 401 and 'data-code="auth.required"' in r.text and _anonymous(r)
    assert 'name="title"' not in r.text  # no form for someone who may not fill it in


@pytest.fixture
def labs(client, db):
    publish_consent(db)
    owner = make_user(db, "requester", org="Lab A")
    ids = {
        "draft": create_campaign(client, owner, title=SECRET)["id"],
        "open": open_campaign(client, owner, title=SECRET + ", live")["id"],
    }
    return owner, ids


@pytest.mark.parametrize(
    "who, which, status, code",
    [
        ("anonymous", "draft", 401, "auth.required"),
        ("anonymous", "open", 401, "auth.required"),
        ("worker", "draft", 404, "campaign.not_found"),
        ("worker", "open", 403, "auth.forbidden"),  # sees the campaign, may not edit it
        ("other_lab", "draft", 404, "campaign.not_found"),
        ("other_lab", "open", 404, "campaign.not_found"),
        ("bad_csrf", "draft", 403, "auth.csrf"),  # the owner's session, a forged form
        ("owner", "missing", 404, "campaign.not_found"),
    ],
)
def test_campaign_edit_errors_never_show_the_campaign(client, db, labs, who, which, status, code):
    owner, ids = labs
    if who == "anonymous":
        token = _csrf(client)
    elif who == "bad_csrf":
        page_login(client, owner)
        token = "forged"
    else:
        actor = {
            "worker": lambda: make_user(db, "worker"),
            "other_lab": lambda: make_user(db, "requester", org="Lab B"),
            "owner": lambda: owner,
        }[who]()
        token = page_login(client, actor)
    cid = ids.get(which, 424242)
    # a bad field too: before the fix, any error sent the stored campaign back in the form
    r = client.post(f"/campaigns/{cid}/edit", data={**_form(pay="lots", title="Typed title"), "csrf_token": token})
    assert r.status_code == status and f'data-code="{code}"' in r.text, r.text
    assert SECRET not in r.text and 'name="title"' not in r.text


def test_owner_gets_the_form_back_with_their_input(client, db, labs):
    owner, ids = labs
    token = page_login(client, owner)
    r = client.post(
        f"/campaigns/{ids['draft']}/edit", data={**_form(pay="lots", title="Typed title"), "csrf_token": token}
    )
    assert r.status_code == 422 and 'data-code="validation.failed"' in r.text
    assert 'value="Typed title"' in r.text and 'value="lots"' in r.text
    # a live campaign's form comes back the same way
    r = client.post(f"/campaigns/{ids['open']}/edit", data={**_form(title="x" * 300), "csrf_token": token})
    assert r.status_code == 422 and 'name="title"' in r.text


@pytest.mark.parametrize("who", ["admin", "lab"])
def test_an_empty_campaign_list_offers_only_what_the_viewer_can_do(client, db, who):
    """An admin has no lab, so the campaign form could not be saved: they are sent to make a lab instead."""
    actor = make_user(db, "admin") if who == "admin" else make_user(db, "requester", org="Lab A")
    page_login(client, actor)
    r = client.get("/campaigns")
    assert "No campaigns to show yet." in r.text
    assert ('href="/campaigns/new">Create one' in r.text) is (who == "lab")
    assert ('href="/admin/organizations">add a lab' in r.text) is (who == "admin")


def test_money_on_pages_has_each_currencys_own_digits():
    from egocrowd.web.pages.render import _money as money

    assert money(150000, "USD") == "USD\xa01,500.00"
    assert money(150, "JPY") == "JPY\xa0150"  # yen have no minor unit: 150 is what the ledger pays
    assert money(1500, "KWD") == "KWD\xa01.500"
    with i18n.using("fr"):  # each language writes money its own way, always with the ISO code
        assert money(150000, "USD") == "1\u202f500,00\xa0USD"
        assert money(1500, "KWD") == "1,500\xa0KWD"
    with i18n.using("ar"):
        assert money(150, "JPY") == "\u200f150\xa0JPY"


def test_reader_filters_run_at_every_render_not_once_at_compile_time():
    """Jinja folds filters of constant arguments when it compiles a template; a number, a date or an
    amount must follow each reader's language instead of the first reader's."""
    from egocrowd.web.pages.render import templates

    template = templates.env.from_string("{{ 1234.5|number }} · {{ 150|money('USD') }}")
    with i18n.using("fr"):
        french = template.render()
    with i18n.using("en"):
        english = template.render()
    assert french == "1\u202f234,5 · 1,50\xa0USD" and english == "1,234.5 · USD\xa01.50"
