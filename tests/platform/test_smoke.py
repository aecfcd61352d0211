from tests.platform.helpers import make_user, open_campaign, publish_consent, sign


def test_worker_claims_a_slot(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    worker = make_user(db, "worker")
    c = open_campaign(client, lab)
    sign(client, worker)
    r = client.post(f"/api/v1/campaigns/{c['id']}/claim", headers=worker.headers)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "active"
    r = client.get(f"/api/v1/campaigns/{c['id']}/progress", headers=lab.headers)
    assert r.json()["active"] == 1 and r.json()["slots_left"] == 4
