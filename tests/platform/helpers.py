"""Building blocks for platform tests: real accounts, real tokens, real campaigns through the API."""

from __future__ import annotations

from dataclasses import dataclass

from egocrowd import consent
from egocrowd.accounts import service as accounts
from egocrowd.db.models import Role
from egocrowd.demo import CONSENT_TEXT, CONSENT_VERSION, KITCHEN_NOUNS, KITCHEN_VERBS, SCOPES

PASSWORD = "correct horse battery"


@dataclass
class Actor:
    id: int
    email: str
    role: str
    token: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


def make_user(db, role: str, *, email: str | None = None, org: str | None = None, country: str | None = "KE") -> Actor:
    email = email or f"{role}-{org or 'x'}-{id(object())}@example.org".replace(" ", "").lower()
    with db.transaction() as s:
        o = accounts.get_or_create_organization(s, org) if org else None
        u = accounts.create_user(s, email=email, password=PASSWORD, display_name=role, role=Role(role),
                                 organization=o, country=country)
        _, token = accounts.issue_token(s, u, "test")
        return Actor(u.id, u.email, role, token)


def publish_consent(db, version: str = CONSENT_VERSION, body: str = CONSENT_TEXT) -> None:
    with db.transaction() as s:
        consent.create_document(s, version=version, title="Recording consent", body=body, scopes=SCOPES)


def campaign_body(**over) -> dict:
    body = {"title": "Fold a T-shirt", "instructions": "Fold a T-shirt on a table with both hands in view.",
            "taxonomy": {"verbs": KITCHEN_VERBS, "nouns": KITCHEN_NOUNS}, "target_clips": 5, "pay_cents": 150,
            "expected_minutes": 4, "buyer_name": "Test Lab", "consent_version": CONSENT_VERSION}
    body.update(over)
    return body


def open_campaign(client, requester: Actor, **over) -> dict:
    r = client.post("/api/v1/campaigns", json=campaign_body(**over), headers=requester.headers)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = client.post(f"/api/v1/campaigns/{cid}/status", json={"status": "open"}, headers=requester.headers)
    assert r.status_code == 200, r.text
    return r.json()


def sign(client, worker: Actor, version: str = CONSENT_VERSION, scopes=("record_hands",)) -> dict:
    r = client.post("/api/v1/consents", json={"version": version, "scopes": list(scopes)}, headers=worker.headers)
    assert r.status_code == 201, r.text
    return r.json()
