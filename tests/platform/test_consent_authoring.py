"""Writing consent documents (families, revisions, languages), publishing them, asking workers to sign
again, and scopes enforced on claim and on every upload. Real database (both backends), real API."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from egocrowd import consent
from egocrowd.accounts import organizations
from egocrowd.clips.uploads import grant_upload
from egocrowd.db.models import AuditEvent, ConsentDocument, Notification, Organization, User
from tests.platform.helpers import API, assert_problem, campaign_body, claim, make_user, set_status

SCOPES = [
    {"id": "record_hands", "label": "Record my hands", "required": True},
    {"id": "commercial_use", "label": "Commercial use"},
]
TEXT = "# Consent\n\n1. You film your hands.\n2. You may withdraw.\n"


def _draft(client, actor, **over):
    body = {"family": "lab-worker", "title": "Consent", "body": TEXT, "scopes": SCOPES, **over}
    return client.post(f"{API}/consent-documents", json=body, headers=actor.headers)


def _publish(client, actor, version):
    r = client.post(f"{API}/consent-documents/{version}/publish", headers=actor.headers)
    assert r.status_code == 200, r.text
    return r.json()


def _sign(client, worker, version, scopes=("record_hands",)):
    return client.post(f"{API}/consents", json={"version": version, "scopes": list(scopes)}, headers=worker.headers)


def test_draft_edit_publish_freeze_retire(client, db):
    admin = make_user(db, "admin")
    r = _draft(client, admin)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert (doc["version"], doc["revision"], doc["language"], doc["status"]) == ("lab-worker-1", 1, "en", "draft")
    assert doc["organization_id"] is None and doc["published_at"] is None
    # drafts are not public, and cannot be signed or named by a campaign
    assert_problem(client.get(f"{API}/consent-documents/lab-worker-1"), 404, "consent.document_not_found")
    assert client.get(f"{API}/consent-documents").json()["items"] == []
    drafts = client.get(f"{API}/consent-documents?status=draft", headers=admin.headers).json()["items"]
    assert [d["version"] for d in drafts] == ["lab-worker-1"]

    r = client.patch(f"{API}/consent-documents/lab-worker-1", json={"body": TEXT + "3. More.\n"}, headers=admin.headers)
    edited = r.json()
    assert r.status_code == 200 and "3. More." in edited["body"]
    assert edited["sha256"] == consent.text_sha256(edited["body"])  # the fingerprint follows the text
    assert_problem(_draft(client, admin, body="Other"), 409, "consent.draft_exists")  # one draft revision at a time

    pub = _publish(client, admin, "lab-worker-1")
    assert pub["status"] == "published" and pub["published_at"]
    assert client.get(f"{API}/consent-documents/lab-worker-1").status_code == 200  # public now
    assert_problem(
        client.patch(f"{API}/consent-documents/lab-worker-1", json={"title": "X"}, headers=admin.headers),
        409,
        "consent.frozen",
    )
    assert_problem(
        client.post(f"{API}/consent-documents/lab-worker-1/publish", headers=admin.headers), 409, "consent.not_draft"
    )
    # the same text again is not a new revision
    assert_problem(_draft(client, admin, body=TEXT + "3. More.\n"), 409, "consent.duplicate")
    r2 = _draft(client, admin, body=TEXT + "3. Changed.\n")
    assert r2.json()["version"] == "lab-worker-2"
    r = client.post(f"{API}/consent-documents/lab-worker-2/retire", headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "retired"
    with db.transaction(write=False) as s:
        actions = list(
            s.scalars(
                sa.select(AuditEvent.action).where(AuditEvent.entity_type == "consent_document").order_by(AuditEvent.id)
            )
        )
    assert actions == [
        "consent.draft_created",
        "consent.draft_edited",
        "consent.document_published",
        "consent.draft_created",
        "consent.document_retired",
    ]


def test_bad_names_languages_and_scopes(client, db):
    admin = make_user(db, "admin")
    assert_problem(_draft(client, admin, family="Lab_Worker"), 422, "consent.bad_family")
    assert_problem(
        _draft(client, admin, family="lab-2026"), 422, "consent.bad_family"
    )  # a part must start with a letter
    assert_problem(_draft(client, admin, language="french"), 422, "consent.bad_language")
    twice = [SCOPES[0], SCOPES[0]]
    assert_problem(_draft(client, admin, scopes=twice), 422, "consent.bad_document")


def test_language_versions_share_the_choices_and_count_for_the_revision(client, db):
    admin, worker = make_user(db, "admin"), make_user(db, "worker")
    _draft(client, admin)
    fr_scopes = [{**SCOPES[0], "label": "Filmer mes mains"}, {**SCOPES[1], "label": "Usage commercial"}]
    fr = _draft(
        client, admin, language="fr", revision=1, title="Consentement", body="# Consentement\n", scopes=fr_scopes
    )
    assert fr.status_code == 201 and fr.json()["version"] == "lab-worker-1-fr"
    assert_problem(
        client.post(f"{API}/consent-documents/lab-worker-1-fr/publish", headers=admin.headers),
        409,
        "consent.original_unpublished",
    )
    _publish(client, admin, "lab-worker-1")
    bad = _draft(client, admin, language="pt-BR", revision=1, title="T", body="Texto", scopes=SCOPES[:1]).json()
    assert_problem(
        client.post(f"{API}/consent-documents/{bad['version']}/publish", headers=admin.headers),
        409,
        "consent.scopes_differ",
    )
    _publish(client, admin, "lab-worker-1-fr")
    langs = client.get(f"{API}/consent-documents/lab-worker-1/languages").json()["items"]
    assert [d["language"] for d in langs] == ["en", "fr"]  # the pt-BR draft is its author's only

    assert _sign(client, worker, "lab-worker-1-fr").status_code == 201
    assert_problem(_sign(client, worker, "lab-worker-1"), 409, "consent.already_signed")  # same revision


def test_labs_write_only_when_allowed_and_only_for_themselves(client, db):
    admin = make_user(db, "admin")
    lab = make_user(db, "requester", org="Lab A")
    viewer = make_user(db, "requester", org="Lab A", org_role="viewer")
    other = make_user(db, "requester", org="Lab B")
    assert_problem(_draft(client, lab), 403, "auth.forbidden")
    with db.transaction() as s:
        a = s.get(User, admin.id)
        for name in ("Lab A", "Lab B"):
            org = s.scalars(sa.select(Organization).where(Organization.name == name)).one()
            organizations.set_consent_authoring(s, a, org, True)
    assert_problem(_draft(client, viewer), 403, "auth.forbidden")  # viewers read only
    r = _draft(client, lab, family="lab-a-consent")
    assert r.status_code == 201 and r.json()["organization_id"] is not None
    # another lab cannot see, edit or extend it, nor take its name
    assert_problem(
        client.get(f"{API}/consent-documents/lab-a-consent-1", headers=other.headers), 404, "consent.document_not_found"
    )
    assert_problem(_draft(client, other, family="lab-a-consent"), 409, "consent.family_taken")
    _publish(client, lab, "lab-a-consent-1")
    # its campaigns may use it; another lab's may not
    r = client.post(f"{API}/campaigns", json=campaign_body(consent_version="lab-a-consent-1"), headers=lab.headers)
    assert r.status_code == 201, r.text
    r = client.post(f"{API}/campaigns", json=campaign_body(consent_version="lab-a-consent-1"), headers=other.headers)
    assert_problem(r, 422, "campaign.unknown_consent_version")
    with db.transaction(write=False) as s:  # what each lab's campaign form offers
        a_id, b_id = (s.get(User, u.id).organization_id for u in (lab, other))
        assert [d.version for d in consent.usable_documents(s, a_id)] == ["lab-a-consent-1"]
        assert consent.usable_documents(s, b_id) == []


def test_a_campaign_needs_a_document_offering_its_data_use(client, db):
    admin, lab = make_user(db, "admin"), make_user(db, "requester", org="Lab A")
    _draft(client, admin)
    _publish(client, admin, "lab-worker-1")
    body = campaign_body(consent_version="lab-worker-1", data_use={"train": True, "redistribute": True, "audio": True})
    problem = assert_problem(
        client.post(f"{API}/campaigns", json=body, headers=lab.headers), 422, "consent.scope_not_offered"
    )
    assert problem["missing_scopes"] == ["audio_kept", "redistribution"]
    cid = client.post(
        f"{API}/campaigns", json=campaign_body(consent_version="lab-worker-1"), headers=lab.headers
    ).json()["id"]
    r = client.patch(f"{API}/campaigns/{cid}", json={"data_use": {"keep_face": True}}, headers=lab.headers)
    assert_problem(r, 422, "consent.scope_not_offered")
    r = client.patch(f"{API}/campaigns/{cid}", json={"data_use": {"commercial": True}}, headers=lab.headers)
    assert r.status_code == 200, r.text


def test_new_revision_asks_to_sign_again_before_the_next_upload(client, db):
    admin, lab = make_user(db, "admin"), make_user(db, "requester", org="Lab A")
    worker, idle = make_user(db, "worker"), make_user(db, "worker")
    _draft(client, admin)
    _publish(client, admin, "lab-worker-1")
    cid = client.post(
        f"{API}/campaigns", json=campaign_body(consent_version="lab-worker-1", target_clips=3), headers=lab.headers
    ).json()["id"]
    assert set_status(client, lab, cid, "open").status_code == 200
    assert_problem(claim(client, worker, cid), 403, "consent.missing")
    _sign(client, worker, "lab-worker-1")
    _sign(client, idle, "lab-worker-1")
    a = claim(client, worker, cid).json()

    def grant(who):
        with db.transaction(write=False) as s:
            return grant_upload(s, s.get(User, who.id), {"assignment": str(a["id"])})

    assert grant(worker).context["assignment_id"] == a["id"]

    _draft(client, admin, body=TEXT + "3. Clips may be kept for ten years.\n")
    r = client.get(f"{API}/consent-documents/lab-worker-2", headers=admin.headers)
    assert r.json()["status"] == "draft"
    _publish(client, admin, "lab-worker-2")
    with db.transaction(write=False) as s:
        notes = list(s.scalars(sa.select(Notification)))
        assert [(n.user_id, n.kind, n.link) for n in notes] == [
            (worker.id, "consent.new_version", "/consent/lab-worker-2")
        ]
        event = s.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "consent.document_published")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert event.payload["asked_to_sign_again"] == 1

    import pytest

    from egocrowd.errors import Forbidden

    with pytest.raises(Forbidden) as e:
        grant(worker)
    assert e.value.code == "consent.resign_required" and e.value.extra["consent_version"] == "lab-worker-2"
    body = assert_problem(claim(client, idle, cid), 403, "consent.resign_required")
    assert body["consent_version"] == "lab-worker-2" and body["signed_version"] == "lab-worker-1"
    assert_problem(_sign(client, worker, "lab-worker-1"), 409, "consent.superseded")  # the old one is closed

    diff = client.get(f"{API}/consent-documents/lab-worker-2/diff").json()
    assert diff["old"] == "lab-worker-1" and "+3. Clips may be kept for ten years." in diff["unified_diff"]
    assert "--- lab-worker-1" in diff["unified_diff"]

    assert _sign(client, worker, "lab-worker-2").status_code == 201
    assert grant(worker).context["assignment_id"] == a["id"]
    # retiring the new revision makes the previous one required again
    client.post(f"{API}/consent-documents/lab-worker-2/retire", headers=admin.headers)
    assert claim(client, idle, cid).status_code == 201


def test_scopes_are_enforced_on_claim_and_on_upload(client, db):
    admin, lab, worker = make_user(db, "admin"), make_user(db, "requester", org="Lab A"), make_user(db, "worker")
    _draft(client, admin)
    _publish(client, admin, "lab-worker-1")
    cid = client.post(
        f"{API}/campaigns",
        json=campaign_body(consent_version="lab-worker-1", data_use={"train": True, "commercial": True}),
        headers=lab.headers,
    ).json()["id"]
    set_status(client, lab, cid, "open")
    rec = _sign(client, worker, "lab-worker-1").json()
    body = assert_problem(claim(client, worker, cid), 403, "consent.scope_missing")
    assert body["missing_scopes"] == ["commercial_use"] and "commercial use" in body["detail"]
    client.post(f"{API}/consents/{rec['id']}/withdraw", headers=worker.headers)
    _sign(client, worker, "lab-worker-1", scopes=("record_hands", "commercial_use"))
    assert claim(client, worker, cid).status_code == 201


def test_markdown_cannot_inject_markup_and_languages_are_picked():
    html = consent.render_markdown("# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) **b**")
    assert "<h2>Title</h2>" in html and "<strong>b</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and 'href="javascript' not in html
    wanted = consent.parse_accept_language("fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5")
    assert wanted == ["fr-CH", "fr", "en"]
    assert consent.pick_language(["en", "fr"], wanted, "en") == "fr"
    assert consent.pick_language(["en", "pt-BR"], ["pt"], "en") == "pt-BR"
    assert consent.pick_language(["en", "fr"], ["de"], "en") == "en"
    assert consent.parse_accept_language("en;q=abc, de;q=0") == []


def test_cli_publishes_a_markdown_file(tmp_path, db, db_url):
    path = tmp_path / "consent.md"
    path.write_text(TEXT, encoding="utf-8")
    env = {"EGOCROWD_DATA_DIR": str(tmp_path / "data"), "EGOCROWD_CONFIG": None, "EGOCROWD_DATABASE_URL": db_url}
    args = ["consent", "publish", str(path), "--family", "cli-doc", "--title", "Consent"]
    r = CliRunner().invoke(
        consent_cli(),
        [*args, "--scope", "record_hands:Record my hands:required", "--scope", "audio_kept:Keep audio"],
        env=env,
    )
    assert r.exit_code == 0, r.output
    assert "published cli-doc-1" in r.output
    with db.transaction(write=False) as s:
        doc = s.scalars(sa.select(ConsentDocument).where(ConsentDocument.version == "cli-doc-1")).one()
        assert doc.status.value == "published" and doc.scopes[0] == {
            "id": "record_hands",
            "label": "Record my hands",
            "required": True,
        }
    r = CliRunner().invoke(consent_cli(), [*args, "--scope", "nolabel"], env=env)
    assert r.exit_code != 0 and "id:label" in r.output


def consent_cli():
    from egocrowd.cli import main

    return main


def test_what_counts_as_signed_follows_the_newest_revision_in_any_language(client, db):
    admin, worker = make_user(db, "admin"), make_user(db, "worker")
    _draft(client, admin)
    _publish(client, admin, "lab-worker-1")
    _draft(client, admin, language="fr", revision=1, title="Consentement", body="# Consentement\n")
    _publish(client, admin, "lab-worker-1-fr")
    _sign(client, worker, "lab-worker-1-fr")
    with db.transaction(write=False) as s:
        w = s.get(User, worker.id)
        assert consent.signed_versions(s, w) == {"lab-worker-1", "lab-worker-1-fr"}  # campaigns name either
        assert consent.active_consent(s, w, "lab-worker-1").document.version == "lab-worker-1-fr"
    _draft(client, admin, body=TEXT + "3. New.\n")
    _publish(client, admin, "lab-worker-2")
    with db.transaction(write=False) as s:
        w = s.get(User, worker.id)
        assert consent.signed_versions(s, w) == set() and consent.active_consent(s, w, "lab-worker-1") is None
