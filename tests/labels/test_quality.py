"""An annotator's label quality (both backends): the reliability score orders careful annotators
above careless ones, mistakes are explained in plain words with the clip and the times, gold clips
stay unmarked, the audits' flags are shown to the annotator, and each person sees only their own."""

from __future__ import annotations

import re

from egocrowd.labels import audits, quality
from tests.labels.audit_world import labelled_campaign
from tests.platform.helpers import API, assert_problem, make_user


def test_scores_order_the_crowd_and_mistakes_are_explained(world, db):
    st = labelled_campaign(world, clips=90, gold=10, seed=5)
    planted, expected, given = st.crowd.planted[0]
    with db.transaction() as s:
        reports = {a.id: quality.annotator_report(s, st.user_of[a.id], st.campaign_id) for a in st.crowd.annotators}
    accuracy = {a.id: a.accuracy for a in st.crowd.annotators}
    careful = [a for a in accuracy if accuracy[a] > 0.8 and a != planted]
    careless = [a for a in accuracy if accuracy[a] < 0.5]
    assert careless and careful
    assert max(reports[a].score for a in careless) < min(reports[a].score for a in careful)
    r = reports[planted]
    assert r.answers > 0 and r.clips > 0 and r.tasks_submitted == r.clips
    assert 0 <= r.score <= 1 and r.gold_accuracy is not None and r.agreement is not None
    assert r.gold_spans > 0 and r.consensus_spans > 0
    assert r.summary[0].startswith(f'Where the action was "{expected}" you chose "{given}"')
    pattern = re.compile(
        rf'^In clip \d+ you labelled "{given}" from \d+\.\d s to \d+\.\d s; the agreed label there is "{expected}"\.$'
    )
    assert any(pattern.match(m) for m in r.mistakes), r.mistakes[:5]
    assert len(r.mistakes) <= quality.MAX_EXAMPLES <= r.mistakes_total
    text = " ".join(r.summary + r.mistakes).lower()
    assert "gold" not in text and "reference" not in text  # gold clips are never pointed out
    assert r.flags == []  # no audit yet


def test_flags_reach_the_annotators_page(world, db, client):
    st = labelled_campaign(world, clips=90, gold=10, seed=5)
    planted, expected, given = st.crowd.planted[0]
    with db.transaction() as s:
        audits.audit_campaign(s, st.campaign_id)
    me = client.get(f"{API}/labels/me", headers=st.annotators[planted].headers)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["annotator_id"] == st.user_of[planted]
    assert {(f["expected"], f["given"]) for f in body["flags"]} == {(expected, given)}
    assert all(f["annotator_id"] == st.user_of[planted] for f in body["flags"])
    other = next(a for a in st.annotators if a != planted)
    theirs = client.get(f"{API}/labels/me", headers=st.annotators[other].headers).json()
    assert theirs["annotator_id"] == st.user_of[other] and theirs["flags"] == []
    one = client.get(f"{API}/labels/me?campaign_id={st.campaign_id}", headers=st.annotators[planted].headers).json()
    assert one["answers"] == body["answers"] and one["campaign_id"] == st.campaign_id
    assert_problem(client.get(f"{API}/labels/me"), 401, "auth.required")


def test_someone_who_never_annotated_gets_an_empty_report(world, db):
    newcomer = make_user(db, "worker")
    with db.transaction() as s:
        r = quality.annotator_report(s, newcomer.id)
    assert (r.answers, r.score, r.mistakes, r.flags, r.summary) == (0, None, [], [], [])


def test_patterns_in_plain_words():
    from egocrowd.labels.aggregate import Comparison

    rows = [
        Comparison(1, 7, 0, "open door", "press button", 0.9),
        Comparison(2, 7, 1, "open door", "press button", 0.8),
        Comparison(3, 7, 2, "open door", "open door", 0.2),
        Comparison(3, 7, None, "pick cup", None, 0.0),
        Comparison(4, 7, 3, None, "wipe lid", 0.0),
    ]
    assert quality.patterns(rows) == [
        'Where the action was "open door" you chose "press button" 2 of 3 times.',
        "You marked 1 action that nobody else saw.",
        "You missed 1 action that others marked.",
        "Your start and end times are loose: 1 of 3 spans overlap the agreed ones by less than half.",
    ]


def test_the_lab_sees_one_annotators_matrices(world, db, client):
    st = labelled_campaign(world, clips=90, gold=10, seed=5)
    planted, expected, given = st.crowd.planted[0]
    uid = st.user_of[planted]
    url = f"{API}/campaigns/{st.campaign_id}/labels/annotators/{uid}"
    r = client.get(url, headers=world.lab.headers)
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["annotator_id"] == uid and view["answers"] > 0 and 0 <= view["score"] <= 1
    for basis, least in (("gold", 1), ("consensus", 3)):
        m = view["matrices"][basis]
        assert m["counts"][m["labels"].index(expected)][m["labels"].index(given)] >= least
    assert "mistakes" not in view and "email" not in r.text
    assert client.get(url, headers=st.reviewer.headers).status_code == 200
    assert_problem(client.get(url, headers=st.annotators[planted].headers), 403, "auth.forbidden")
    assert_problem(client.get(url, headers=make_user(db, "requester", org="Lab B").headers), 404, "campaign.not_found")
    assert_problem(
        client.get(f"{API}/campaigns/{st.campaign_id}/labels/annotators/{world.worker.id}", headers=world.lab.headers),
        404,
        "labels.annotator_not_found",
    )
