"""Input no column can hold is refused as a class, not route by route (issue #16.7): a NUL character
in any string, an over-long string, an id beyond the 32-bit id columns, NaN or infinity in JSON. Every route of the API
(enumerated from its OpenAPI document, so new routes are covered) answers a 4xx problem document, on
SQLite and PostgreSQL alike."""

from __future__ import annotations

import copy
import itertools
import json

import pytest
import sqlalchemy as sa

from egocrowd.db.models import MAX_ID, Campaign
from egocrowd.demo import CONSENT_VERSION
from egocrowd.errors import InvalidInput
from tests.platform.helpers import (
    API,
    PASSWORD,
    assert_problem,
    campaign_body,
    create_campaign,
    make_user,
    publish_consent,
)

_seq = itertools.count(1)
NUL_CODES = {"input.nul_character", "validation.failed"}  # caught at the database edge, or by a pattern
BIG_IDS = (MAX_ID + 1, 2**63, 2**64)


def _example(schema: str, world) -> dict:
    """A valid body for each request schema; a new schema needs an example here (the test says so)."""
    n = next(_seq)
    return {
        "SignupIn": {"email": f"new-{n}@example.org", "password": PASSWORD, "display_name": "New", "country": "KE"},
        "LoginIn": {"email": world["worker"].email, "password": PASSWORD, "token_name": "cli"},
        "UserIn": {
            "email": f"user-{n}@example.org",
            "password": PASSWORD,
            "display_name": "Lab",
            "role": "requester",
            "organization": f"Org {n}",
        },
        "SignIn": {"version": CONSENT_VERSION, "scopes": ["record_hands"]},
        "DraftIn": {
            "family": f"doc-n{n}",
            "title": "A title",
            "body": "A text.",
            "scopes": [{"id": "ab", "label": "L"}],
        },
        "DraftPatch": {"title": "A new title"},
        "CampaignIn": campaign_body(),
        "CampaignPatch": {"title": "A new title", "instructions": "Fold it twice, hands in view."},
        "StatusIn": {"status": "paused"},
        "PasswordIn": {"current_password": PASSWORD, "new_password": f"a fresh passphrase {n}"},
        # the admin console
        "RoleIn": {"role": "reviewer"},
        "ActiveIn": {"active": True},
        "OrganizationIn": {"name": f"Org {n}"},
        "MemberIn": {"email": world["worker"].email, "org_role": "viewer"},
        "OrgRoleIn": {"org_role": "viewer"},
        "AuthoringIn": {"allowed": True},
        "RequeueIn": {"stage": "qc"},
        "EmailIn": {"email": f"someone-{n}@example.org"},
        "ResetIn": {"token": f"link-{n}", "new_password": f"a fresh passphrase {n}"},
        "TokenIn": {"token": f"link-{n}"},
        "ProfileIn": {"display_name": f"Name {n}", "country": "KE"},
        # de-identification (#9)
        "EditIn": {"kind": "add", "box": [0.1, 0.1, 0.3, 0.3], "frame_start": 0, "frame_end": 3, "note": "missed"},
        "RerenderIn": {"reason": "after review"},
        "RawIn": {"reason": "Checking a complaint about this clip"},
        # review, appeals, annotation, labels (#10)
        "DecisionIn": {"decision": "reject", "reason": "off_task", "comment": "Not the task"},
        "AppealIn": {"comment": "The hands were in view the whole time."},
        "ClaimIn": {"campaign_id": world["campaign_id"]},
        "AnswerIn": {"spans": [{"start_ms": 500, "end_ms": 1500, "verb": "open", "noun": "jar"}]},
        "SpansIn": {"spans": [{"start_ms": 500, "end_ms": 1500, "verb": "open", "noun": "jar"}]},
        "QualificationIn": {"user_id": world["worker"].id, "skill": "annotate", "note": "trained"},
        "AuditIn": {"min_rate": 0.3, "min_count": 3},
        "ResolveIn": {"note": "talked to the annotator"},
        # pay (#11)
        "DepositIn": {"amount": "1.00", "currency": "USD", "reason": "wire", "idempotency_key": f"k{n}"},
        "ReversalIn": {"reason": "Found after approval."},
        # buyers (#12): the catalog, access, download links
        "AccessRequestIn": {"message": "Training a folding policy.", "accept_terms": True},
        "AccessDecisionIn": {"decision": "grant", "note": "Welcome."},
        "AccessRevokeIn": {"note": "Licence breach."},
        "DownloadLinksIn": {"paths": ["manifest.json"]},
        # withdrawals (#12)
        "RemovalIn": {"comment": "Filmed a stranger's home without asking."},
        # releases (#12)
        "PreviewIn": {"selection": {"labels": ["open jar"], "countries": ["KE"]}, "licence_uses": ["training"]},
        "ReleaseIn": {
            "name": f"release-{n}",
            "title": "Jars",
            "description": "Hands opening jars.",
            "selection": {"labels": ["open jar"]},
            "licence": {"name": "Research", "terms": "Research only.", "uses": ["training"]},
        },
        # payouts and appeals of reversed pay (#11)
        "PayoutMethodIn": {"provider": "paypal", "account_ref": f"w{n}@example.org", "currency": "USD"},
        "PayoutBatchIn": {"provider": "paypal", "currency": "USD", "minimum": "5.00"},
        "BatchSentIn": {"reference": "PP-1"},
        "BatchCancelIn": {"reason": "the wire bounced"},
        "PayAppealIn": {"comment": "It was my own work, all of it."},
        "PayAppealDecisionIn": {"decision": "uphold", "comment": "The clip is a copy."},
        # pay floors and exchange rates (#11)
        "FloorIn": {"currency": "KES", "hourly": "300.00", "source": "Kenya's minimum wage order"},
        "RateIn": {"base": "USD", "quote": "KES", "rate": "129.50", "source": "central bank, 2026-11-30"},
        # training (#15)
        "TrainingQualificationIn": {
            "slug": f"rec-{n}",
            "title": "Record a kitchen",
            "description": "Hands in view.",
            "kind": "record",
            "items": [{"kind": "record", "use": "test", "prompt": "Open a jar."}],
        },
        "TrainingPracticeIn": {"spans": [{"start_ms": 500, "end_ms": 1500, "verb": "open", "noun": "jar"}]},
        "TrainingTestIn": {
            "answers": [{"item_id": 1, "spans": [{"start_ms": 0, "end_ms": 1, "verb": "open", "noun": "jar"}]}]
        },
        # robot evaluations (#19)
        "EvaluationIn": {"tasks": [{"task": "clear the table", "prompt": "Ask it"}], "environments": ["kitchen"]},
        "PolicyIn": {"name": f"robot-{n}", "kind": "http", "endpoint": "http://robots.test/a"},
        "GoldIn": {"pairs": [{"better": 1, "worse": 2}]},
        "VerdictIn": {"verdict": "a", "reason": "it did it", "instruction": "clear the table", "person": "me"},
    }[schema]


def _strings(value, path=()):
    """Paths to every string leaf of a JSON value."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _with_nul(body, path):
    return _with(body, path, lambda text: text[:1] + "\x00" + text[1:])


def _with(body, path, change):
    body = copy.deepcopy(body)
    *head, last = path
    target = body
    for key in head:
        target = target[key]
    target[last] = change(target[last])
    return body


LONG = "x" * 100_000  # longer than any text field allows, shorter than the body limit


@pytest.fixture
def world(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    cid = create_campaign(client, lab)["id"]
    return {
        "anonymous": None,
        "worker": make_user(db, "worker"),
        "requester": lab,
        "admin": make_user(db, "admin"),
        "campaign_id": cid,
    }


def _operations(client):
    for path, ops in client.get(f"{API}/openapi.json").json()["paths"].items():
        for method, op in ops.items():
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            yield method.upper(), path, op.get("parameters", []), ref.get("$ref", "").rsplit("/", 1)[-1] or None


def _is_int(param) -> bool:
    schema = param["schema"]
    return schema.get("type") == "integer" or any(s.get("type") == "integer" for s in schema.get("anyOf", ()))


def _is_str(param) -> bool:
    schema = param["schema"]
    return schema.get("type") == "string" or any(s.get("type") == "string" for s in schema.get("anyOf", ()))


def _cases(client, world):
    """(label, method, url, query, body, allowed codes) for every bad value in every operation."""
    for method, path, params, schema in _operations(client):
        base_path = {
            p["name"]: (world["campaign_id"] if _is_int(p) else CONSENT_VERSION) for p in params if p["in"] == "path"
        }
        for p in params:
            if _is_int(p) and p["name"].endswith("_id"):
                for big in BIG_IDS:
                    values = {**base_path, p["name"]: big} if p["in"] == "path" else base_path
                    query = {p["name"]: big} if p["in"] == "query" else {}
                    yield (
                        f"{p['name']}={big}",
                        method,
                        path.format(**values),
                        query,
                        schema,
                        None,
                        {"validation.failed"},
                    )
            if _is_str(p):
                values = {**base_path, p["name"]: "v%00"} if p["in"] == "path" else base_path
                query = {p["name"]: "v\x00"} if p["in"] == "query" else {}
                yield f"{p['name']} with NUL", method, path.format(**values), query, schema, None, NUL_CODES
        if schema:
            for leaf in _strings(_example(schema, world)):
                for kind, change, allowed in (
                    ("with NUL", None, NUL_CODES),
                    ("over-long", LONG, {"validation.failed"}),
                ):
                    yield (
                        f"{'.'.join(map(str, leaf))} {kind}",
                        method,
                        path.format(**base_path),
                        {},
                        schema,
                        (leaf, change),
                        allowed,
                    )


def test_every_route_refuses_nul_characters_and_ids_beyond_the_columns(client, world):
    def send(caller, method, url, query, schema, leaf):
        body = _example(schema, world) if schema else None
        if body is not None and leaf is not None:
            where, long_text = leaf
            body = _with_nul(body, where) if long_text is None else _with(body, where, lambda _: long_text)
        headers = {**(world[caller].headers if world[caller] else {}), "Content-Type": "application/json"}
        return client.request(
            method, url, params=query, headers=headers, content=json.dumps(body) if body is not None else None
        )

    cases = list(_cases(client, world))
    assert len(cases) > 40
    seen = set()
    for label, method, url, query, schema, leaf, allowed in cases:
        # Send it as every caller: whoever the route lets through reaches the database with the value.
        for caller in ("anonymous", "worker", "requester", "admin"):
            r = send(caller, method, url, query, schema, leaf)
            assert 400 <= r.status_code < 500, (method, url, label, caller, r.status_code, r.text)
            code = r.json()["code"]
            assert_problem(r, r.status_code, code)
            if r.status_code not in (401, 403, 404, 409):  # refused for who is asking, not for the value
                assert code in allowed, (method, url, label, caller, r.text)
                seen.add(code)
    # Both doors were reached: the input models, and the database edge (path and query strings).
    assert seen == {"validation.failed", "input.nul_character"}


@pytest.mark.parametrize("route", ["signup", "token"])
def test_anonymous_routes_refuse_nul(client, world, route):
    body = (
        {"email": "new@example.org", "password": PASSWORD, "display_name": "New\x00"}
        if route == "signup"
        else {"email": "who\x00@example.org", "password": PASSWORD}
    )
    r = client.post(f"{API}/auth/{route}", content=json.dumps(body), headers={"Content-Type": "application/json"})
    problem = assert_problem(r, 422, "validation.failed")
    assert "may not contain a NUL character" in problem["detail"]


def test_ids_beyond_the_id_columns_are_refused_before_the_database(client, world):
    for big in (MAX_ID + 1, 2**63):
        r = client.get(f"{API}/campaigns/{big}", headers=world["admin"].headers)
        assert_problem(r, 422, "validation.failed")
    r = client.get(f"{API}/campaigns/{MAX_ID}", headers=world["admin"].headers)
    assert_problem(r, 404, "campaign.not_found")


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_in_campaigns(client, world, bad):
    lab = world["requester"]
    body = json.dumps(campaign_body(requirements={"qc": {"dark_fail_frac": 0.2}}))
    r = client.post(
        f"{API}/campaigns",
        content=body.replace("0.2", bad),
        headers={**lab.headers, "Content-Type": "application/json"},
    )
    assert_problem(r, 422, "validation.failed")
    r = client.post(
        f"{API}/campaigns",
        content=body.replace('"expected_minutes": 4', f'"expected_minutes": {bad}'),
        headers={**lab.headers, "Content-Type": "application/json"},
    )
    assert_problem(r, 422, "validation.failed")
    r = client.patch(
        f"{API}/campaigns/{world['campaign_id']}",
        content=f'{{"requirements": {{"qc": {{"blur_sharpness": {bad}}}}}}}',
        headers={**lab.headers, "Content-Type": "application/json"},
    )
    assert_problem(r, 422, "validation.failed")


def test_the_database_edge_refuses_what_no_column_holds(db):
    """Below the routes: any code path that sends such a value gets InvalidInput, not a driver error."""
    with db.transaction() as s:
        c = Campaign(
            organization_id=1,
            created_by=1,
            title="t",
            instructions="i",
            target_clips=1,
            pay_cents=1,
            expected_minutes=1.0,
            buyer_name="b",
            consent_version="v",
            requirements={"x": float("nan")},
        )
        s.add(c)
        with pytest.raises(InvalidInput) as e:
            s.flush()
        assert e.value.code == "input.non_finite_number"
    for value, code in (("a\x00b", "input.nul_character"), (2**64, "input.out_of_range")):
        with db.transaction() as s, pytest.raises(InvalidInput) as e:
            s.execute(
                sa.select(Campaign.id).where(
                    Campaign.title == value if isinstance(value, str) else Campaign.id == value
                )
            )
        assert e.value.code == code
    if not db.is_sqlite:  # fits 64 bits, not the 32-bit column: PostgreSQL's 22003
        with db.transaction() as s, pytest.raises(InvalidInput) as e:
            s.execute(sa.text("INSERT INTO organizations (id, name, created_at) VALUES (:i, 'x', now())"), {"i": 2**40})
        assert e.value.code == "input.out_of_range"
