"""The shell in the person's language (issue #15): the switcher and the account's language and time
zone, which win over the browser's; sign-up keeps the language browsed in; consent texts in the
reader's language and signatures that record it; notices, their emails and account letters in the
recipient's language. Until the catalogs are filled, "went through gettext" is checked with the
pseudo-language en-XA (every translated string accented between ⟦ ⟧)."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
import sqlalchemy as sa

from egocrowd import consent, i18n
from egocrowd.accounts import recovery
from egocrowd.db.models import ConsentRecord, Notification, User
from egocrowd.demo import CONSENT_TEXT_FR, SCOPES, SCOPES_FR
from egocrowd.i18n import N_
from egocrowd.notifications import deliver_notifications, letter_for, notify
from tests.platform.helpers import API, make_user
from tests.platform.test_access import _csrf, page_login

PSEUDO_TEXT = re.compile(r"⟦[^⟧]*⟧")


@pytest.fixture
def pseudo(monkeypatch):
    monkeypatch.setenv("EGOCROWD_PSEUDO_LOCALE", "1")


@pytest.fixture
def settings(settings, smtp):
    settings.mail_url = smtp.url
    settings.base_url = "https://egocrowd.example"
    return settings


def _user(db, user_id: int) -> User:
    with db.transaction(write=False) as s:
        user = s.get(User, user_id)
        s.expunge(user)
        return user


def _set(db, user_id: int, **values) -> None:
    with db.transaction() as s:
        user = s.get(User, user_id)
        for k, v in values.items():
            setattr(user, k, v)


def test_the_switcher_sets_the_cookie_and_the_accounts_language(client, db):
    w = make_user(db, "worker")
    token = page_login(client, w)
    r = client.post("/language", data={"lang": "fr", "next": "/account", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/account"
    assert "lang=fr" in r.headers["set-cookie"]
    assert _user(db, w.id).language == "fr"
    assert '<html lang="fr" dir="ltr">' in client.get("/account").text
    # an unknown language changes nothing, and a foreign "next" is not followed
    r = client.post(
        "/language", data={"lang": "xx", "next": "//evil.example", "csrf_token": token}, follow_redirects=False
    )
    assert r.headers["location"] == "/" and "set-cookie" not in r.headers and _user(db, w.id).language == "fr"
    r = client.post("/language", data={"lang": "ar", "next": "/account"}, follow_redirects=False)
    assert r.status_code == 403 and _user(db, w.id).language == "fr"  # no CSRF token: refused


def test_the_accounts_language_wins_over_the_browsers(client, db):
    w = make_user(db, "worker")
    page_login(client, w)
    _set(db, w.id, language="ar")
    page = client.get("/account", headers={"Accept-Language": "fr-FR, fr;q=0.9"}).text
    assert '<html lang="ar" dir="rtl">' in page
    client.cookies.set("lang", "pt")  # the switcher's cookie of another visit loses too
    assert '<html lang="ar" dir="rtl">' in client.get("/account").text
    _set(db, w.id, language=None)  # "the browser's": the cookie, then Accept-Language
    assert '<html lang="pt" dir="ltr">' in client.get("/account", headers={"Accept-Language": "fr"}).text
    client.cookies.delete("lang")
    assert '<html lang="fr" dir="ltr">' in client.get("/account", headers={"Accept-Language": "fr"}).text


def test_the_account_page_saves_language_and_time_zone(client, db):
    w = make_user(db, "worker")
    token = page_login(client, w)
    page = client.get("/account").text
    assert '<select id="language" name="language">' in page and '<option value="ar" lang="ar"' in page
    assert '<option translate="no" value="Africa/Nairobi">Africa/Nairobi</option>' in page
    assert '<option value="" selected>The browser\'s time zone</option>' in page
    form = {
        "csrf_token": token,
        "display_name": "Amina",
        "country": "KE",
        "language": "fr",
        "time_zone": "Africa/Nairobi",
    }
    r = client.post("/account/profile", data=form, follow_redirects=False)
    assert r.status_code == 303
    user = _user(db, w.id)
    assert (user.language, user.time_zone, user.country) == ("fr", "Africa/Nairobi", "KE")
    page = client.get("/account").text
    assert '<option value="fr" lang="fr" translate="no" selected>' in page
    assert '<option translate="no" value="Africa/Nairobi" selected>' in page
    # times are shown in the account's zone: the session list says "GMT+03:00" (Nairobi)
    assert "GMT+03:00" in page or "UTC+03:00" in page
    r = client.post("/account/profile", data={**form, "time_zone": "Mars/Olympus"})
    assert r.status_code == 422 and 'data-code="user.bad_time_zone"' in r.text
    assert _user(db, w.id).time_zone == "Africa/Nairobi"  # nothing of the refused form was kept
    r = client.post("/account/profile", data={**form, "language": "", "time_zone": ""}, follow_redirects=False)
    user = _user(db, w.id)
    assert r.status_code == 303 and (user.language, user.time_zone) == (None, None)  # the browser's again


def test_the_country_list_speaks_the_viewers_language(client, db):
    w = make_user(db, "worker")
    page_login(client, w)
    _set(db, w.id, language="fr")
    page = client.get("/account").text
    assert (
        '<option translate="no" value="DE">Allemagne</option>' in page
        and '<option translate="no" value="KE" selected>Kenya</option>' in page
    )
    client.cookies.clear()
    assert (
        '<option translate="no" value="DE">Germany</option>'
        in client.get("/signup", headers={"Accept-Language": "en"}).text
    )


def test_sign_up_keeps_the_language_browsed_in(client, db, settings, smtp, pseudo):
    client.cookies.set("lang", "en-XA")
    token = _csrf(client, "/signup")
    form = {"csrf_token": token, "email": "neu@example.com", "password": "a long enough password", "country": "KE"}
    r = client.post("/signup", data=form, follow_redirects=False)
    assert r.status_code == 303
    with db.transaction(write=False) as s:
        assert s.scalar(sa.select(User.language).where(User.email == "neu@example.com")) == "en-XA"
    (mail,) = smtp.to("neu@example.com")
    body = mail.get_content()
    assert PSEUDO_TEXT.search(mail["Subject"]) and "https://egocrowd.example/verify-email?token=" in body
    assert "Hello" not in body and "Open this link" not in body  # every sentence went through gettext


def test_recovery_letters_speak_the_recipients_language(db, pseudo):
    w = make_user(db, "worker")
    _set(db, w.id, language="en-XA")
    with db.transaction() as s:
        letter = recovery.request_password_reset(s, w.email, base_url="https://x.example")
    assert letter is not None and letter.subject == i18n.pseudo("Choose a new egocrowd password")
    assert "https://x.example/reset-password?token=" in letter.body and "minutes" not in letter.body
    _set(db, w.id, language="en")
    with db.transaction() as s:
        letter = recovery.request_password_reset(s, w.email, base_url="https://x.example")
    assert letter.subject == "Choose a new egocrowd password" and "within 60 minutes" in letter.body


def test_a_notice_arrives_in_the_workers_language(client, db, settings, smtp, pseudo):
    """A French-speaking worker's notices are written in French; until the French catalog exists,
    the same path is checked with the pseudo-language: page and email went through gettext."""
    w = make_user(db, "worker")
    _set(db, w.id, language="en-XA", time_zone="Asia/Kolkata")
    with db.transaction() as s:
        notify(
            s,
            w.id,
            "review.accepted",
            N_("Clip {clip} was accepted"),
            [N_("Your clip for “{title}” was accepted."), N_("The reviewer wrote: {comment}")],
            link="/clips/1234",
            params={"clip": 1234, "title": "Fold a shirt", "comment": "Sharp and steady."},
        )
    with db.transaction(write=False) as s:
        note = s.scalars(sa.select(Notification).where(Notification.user_id == w.id)).one()
        s.expunge(note)
    assert note.subject == i18n.pseudo("Clip {clip} was accepted").format(clip=1234)  # an id, not "1,234"
    assert "Fold a shirt" in note.body and "Sharp and steady." in note.body  # what people wrote, as written
    assert "Your clip" not in note.body and "reviewer wrote" not in note.body
    page_login(client, w)
    page = client.get("/notifications").text
    assert note.subject in page and '<html lang="en-XA"' in page
    assert deliver_notifications(db, settings) == 1
    (mail,) = smtp.to(w.email)
    assert mail["Subject"] == note.subject
    body = mail.get_content()
    assert "Hello" not in body and "All your notices" not in body and "Sharp and steady." in body
    # someone else's language is untouched by building it: the caller's context stays English
    assert i18n.current() == "en"


def test_notice_values_are_written_the_recipients_way(db):
    from egocrowd.pay.money import Money

    w = make_user(db, "worker")
    _set(db, w.id, language="fr")
    with db.transaction() as s:
        note = notify(
            s, w.id, "payout.sent", N_("{money} is on its way to you"), params={"money": Money(150000, "USD")}
        )
        s.flush()
        assert note.subject.startswith("1\u202f500,00\xa0$US") or note.subject.startswith("1\u202f500,00\xa0USD")
    _set(db, w.id, language="en")
    with db.transaction() as s:
        note = notify(s, w.id, "payout.sent", N_("{money} is on its way to you"), params={"money": Money(150, "USD")})
        s.flush()
        assert note.subject == "USD\xa01.50 is on its way to you"
        user = s.get(User, w.id)
        assert letter_for(note, user, "https://x.example").body.startswith(f"Hello {user.display_name},")


def _two_languages(db):
    admin = make_user(db, "admin")
    with db.transaction() as s:
        a = s.get(User, admin.id)
        en = consent.create_draft(s, a, family="lang-consent", title="Consent", body="# Consent\n", scopes=SCOPES)
        consent.publish(s, a, en.version)
        fr = consent.create_draft(
            s,
            a,
            family="lang-consent",
            title="Consentement",
            body=CONSENT_TEXT_FR,
            scopes=SCOPES_FR,
            language="fr",
            revision=1,
        )
        consent.publish(s, a, fr.version)
        return en.version, fr.version


def test_the_signature_records_the_language_signed(client, db):
    en, fr = _two_languages(db)
    w = make_user(db, "worker")
    token = page_login(client, w)
    _set(db, w.id, language="fr")  # the account's language picks the text, whatever the browser says
    page = client.get(f"/consent/{en}", headers={"Accept-Language": "en"}).text
    assert f'action="/consent/{fr}"' in page and "Consentement" in page and 'id="not-translated"' not in page
    sha = re.search(r'name="sha256" value="([0-9a-f]{64})"', page).group(1)
    r = client.post(f"/consent/{fr}", data={"csrf_token": token, "sha256": sha, "scopes": "record_hands"})
    assert r.status_code in (200, 303)
    with db.transaction(write=False) as s:
        (rec,) = s.scalars(sa.select(ConsentRecord).where(ConsentRecord.user_id == w.id)).all()
        assert rec.language == "fr"
    (row,) = client.get(f"{API}/consents", headers=w.headers).json()["items"]
    assert row["language"] == "fr" and row["version"] == fr
    _set(db, w.id, language="en")
    page = client.get("/consents").text
    assert "in French" in page  # the language of the signature, named in the reader's language
    export = client.post(f"{API}/me/export", headers=w.headers)
    data = json.loads(zipfile.ZipFile(io.BytesIO(export.content)).read("data.json"))
    assert [c["language"] for c in data["consents"]] == ["fr"]


def test_a_reader_without_a_text_in_their_language_is_told(client, db):
    en, _fr = _two_languages(db)
    w = make_user(db, "worker")
    page_login(client, w)
    _set(db, w.id, language="sw")
    page = client.get(f"/consent/{en}").text
    assert f'action="/consent/{en}"' in page  # the original text, the one signed
    note = re.search(r'<p class="card" role="note" id="not-translated">(.*?)</p>', page, re.S).group(1)
    assert "not available in" in note and "Swahili" in note or "Kiswahili" in note
    assert 'id="not-translated"' not in client.get(f"/consent/{en}?lang=en").text  # chosen on purpose


def test_authors_add_a_language_version_of_a_revision(client, db):
    en, _fr = _two_languages(db)
    admin = make_user(db, "admin")
    token = page_login(client, admin)
    page = client.get(f"/consent-documents/new?source={en}&translate=1").text
    assert "New language version of" in page and 'name="mode" value="translate"' in page
    form = {
        "csrf_token": token,
        "mode": "translate",
        "family": "lang-consent",
        "revision": "1",
        "language": "pt-BR",
        "title": "Consentimento",
        "body": "# Consentimento\n",
        "scope_id_0": "record_hands",
        "scope_label_0": "Gravar minhas mãos",
        "scope_required_0": "on",
    }
    r = client.post("/consent-documents/new", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get("/consent-documents").text
    assert "Portuguese (Brazil)" in page  # the language named, not only its tag


@pytest.mark.parametrize("path", ["/", "/login", "/signup", "/forgot-password"])
def test_public_pages_go_through_gettext(client, pseudo, path):
    client.cookies.set("lang", "en-XA")
    page = client.get(path).text
    main = re.search(r"<main>(.*)</main>", page, re.S).group(1)
    main = re.sub(r'<select id="country".*?</select>', " ", main, flags=re.S)  # CLDR's names, not ours
    text = re.sub(r"<[^>]+>", " ", main)
    text = PSEUDO_TEXT.sub(" ", text)
    words = [w for w in re.findall(r"[A-Za-z]{3,}", text) if w != "egocrowd"]
    assert words == [], f"{path}: English left outside gettext: {words}"
