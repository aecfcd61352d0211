"""Label audits on a simulated campaign stored in the database (both backends): the flags are the
planted confusion and nothing else, a second audit raises nothing twice, the spans concerned go back
for re-annotation (clip state, round, audit events), the annotator and the lab are told, flags
resolve once, and only the campaign's lab and staff may run an audit."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from egocrowd import audit
from egocrowd.cli import main
from egocrowd.db.models import AuditEvent, Clip, LabelFlag, LabelStatus, Notification
from egocrowd.errors import Conflict
from egocrowd.labels import audits
from tests.labels.audit_world import labelled_campaign
from tests.platform.helpers import API, assert_problem, make_user


def _events(s, action: str) -> list[AuditEvent]:
    return audit.find(s, action=action)  # this transaction's own events too (written at commit)


def test_flags_are_the_planted_confusion_and_its_spans_go_back(world, db):
    st = labelled_campaign(world)
    (planted,) = st.crowd.planted  # annotator 1: "open door" labelled "press button" 40 % of the time
    with db.transaction() as s:
        flags = audits.audit_campaign(s, st.campaign_id)
        s.flush()
        found = {(st.sim_of_user.get(f.annotator_id), f.expected, f.given) for f in flags}
        assert found == {planted}, [(f.annotator_id, f.basis, f.expected, f.given, f.count, f.total) for f in flags]
        assert {f.basis for f in flags} == {"gold", "consensus"}
        for f in flags:
            assert f.count >= audits.MIN_COUNT and f.rate >= audits.MIN_RATE and f.total >= f.count
            assert abs(f.rate - f.count / f.total) < 1e-6
        reopened = _events(s, "clip.labels_reopened")
        assert reopened, "the flagged spans were sent back"
        sent_back = sum(len(e.payload["spans"]) for e in reopened)
        assert sent_back == sum(f.spans_reopened for f in flags) > 0
        for e in reopened:
            clip = s.get(Clip, int(e.entity_id))
            assert clip.label_status is LabelStatus.annotating
            assert clip.agreement["reopened_round"] == 2 and e.payload["round"] == 2
            assert not clip.is_gold  # gold clips keep their reference
            assert e.payload["flag_id"] in {f.id for f in flags}
        untouched = s.scalars(
            sa.select(Clip).where(
                Clip.campaign_id == st.campaign_id, Clip.id.not_in([int(e.entity_id) for e in reopened])
            )
        ).all()
        assert untouched and all(c.label_status is LabelStatus.done for c in untouched)
        assert len(_events(s, "labels.flag_raised")) == len(flags)
        (summary,) = _events(s, "labels.audited")
        assert summary.payload["flags_raised"] == [f.id for f in flags]
        assert summary.payload["matrices"]["consensus"]["labels"]
        labels = summary.payload["matrices"]["consensus"]["labels"]
        counts = summary.payload["matrices"]["consensus"]["counts"]
        assert counts[labels.index("open door")][labels.index("press button")] >= flags[0].count


def test_a_second_audit_raises_nothing_twice_and_reopens_nothing_again(world, db):
    st = labelled_campaign(world, clips=90, gold=10, seed=5)
    with db.transaction() as s:
        first = audits.audit_campaign(s, st.campaign_id)
        s.flush()
        first_ids = sorted(f.id for f in first)
    with db.transaction() as s:
        reopened_before = len(_events(s, "clip.labels_reopened"))
        again = audits.audit_campaign(s, st.campaign_id)
        s.flush()
        assert sorted(f.id for f in again) == first_ids  # the same open flags, left or updated
        assert s.scalar(sa.select(sa.func.count()).select_from(LabelFlag)) == len(first_ids)
        assert len(_events(s, "labels.flag_raised")) == len(first_ids)
        assert len(_events(s, "clip.labels_reopened")) == reopened_before  # nothing sent back twice
        assert len(_events(s, "labels.audited")) == 2


def test_the_annotator_and_the_lab_are_told(world, db):
    editor = make_user(db, "requester", org="Lab A", org_role="editor")
    viewer = make_user(db, "requester", org="Lab A", org_role="viewer")
    st = labelled_campaign(world, clips=90, gold=10, seed=5)
    with db.transaction() as s:
        flags = audits.audit_campaign(s, st.campaign_id)
        s.flush()
        assert flags
        flagged = {f.annotator_id for f in flags}
        notes = s.scalars(sa.select(Notification).order_by(Notification.id)).all()
        mine = [n for n in notes if n.kind == "labels.flag"]
        assert {n.user_id for n in mine} == flagged
        assert all(n.link == "/labels/me" and "open door" in n.subject for n in mine)
        lab = [n for n in notes if n.kind == "labels.flags"]
        assert {n.user_id for n in lab} == {world.lab.id, editor.id}  # owners and editors, not viewers
        assert viewer.id not in {n.user_id for n in notes}
        assert all(n.link == f"/campaigns/{st.campaign_id}/labels" for n in lab)
        others = set(st.user_of.values()) - flagged
        assert not [n for n in notes if n.user_id in others]
    with db.transaction() as s:
        audits.audit_campaign(s, st.campaign_id)
        assert s.scalar(sa.select(sa.func.count()).select_from(Notification)) == len(notes)  # nothing new to tell


def test_a_resolved_flag_stays_resolved(world, db, client):
    st = labelled_campaign(world, clips=90, gold=10, seed=5)
    r = client.post(f"{API}/campaigns/{st.campaign_id}/labels/audit", headers=world.lab.headers)
    assert r.status_code == 200, r.text
    flag = r.json()["flags"][0]
    r = client.post(f"{API}/labels/flags/{flag['id']}/resolve", json={"note": "retrained"}, headers=world.lab.headers)
    assert r.status_code == 200 and r.json()["resolved_at"]
    assert_problem(
        client.post(f"{API}/labels/flags/{flag['id']}/resolve", headers=world.lab.headers), 409, "labels.flag_resolved"
    )
    r = client.post(f"{API}/campaigns/{st.campaign_id}/labels/audit", headers=world.lab.headers)
    assert flag["id"] not in {f["id"] for f in r.json()["flags"]}
    with db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(LabelFlag)) == len(r.json()["flags"]) + 1
        (ev,) = _events(s, "labels.flag_resolved")
        assert ev.payload["note"] == "retrained" and ev.actor_id == world.lab.id
    listed = client.get(f"{API}/campaigns/{st.campaign_id}/labels/flags", headers=world.lab.headers).json()
    assert [f["id"] for f in listed if f["resolved_at"]] == [flag["id"]]


def test_only_the_lab_and_staff_audit(world, db, client):
    st = labelled_campaign(world, clips=20, gold=4)
    url = f"{API}/campaigns/{st.campaign_id}/labels/audit"
    assert_problem(client.post(url, headers=st.annotators[1].headers), 403, "auth.forbidden")
    other = make_user(db, "requester", org="Lab B")
    assert_problem(client.post(url, headers=other.headers), 404, "campaign.not_found")
    viewer = make_user(db, "requester", org="Lab A", org_role="viewer")
    assert_problem(client.post(url, headers=viewer.headers), 403, "auth.forbidden")
    assert client.get(f"{API}/campaigns/{st.campaign_id}/labels/flags", headers=viewer.headers).status_code == 200
    assert client.post(url, headers=st.reviewer.headers).status_code == 200
    assert_problem(
        client.post(f"{API}/labels/flags/999999/resolve", headers=world.lab.headers), 404, "labels.flag_not_found"
    )
    assert_problem(client.post(url, json={"min_rate": 2}, headers=world.lab.headers), 422, "validation.failed")


def test_resolve_refuses_twice_in_the_service(world, db):
    st = labelled_campaign(world, clips=90, gold=10, seed=5)
    with db.transaction() as s:
        flag = audits.audit_campaign(s, st.campaign_id)[0]
        s.flush()
        flag_id = flag.id
    from egocrowd.db.models import User

    with db.transaction() as s:
        lab = s.get(User, world.lab.id)
        audits.resolve_flag(s, lab, flag_id)
    with db.transaction() as s:
        lab = s.get(User, world.lab.id)
        try:
            audits.resolve_flag(s, lab, flag_id)
        except Conflict as exc:
            assert exc.code == "labels.flag_resolved"
        else:
            raise AssertionError("resolved twice")


def test_cli_audit(world, db, tmp_path):
    st = labelled_campaign(world, clips=90, gold=10, seed=5)
    env = {"EGOCROWD_DATA_DIR": str(tmp_path / "data"), "EGOCROWD_CONFIG": None, "EGOCROWD_DATABASE_URL": db.url}
    r = CliRunner().invoke(main, ["labels", "audit", "--campaign", str(st.campaign_id)], env=env)
    assert r.exit_code == 0, r.output
    assert '"open door" labelled "press button"' in r.output and "spans sent back" in r.output
    r2 = CliRunner().invoke(main, ["labels", "audit", "--campaign", str(st.campaign_id)], env=env)
    assert r2.exit_code == 0 and r2.output.splitlines()[-1] == r.output.splitlines()[-1]
    with db.transaction() as s:
        assert all(e.actor_id is None for e in _events(s, "labels.flag_raised"))
    r = CliRunner().invoke(main, ["labels", "audit", "--campaign", "999999"], env=env)
    assert r.exit_code == 1 and "campaign.not_found" in r.output


def test_two_audits_at_once_raise_each_flag_once(world, db):
    """The campaign row is locked for an audit: the second waits, then finds the first one's flags."""
    import threading

    st = labelled_campaign(world, clips=90, gold=10, seed=5)
    barrier, errors, counts = threading.Barrier(2), [], []

    def run():
        try:
            barrier.wait(timeout=30)
            with db.transaction() as s:
                counts.append(len(audits.audit_campaign(s, st.campaign_id)))
        except Exception as exc:  # reported below, with the thread's cause
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with db.transaction() as s:
        flags = s.scalars(sa.select(LabelFlag)).all()
        keys = [(f.annotator_id, f.basis, f.expected, f.given) for f in flags]
        assert len(keys) == len(set(keys)) == counts[0] == counts[1] > 0
        assert len(_events(s, "labels.flag_raised")) == len(flags)
        reopened = [int(e.entity_id) for e in _events(s, "clip.labels_reopened")]
        assert len(reopened) == len(set(reopened))  # no clip sent back twice
