"""Who may call what: every /api/v1 endpoint × every role, the visibility rules behind the lists,
log-in redirects on the pages, and CSRF on cookie-authenticated writes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from egocrowd.demo import CONSENT_VERSION
from tests.platform.helpers import (
    API,
    PASSWORD,
    Actor,
    claim,
    create_campaign,
    make_user,
    open_campaign,
    publish_consent,
    sign,
)

ROLES = ("anonymous", "worker", "other_worker", "reviewer", "owner", "other_lab", "admin")


@dataclass
class World:
    """Two labs, two workers, a reviewer, an admin. Lab A has an open and a draft campaign, lab B a
    draft; the worker signed the consent and holds a slot in A's open campaign; so did nobody else."""

    actors: dict[str, Actor | None]
    ids: dict[str, int]


def build_world(client, db) -> World:
    publish_consent(db)
    _audit_key(client.app.state.settings)
    a = {
        "anonymous": None,
        "worker": make_user(db, "worker", country="KE"),
        "other_worker": make_user(db, "worker", country="KE"),
        "reviewer": make_user(db, "reviewer"),
        "owner": make_user(db, "requester", org="Lab A"),
        "other_lab": make_user(db, "requester", org="Lab B"),
        "admin": make_user(db, "admin"),
    }
    ids = {
        "open": open_campaign(client, a["owner"], target_clips=5)["id"],
        "draft": create_campaign(client, a["owner"], title="A's secret draft")["id"],
        "b_draft": create_campaign(client, a["other_lab"], title="B's secret draft")["id"],
    }
    ids["consent"] = sign(client, a["worker"])["id"]
    ids["other_consent"] = sign(client, a["other_worker"])["id"]
    r = claim(client, a["worker"], ids["open"])
    assert r.status_code == 201, r.text
    ids["assignment"] = r.json()["id"]
    r = client.get(f"{API}/me/tokens", headers=a["worker"].headers)
    ids["worker_token"] = r.json()["items"][0]["id"]
    ids["missing"] = 424242
    ids["country"] = "KE"  # a pay floor's key (#11)
    return World(a, ids)


def _audit_key(settings) -> None:
    """The platform's audit signing key, as `egocrowd audit keygen` leaves it (the embedded setup
    makes its own; a server setup answers 503 audit.signing_key_missing without one)."""
    from egocrowd.audit import checkpoints  # cryptography

    if not checkpoints.key_path(settings).exists():
        checkpoints.generate_key(checkpoints.key_path(settings))


@dataclass
class Row:
    method: str
    path: str  # {open}, {draft}, {assignment}, ... are filled from World.ids
    expect: dict[str, int]
    body: Any = None  # a dict, or a function of the role name
    note: str = ""
    id: str = field(default="")

    def __post_init__(self):
        self.id = f"{self.method} {self.path}"


def every(status: int, **over: int) -> dict[str, int]:
    """The same status for every role, except the ones named."""
    return {r: over.get(r, status) for r in ROLES}


def logged_in(status: int, **over: int) -> dict[str, int]:
    """401 for anonymous, ``status`` for every other role, except the ones named."""
    return every(status, anonymous=401, **over)


ADMIN_ONLY = logged_in(403, admin=200)
#: Only the owning lab and admins manage a campaign; whoever may not even see it gets 404, never 403
#: (a 403 would reveal that it exists).
MANAGE_OPEN = logged_in(403, owner=200, other_lab=404, admin=200)
MANAGE_DRAFT = logged_in(404, owner=200, admin=200)
LABELS_VIEW = logged_in(403, reviewer=200, owner=200, other_lab=404, admin=200)

MATRIX = [
    Row("GET", "/health", every(200)),
    Row("GET", "/me", logged_in(200)),
    Row("GET", "/me/tokens", logged_in(200)),
    Row("DELETE", "/me/tokens/{worker_token}", logged_in(404, worker=204), note="only your own tokens"),
    Row(
        "POST",
        "/auth/signup",
        every(202),
        body=lambda role: {"email": f"new-{role}@example.org", "password": PASSWORD, "country": "KE"},
    ),
    Row("POST", "/auth/token", every(201), body={"email": "{worker_email}", "password": PASSWORD}),
    Row("POST", "/auth/session", every(200), body={"email": "{worker_email}", "password": PASSWORD}),
    Row("POST", "/auth/logout", every(204)),
    Row("GET", "/me/sessions", logged_in(200)),
    Row("DELETE", "/me/sessions/{missing}", logged_in(404)),
    Row(
        "POST",
        "/me/password",
        logged_in(204),
        body={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    ),
    Row("POST", "/me/logout-everywhere", logged_in(204)),
    Row("POST", "/auth/password-reset", every(202), body={"email": "{worker_email}"}),
    Row("POST", "/auth/password-reset/confirm", every(410), body={"token": "not-a-link", "new_password": PASSWORD}),
    Row("POST", "/auth/verify-email", every(410), body={"token": "not-a-link"}),
    Row("POST", "/me/verify-email", logged_in(202)),
    Row("PATCH", "/me", logged_in(200), body={"display_name": "A new name", "country": "UG"}),
    Row("POST", "/me/export", logged_in(200)),
    Row(
        "DELETE",
        "/me",
        logged_in(204, owner=403, other_lab=403, admin=403),
        note="admins and a lab's last owner cannot delete themselves",
    ),
    Row("GET", "/me/notifications", logged_in(200)),
    Row("POST", "/me/notifications/read-all", logged_in(204)),
    Row("POST", "/me/notifications/{missing}/read", logged_in(404)),
    Row(
        "POST",
        "/users",
        ADMIN_ONLY | {"admin": 201},
        body=lambda role: {"email": f"made-by-{role}@example.org", "password": PASSWORD, "role": "reviewer"},
    ),
    Row("GET", "/consent-documents", every(200)),
    Row("GET", f"/consent-documents/{CONSENT_VERSION}", every(200)),
    Row(
        "POST",
        "/consent-documents",
        logged_in(403, admin=201),
        body=lambda role: {"family": "doc-" + role.replace("_", ""), "title": "T", "body": "Text", "scopes": []},
        note="labs only once an admin lets them (Lab A and B may not)",
    ),
    Row("PATCH", f"/consent-documents/{CONSENT_VERSION}", logged_in(403, admin=409), body={"title": "New"}),
    Row("POST", f"/consent-documents/{CONSENT_VERSION}/publish", logged_in(403, admin=409), note="already published"),
    Row("POST", f"/consent-documents/{CONSENT_VERSION}/retire", logged_in(403, admin=200)),
    Row("GET", f"/consent-documents/{CONSENT_VERSION}/diff", every(422), note="a first revision: nothing before it"),
    Row("GET", f"/consent-documents/{CONSENT_VERSION}/languages", every(200)),
    Row("GET", "/consents", logged_in(200)),
    Row(
        "POST",
        "/consents",
        logged_in(403, worker=409, other_worker=409),
        body={"version": CONSENT_VERSION, "scopes": ["record_hands"]},
        note="workers already signed",
    ),
    Row("POST", "/consents/{consent}/withdraw", logged_in(404, worker=200), note="only your own"),
    Row("GET", "/campaigns", logged_in(200)),
    Row(
        "POST",
        "/campaigns",
        logged_in(403, owner=201, other_lab=201, admin=422),
        body={},
        note="admins belong to no organization: campaign.organization_required",
    ),
    Row("GET", "/campaigns/{open}", logged_in(200, other_lab=404)),
    Row("GET", "/campaigns/{draft}", MANAGE_DRAFT),
    Row("GET", "/campaigns/{b_draft}", logged_in(404, other_lab=200, admin=200)),
    Row("PATCH", "/campaigns/{open}", MANAGE_OPEN, body={"title": "Fold a T-shirt, neatly"}),
    Row("PATCH", "/campaigns/{draft}", MANAGE_DRAFT, body={"title": "Still a draft"}),
    Row(
        "POST",
        "/campaigns/{open}/status",
        MANAGE_OPEN | {"admin": 409},
        body={"status": "paused"},
        note="the owner pauses it first; then pausing again is a bad transition",
    ),
    Row(
        "POST",
        "/campaigns/{draft}/status",
        MANAGE_DRAFT | {"owner": 409, "admin": 409},
        body={"status": "paused"},
        note="allowed to try, but a draft cannot be paused",
    ),
    Row("POST", "/campaigns/{open}/clone", logged_in(403, owner=201, other_lab=404, admin=201)),
    Row("POST", "/campaigns/{draft}/clone", logged_in(404, owner=201, admin=201)),
    Row("GET", "/campaigns/{open}/progress", MANAGE_OPEN),
    Row("GET", "/campaigns/{draft}/progress", MANAGE_DRAFT),
    Row("POST", "/campaigns/{open}/claim", logged_in(403, worker=201, other_worker=201, other_lab=404)),
    Row("POST", "/campaigns/{draft}/claim", logged_in(404, owner=403, admin=403)),
    Row("GET", "/assignments", logged_in(200)),
    Row("GET", "/assignments/{assignment}", logged_in(404, worker=200, owner=200, admin=200)),
    Row(
        "POST",
        "/assignments/{assignment}/release",
        logged_in(404, worker=200, owner=403, admin=403),
        note="managers see it but only the worker gives it back",
    ),
    Row("GET", "/audit", ADMIN_ONLY),
    Row("GET", "/clips", logged_in(200)),
    Row("GET", "/clips/{missing}", logged_in(404)),
    Row("GET", "/campaigns/{open}/qc", MANAGE_OPEN),
    Row("GET", "/campaigns/{draft}/qc", MANAGE_DRAFT),
    # the admin console: admins only; the others are refused before anything is looked up
    Row("GET", "/admin/users", ADMIN_ONLY),
    Row("GET", "/admin/users/{missing}", logged_in(403, admin=404)),
    Row("POST", "/admin/users/{missing}/role", logged_in(403, admin=404), body={"role": "worker"}),
    Row("POST", "/admin/users/{missing}/active", logged_in(403, admin=404), body={"active": False}),
    Row("GET", "/admin/organizations", ADMIN_ONLY),
    Row("POST", "/admin/organizations", ADMIN_ONLY | {"admin": 201}, body=lambda role: {"name": f"Lab of {role}"}),
    Row("GET", "/admin/organizations/{missing}", logged_in(403, admin=404)),
    Row("POST", "/admin/organizations/{missing}/members", logged_in(403, admin=404), body={"email": "{worker_email}"}),
    Row(
        "POST",
        "/admin/organizations/{missing}/members/{missing}/role",
        logged_in(403, admin=404),
        body={"org_role": "viewer"},
    ),
    Row("DELETE", "/admin/organizations/{missing}/members/{missing}", logged_in(403, admin=404)),
    Row("POST", "/admin/organizations/{missing}/consent-authoring", logged_in(403, admin=404), body={"allowed": True}),
    Row("GET", "/admin/overview", ADMIN_ONLY),
    Row("GET", "/admin/health", ADMIN_ONLY),
    Row("POST", "/admin/jobs/{missing}/retry", ADMIN_ONLY, note="nothing to retry: an empty list"),
    Row("POST", "/admin/jobs/requeue", ADMIN_ONLY, body={"stage": "qc"}),
    # De-identification (#9): media and the redaction review (tests/platform/test_media_access.py and
    # test_redaction.py hold the rules on real clips; here: nobody gets past the door wrongly)
    Row("GET", "/clips/{missing}/video", logged_in(404)),
    Row("GET", "/clips/{missing}/lineage", logged_in(404)),
    Row("GET", "/review/redaction", logged_in(403, reviewer=200, admin=200)),
    Row("GET", "/clips/{missing}/redactions", logged_in(403, reviewer=404, admin=404)),
    Row(
        "POST",
        "/clips/{missing}/redactions",
        logged_in(403, reviewer=404, admin=404),
        body={"kind": "false", "track_id": 1},
    ),
    Row("DELETE", "/clips/{missing}/redactions/{missing}", logged_in(403, reviewer=404, admin=404)),
    Row("POST", "/clips/{missing}/redactions/reviewed", logged_in(403, reviewer=404, admin=404)),
    Row("POST", "/clips/{missing}/rerender", logged_in(403, reviewer=404, admin=404)),
    # pay (#11): a lab's money is its own and the admins'; deposits and reversals are the admins'
    Row("GET", "/campaigns/{open}/budget", logged_in(404, owner=200, admin=200)),
    Row("GET", "/campaigns/{b_draft}/budget", logged_in(404, other_lab=200, admin=200)),
    Row(
        "POST",
        "/campaigns/{open}/deposits",
        logged_in(403, admin=201),
        body={"amount": "1.00", "currency": "USD", "reason": "wire", "idempotency_key": "k1"},
    ),
    Row("GET", "/me/earnings", logged_in(200)),
    Row("POST", "/clips/{missing}/pay-reversal", logged_in(403, admin=404), body={"reason": "Found after approval."}),
    # pay floors, rates and top-ups (#11): the tables are the admins'; a campaign's rates its lab's
    Row("GET", "/pay/floors", ADMIN_ONLY),
    Row(
        "PUT",
        "/pay/floors/{country}",
        ADMIN_ONLY,
        body={"currency": "KES", "hourly": "300.00", "source": "Kenya's minimum wage order"},
    ),
    Row("GET", "/pay/exchange-rates", ADMIN_ONLY),
    Row(
        "POST",
        "/pay/exchange-rates",
        logged_in(403, admin=201),
        body={"base": "USD", "quote": "KES", "rate": "129.50", "source": "central bank, 2026-11-30"},
    ),
    Row("GET", "/campaigns/{open}/pay-rates", logged_in(404, owner=200, admin=200)),
    Row("GET", "/campaigns/{b_draft}/pay-rates", logged_in(404, other_lab=200, admin=200)),
    Row("POST", "/campaigns/{open}/top-ups/{missing}/accept", logged_in(404), note="no top-up was proposed"),
    Row("POST", "/campaigns/{open}/top-ups/{missing}/decline", logged_in(404)),
    Row(
        "POST", "/admin/clips/{missing}/raw", logged_in(403, admin=404), body={"reason": "A complaint about this clip"}
    ),
    Row("GET", "/admin/clips/{missing}/raw", logged_in(403), note="no valid link: refused for admins too"),
    # labels (#10): labels.view is the campaign's lab, reviewers and admins; audits add owners/editors
    *(
        Row("GET", f"/campaigns/{{open}}{tail}", LABELS_VIEW)
        for tail in (
            "/labels.jsonl",
            "/labels.csv",
            "/labels/label-studio",
            "/labels/label-studio/config",
            "/labels/flags",
            "/labels/report",
        )
    ),
    Row("POST", "/campaigns/{open}/labels/import", every(422), note="format (a query parameter) is required"),
    Row("POST", "/campaigns/{open}/labels/audit", LABELS_VIEW, note="nothing to audit yet: no flags"),
    Row("POST", "/labels/flags/{missing}/resolve", logged_in(404)),
    Row(
        "GET",
        "/campaigns/{open}/labels/annotators/{missing}",
        logged_in(403, reviewer=404, owner=404, other_lab=404, admin=404),
        note="nobody answered yet",
    ),
    Row("GET", "/labels/me", logged_in(200)),
    Row("GET", "/audit/public-key", every(200), note="public: anyone compares an export's key with it"),
    Row("GET", "/content-credentials/ca.pem", every(404), note="public; none until `egocrowd c2pa init` or a release"),
    # review and appeals (#10): nothing waits for a decision in this world
    Row("GET", "/review/items", logged_in(403, reviewer=200, owner=200, other_lab=200, admin=200)),
    Row("GET", "/review/reasons", every(200), note="the reasons a clip may be rejected for are public"),
    Row("GET", "/review/items/{missing}", logged_in(404)),
    Row("POST", "/review/items/{missing}/decision", logged_in(404), body={"decision": "accept"}),
    Row("POST", "/clips/{missing}/appeal", logged_in(404), body={"comment": "The hands were in view all along."}),
    Row("PUT", "/review/items/{missing}/spans", logged_in(404), body={"spans": []}),
    # annotation (#10): nobody here is qualified, and no clip is accepted
    Row("POST", "/annotation-tasks/claim", logged_in(403), body={}),
    Row("GET", "/annotation-tasks", logged_in(200)),
    Row("GET", "/annotation-tasks/{missing}", logged_in(404)),
    Row("POST", "/annotation-tasks/{missing}/submit", logged_in(404), body={"spans": []}),
    Row("POST", "/annotation-tasks/{missing}/release", logged_in(404)),
    Row("GET", "/clips/{missing}/gold", logged_in(403, reviewer=404, admin=404)),
    Row("PUT", "/clips/{missing}/gold", logged_in(403, reviewer=404, admin=404), body={"spans": []}),
    Row("GET", "/users/{missing}/qualifications", logged_in(403, reviewer=200, admin=200)),
    Row("POST", "/qualifications", logged_in(403, reviewer=404, admin=404), body={"user_id": 424242}),
    Row("POST", "/qualifications/{missing}/revoke", logged_in(403, reviewer=404, admin=404)),
    # buyers (#12): requesters (any lab) and admins browse the catalog; no release exists in this world
    # (tests/releases/test_buyers.py holds the rules on a published one)
    Row("GET", "/catalog", logged_in(403, owner=200, other_lab=200, admin=200)),
    Row("GET", "/catalog/requests", logged_in(403, owner=200, other_lab=200, admin=200)),
    Row("GET", "/catalog/access", logged_in(403, owner=200, other_lab=200, admin=200)),
    Row("GET", "/catalog/{missing}", logged_in(403, owner=404, other_lab=404, admin=404)),
    Row("GET", "/catalog/{missing}/samples/{missing}", every(422), note="sample frames are numbered 0 to 2"),
    Row(
        "POST",
        "/catalog/{missing}/access",
        logged_in(403, owner=404, other_lab=404),
        body={"message": "Training a folding policy.", "accept_terms": True},
        note="owners and editors of a lab ask; admins belong to none",
    ),
    Row("GET", "/catalog/{missing}/access", logged_in(404)),
    Row("POST", "/catalog/access/{missing}/decision", logged_in(404), body={"decision": "grant"}),
    Row("POST", "/catalog/access/{missing}/revoke", logged_in(404)),
    Row("GET", "/catalog/{missing}/files", logged_in(403, owner=404, other_lab=404, admin=404)),
    Row("POST", "/catalog/{missing}/links", logged_in(403, owner=404, other_lab=404, admin=404), body={}),
    Row("GET", "/catalog/{missing}/download/{missing}", every(403), note="no valid link: refused for everyone"),
    Row("GET", "/catalog/{missing}/downloads", logged_in(404)),
    # withdrawals (#12): buyer labs read their notices (owners and editors acknowledge); admins remove clips
    Row("GET", "/withdrawals/feed", logged_in(403, owner=200, other_lab=200, admin=200)),
    Row(
        "POST",
        "/withdrawals/notices/{missing}/acknowledge",
        logged_in(403, owner=404, other_lab=404, admin=404),
        note="no notice: labs and admins find none; workers and reviewers read no notices at all",
    ),
    Row("GET", "/withdrawals", ADMIN_ONLY),
    Row(
        "POST",
        "/clips/{missing}/withdrawal",
        logged_in(403, admin=404),
        body={"comment": "Filmed a stranger's home without asking."},
    ),
    # releases (#12): a lab's owners and editors cut them (admins name the lab); its members read them.
    # Nothing is accepted in this world: a cut is release.empty; admins without organization_id: 422
    Row("POST", "/releases/preview", logged_in(403, owner=200, other_lab=200, admin=422), body={}),
    Row(
        "POST",
        "/releases",
        logged_in(403, owner=422, other_lab=422, admin=422),
        body={"name": "jars", "title": "Jars", "licence": {"name": "L", "uses": ["training"]}},
    ),
    Row("GET", "/releases", logged_in(403, owner=200, other_lab=200, admin=200)),
    Row("GET", "/releases/{missing}", logged_in(404)),
    Row("GET", "/releases/{missing}/manifest", logged_in(404)),
    # payouts (#11): each worker (and platform reviewer: they earn too) their own methods; batches
    # and the reversals' appeals are the admins'
    Row("GET", "/me/payout-methods", logged_in(403, worker=200, other_worker=200, reviewer=200)),
    Row(
        "POST",
        "/me/payout-methods",
        logged_in(403, worker=201, other_worker=201, reviewer=201),
        body={"provider": "paypal", "account_ref": "me@example.org", "currency": "USD"},
    ),
    Row("POST", "/me/payout-methods/{missing}/default", logged_in(403, worker=404, other_worker=404, reviewer=404)),
    Row("DELETE", "/me/payout-methods/{missing}", logged_in(403, worker=404, other_worker=404, reviewer=404)),
    Row("GET", "/me/payouts", logged_in(200), note="everyone reads their own (none here)"),
    Row("GET", "/payout-batches", ADMIN_ONLY),
    Row(
        "POST",
        "/payout-batches",
        logged_in(403, admin=409),
        body={"provider": "paypal", "currency": "USD"},
        note="nobody has a balance: payout.nothing_to_pay",
    ),
    Row("GET", "/payout-batches/{missing}", logged_in(403, admin=404)),
    Row("POST", "/payout-batches/{missing}/export", logged_in(403, admin=404)),
    Row("GET", "/payout-batches/{missing}/file", logged_in(403, admin=404)),
    Row("POST", "/payout-batches/{missing}/sent", logged_in(403, admin=404), body={"reference": "PP-1"}),
    Row("POST", "/payout-batches/{missing}/send", logged_in(403, admin=404)),
    Row("POST", "/payout-batches/{missing}/cancel", logged_in(403, admin=404), body={}),
    Row("POST", "/clips/{missing}/pay-appeal", logged_in(404), body={"comment": "It was my own work, all of it."}),
    Row("GET", "/pay-appeals/{missing}", logged_in(404)),
    Row(
        "POST",
        "/pay-appeals/{missing}/decision",
        logged_in(403, admin=404),
        body={"decision": "uphold", "comment": "x"},
    ),
    Row("GET", "/pay-reversals", ADMIN_ONLY),
    # Training (#15): anyone logged in reads; labs and admins author; workers practise and take tests
    Row("GET", "/training/me", logged_in(200)),
    Row("GET", "/training/qualifications", logged_in(200)),
    Row(
        "POST",
        "/training/qualifications",
        logged_in(403, owner=201, other_lab=201, admin=201),
        body=lambda role: {
            "slug": f"q-{role.replace('_', '-')}",
            "title": "Record a kitchen",
            "kind": "record",
            "items": [{"kind": "record", "use": "test"}],
        },
    ),
    Row("GET", "/training/qualifications/{missing}", logged_in(404)),
    Row("POST", "/training/items/{missing}/practice", logged_in(403, worker=404, other_worker=404), body={}),
    Row("POST", "/training/qualifications/{missing}/tests", logged_in(403, worker=404, other_worker=404)),
    Row("POST", "/training/tests/{missing}", logged_in(404), body={}),
    Row("GET", "/training/tests/{missing}", logged_in(404)),
    # Robot evaluations (#19): managers set up and read results; workers judge battles
    Row(
        "POST",
        "/campaigns/{open}/evaluation",
        logged_in(403, owner=201, other_lab=404, admin=409),
        body={},
        note="the owner made it: the admin's is one too many",
    ),
    Row("GET", "/campaigns/{open}/evaluation", logged_in(403, owner=404, other_lab=404, admin=404)),
    Row(
        "POST",
        "/campaigns/{open}/evaluation/policies",
        logged_in(403, owner=404, other_lab=404, admin=404),
        body={"name": "robot", "kind": "physical"},
    ),
    Row(
        "PUT",
        "/campaigns/{open}/evaluation/gold",
        logged_in(403, owner=404, other_lab=404, admin=404),
        body={"pairs": []},
    ),
    Row("GET", "/campaigns/{open}/evaluation/results", logged_in(403, owner=404, other_lab=404, admin=404)),
    Row("POST", "/campaigns/{open}/battles", logged_in(403, worker=404, other_worker=404)),
    Row("GET", "/battles", logged_in(403, worker=200, other_worker=200)),
    Row("GET", "/battles/{missing}", logged_in(404)),
    Row(
        "POST",
        "/battles/{missing}/verdict",
        logged_in(404),
        body={"verdict": "a", "reason": "it did", "instruction": "clear the table"},
    ),
    Row("POST", "/battles/{missing}/release", logged_in(404)),
    # long sessions (#19): the campaign has no evaluation; who may not look is told so first
    Row(
        "GET",
        "/campaigns/{open}/sessions",
        logged_in(403, worker=404, other_worker=404, owner=404, other_lab=404, admin=404),
    ),
    Row("GET", "/campaigns/{open}/sessions/scores", logged_in(403, owner=404, other_lab=404, admin=404)),
    Row("GET", "/campaigns/{open}/sessions/{missing}/log", logged_in(404)),
]


def _body(row: Row, role: str, world: World):
    body = row.body(role) if callable(row.body) else row.body
    if row.path == "/campaigns" and row.method == "POST":
        from tests.platform.helpers import campaign_body

        body = campaign_body()
    if isinstance(body, dict):
        body = {
            k: (v.format(worker_email=world.actors["worker"].email) if isinstance(v, str) else v)
            for k, v in body.items()
        }
    return body


def test_every_api_route_is_in_the_matrix(app):
    def shape(path):
        return re.sub(r"\{[a-z_]+\}", "{x}", path.replace(CONSENT_VERSION, "{version}"))

    routes = {
        (method.upper(), shape(path.removeprefix(API)))
        for path, ops in app.openapi()["paths"].items()
        if path.startswith(API + "/")
        for method in ops
    }
    assert len(routes) >= 20  # the enumeration itself works
    covered = {(row.method, shape(row.path)) for row in MATRIX}
    assert routes - covered == set(), "add these routes to MATRIX"


@pytest.mark.parametrize("row", MATRIX, ids=lambda r: r.id)
def test_endpoint_role_matrix(row: Row, client, db):
    world = build_world(client, db)
    got = {}
    for role in ROLES:  # in this order: a row's state changes (noted) depend on it
        actor = world.actors[role]
        r = client.request(
            row.method,
            API + row.path.format(**world.ids),
            json=_body(row, role, world),
            headers=actor.headers if actor else {},
        )
        got[role] = r.status_code
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["status"] == r.status_code
    assert got == row.expect, row.note


# --- what each role sees in lists ---------------------------------------------------------------
def _items(client, actor, path):
    r = client.get(API + path, headers=actor.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_lists_show_each_role_only_its_own(client, db):
    w = build_world(client, db)
    a, ids = w.actors, w.ids
    claim(client, a["other_worker"], ids["open"])

    def campaign_ids(role, q=""):
        return {c["id"] for c in _items(client, a[role], "/campaigns" + q)}

    assert campaign_ids("worker") == {ids["open"]}
    assert campaign_ids("worker", "?status=draft") == set()
    assert campaign_ids("reviewer") == {ids["open"]}
    assert campaign_ids("owner") == {ids["open"], ids["draft"]}
    assert campaign_ids("other_lab") == {ids["b_draft"]}
    assert campaign_ids("other_lab", "?status=open") == set()
    assert campaign_ids("admin") == {ids["open"], ids["draft"], ids["b_draft"]}

    # consents: own only (admins: all)
    for role, _other in (("worker", "other_worker"), ("other_worker", "worker")):
        mine = _items(client, a[role], "/consents")
        assert {c["user_id"] for c in mine} == {a[role].id}
    for role in ("reviewer", "owner", "other_lab"):
        assert _items(client, a[role], "/consents") == []
    assert {c["user_id"] for c in _items(client, a["admin"], "/consents")} == {a["worker"].id, a["other_worker"].id}

    # assignments: a worker sees their own, a lab those of its campaigns, other labs nothing
    for role in ("worker", "other_worker"):
        got = _items(client, a[role], "/assignments")
        assert len(got) == 1 and {x["worker_id"] for x in got} == {a[role].id}
    assert len(_items(client, a["owner"], "/assignments")) == 2
    assert _items(client, a["other_lab"], "/assignments") == []
    assert _items(client, a["other_lab"], f"/assignments?campaign_id={ids['open']}") == []
    assert _items(client, a["reviewer"], "/assignments") == []
    assert len(_items(client, a["admin"], "/assignments")) == 2
    # nor can a worker read another worker's assignment by id, or a lab another lab's progress
    other_assignment = _items(client, a["other_worker"], "/assignments")[0]["id"]
    assert client.get(f"{API}/assignments/{other_assignment}", headers=a["worker"].headers).status_code == 404
    assert client.get(f"{API}/campaigns/{ids['open']}/progress", headers=a["other_lab"].headers).status_code == 404


def test_anonymous_sees_nothing_private(client, db):
    w = build_world(client, db)
    for path in (
        "/me",
        "/consents",
        "/campaigns",
        f"/campaigns/{w.ids['open']}",
        "/assignments",
        f"/assignments/{w.ids['assignment']}",
        "/audit",
        f"/campaigns/{w.ids['open']}/progress",
    ):
        r = client.get(API + path)
        assert r.status_code == 401 and r.json()["code"] == "auth.required", path
        assert r.headers["www-authenticate"] == "Bearer"
    r = client.get(f"{API}/campaigns", headers={"Authorization": "Bearer egc_not-a-token"})
    assert r.status_code == 401 and r.json()["code"] == "auth.bad_token"


def test_revoked_token_stops_working(client, db):
    w = make_user(db, "worker")
    tid = client.get(f"{API}/me/tokens", headers=w.headers).json()["items"][0]["id"]
    assert client.delete(f"{API}/me/tokens/{tid}", headers=w.headers).status_code == 204
    r = client.get(f"{API}/me", headers=w.headers)
    assert r.status_code == 401 and r.json()["code"] == "auth.bad_token"


# --- pages: log-in redirects and CSRF -------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/campaigns",
        "/campaigns/1",
        "/campaigns/new",
        "/campaigns/1/edit",
        "/assignments",
        "/consents",
        f"/consent/{CONSENT_VERSION}",
        "/admin",
        "/admin/users",
        "/admin/users/1",
        "/admin/users/new",
        "/admin/organizations",
        "/admin/organizations/1",
        "/admin/audit",
        "/admin/health",
        "/lab",
        "/lab/tokens",
    ],
)
def test_pages_send_anonymous_visitors_to_login(client, path):
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next={path}"


def _csrf(client, path="/login") -> str:
    r = client.get(path)
    assert r.status_code == 200
    return re.search(r'name="csrf-token" content="([^"]+)"', r.text).group(1)


def page_login(client, actor: Actor) -> str:
    token = _csrf(client)
    r = client.post(
        "/login", data={"email": actor.email, "password": PASSWORD, "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    return _csrf(client, "/campaigns")  # a new token after log-in


def test_login_form_needs_csrf(client, db):
    w = make_user(db, "worker")
    _csrf(client)
    r = client.post("/login", data={"email": w.email, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403 and 'data-code="auth.csrf"' in r.text
    r = client.post("/login", data={"email": w.email, "password": "wrong password!", "csrf_token": _csrf(client)})
    assert r.status_code == 401 and 'data-code="auth.bad_credentials"' in r.text


def test_csrf_on_page_forms_and_cookie_api_writes(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    w = make_user(db, "worker")
    cid = open_campaign(client, lab)["id"]
    token = page_login(client, w)

    # page form: sign the consent without / with a wrong / with the right token
    for data in ({}, {"csrf_token": "forged"}):
        r = client.post(f"/consent/{CONSENT_VERSION}", data={"scopes": "record_hands", **data}, follow_redirects=False)
        assert r.status_code == 403 and 'data-code="auth.csrf"' in r.text
    r = client.post(
        f"/consent/{CONSENT_VERSION}", data={"scopes": "record_hands", "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303

    # API write with the session cookie: needs X-CSRF-Token
    r = client.post(f"{API}/campaigns/{cid}/claim")
    assert r.status_code == 403 and r.json()["code"] == "auth.csrf"
    r = client.post(f"{API}/campaigns/{cid}/claim", headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403 and r.json()["code"] == "auth.csrf"
    assert client.get(f"{API}/assignments").json()["items"] == []  # the refused writes changed nothing
    r = client.post(f"{API}/campaigns/{cid}/claim", headers={"X-CSRF-Token": token})
    assert r.status_code == 201, r.text
    # cookie reads need no token
    assert client.get(f"{API}/me").json()["id"] == w.id

    # a bearer token needs no CSRF token, even when a (foreign) session cookie rides along
    other = make_user(db, "worker")
    sign(client, other)
    r = client.post(f"{API}/campaigns/{cid}/claim", headers=other.headers)
    assert r.status_code == 201 and r.json()["worker_id"] == other.id

    # logging out also needs the token; afterwards the session is gone
    r = client.post("/logout", data={}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get(f"{API}/me").status_code == 401


@pytest.mark.parametrize(
    "nxt", ["//evil.example/", "/\\evil.example", "https://evil.example/", "/ok\nLocation: x", "javascript:alert(1)"]
)
def test_login_never_redirects_off_site(client, db, nxt):
    w = make_user(db, "worker")
    r = client.post(
        "/login",
        data={"email": w.email, "password": PASSWORD, "csrf_token": _csrf(client), "next": nxt},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/campaigns"
    r = client.get("/login", params={"next": nxt})
    assert 'name="next" value="/campaigns"' in r.text


def test_login_follows_a_local_next(client, db):
    w = make_user(db, "worker")
    r = client.post(
        "/login",
        data={"email": w.email, "password": PASSWORD, "csrf_token": _csrf(client), "next": "/consents?x=1"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/consents?x=1"


def test_pages_follow_the_same_rules(client, db):
    w = build_world(client, db)
    expect = {
        "worker": {"open": 200, "draft": 404, "b_draft": 404},
        "other_lab": {"open": 404, "draft": 404, "b_draft": 200},
        "owner": {"open": 200, "draft": 200, "b_draft": 404},
    }
    for role, cases in expect.items():
        client.cookies.clear()
        page_login(client, w.actors[role])
        for name, status in cases.items():
            r = client.get(f"/campaigns/{w.ids[name]}")
            assert r.status_code == status, (role, name)
        listed = client.get("/campaigns").text
        for name, status in cases.items():
            assert (f'data-id="{w.ids[name]}"' in listed) == (status == 200), (role, name)
    # the worker's own pages show only their own records
    client.cookies.clear()
    page_login(client, w.actors["other_worker"])
    assert "Nothing here yet" in client.get("/assignments").text
    assert client.get("/consents").text.count('class="card"') == 1
