"""Cutting and building releases: versions and changes, the manifest and root hash, immutability,
interrupted builds, a blob missing, the orphan sweep."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta

import av
import pytest
import sqlalchemy as sa

from egocrowd import audit
from egocrowd.clips import sweep_orphan_blobs
from egocrowd.clock import utcnow
from egocrowd.db.models import (
    AuditCheckpoint,
    Clip,
    ClipStatus,
    Release,
    ReleaseClip,
    ReleaseFile,
    ReleaseStatus,
    User,
)
from egocrowd.errors import Conflict
from egocrowd.pay.money import Money
from egocrowd.releases import builder, credentials, service
from egocrowd.releases.lineage import pseudonym
from egocrowd.releases.schema import ReleaseIn
from tests.releases.conftest import release_body

pytestmark = pytest.mark.usefixtures("tiny_formats")


def cut(lab, **over) -> int:
    with lab.db.transaction() as s:
        return service.create_release(s, s.get_one(User, lab.owner.id), ReleaseIn(**release_body(**over))).id


def build(lab, release_id=None, **kw) -> Release:
    r = builder.build_next(lab.db, lab.blobs, lab.settings, release_id=release_id, **kw)
    assert r is not None
    return r


def test_a_release_is_built_published_and_verifiable(release_lab, tmp_path):
    lab = release_lab
    a, b = lab.clip(video=0), lab.clip(video=1, spans=[("twist", "lid", 100, 900)])
    rid = cut(lab)
    with lab.db.transaction(write=False) as s:
        r = s.get_one(Release, rid)
        assert (r.status, r.version, r.previous_id) == (ReleaseStatus.building, 1, None)
        assert r.formats == {"copy": {"version": 1}, "card": {"version": 1}}
        assert service.release_files(s, r) == []  # nothing served while building
    seen = []
    r = build(lab, rid, progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert r.status is ReleaseStatus.published and r.published_at is not None and r.attempts == 1
    assert ("sign", 2, 6) in seen and ("export:copy", 3, 6) in seen  # each clip signed, then exported
    assert seen[-2][0] == "store" and seen[-1] == ("published", 5, 5)  # 4 files + the manifest
    data = service.manifest_bytes(lab.blobs, r)
    assert hashlib.sha256(data).hexdigest() == r.root_hash == r.manifest_sha256
    m = json.loads(data)
    assert m["format_version"] == 1 and m["release"]["name"] == "jar-opening" and m["release"]["version"] == 1
    paths = [f["path"] for f in m["files"]]
    assert paths == sorted(paths) and "card/card.json" in paths and "copy/index.jsonl" in paths
    with lab.db.transaction(write=False) as s:
        rows = {f.path: f for f in service.release_files(s, s.get_one(Release, rid))}
        index_sha = rows["copy/index.jsonl"].sha256
        assert rows["manifest.json"].sha256 == r.root_hash and rows["manifest.json"].format == "manifest"
        for f in m["files"]:  # every file is a blob whose bytes hash to what the manifest says
            assert rows[f["path"]].sha256 == f["sha256"]
            with lab.blobs.open(f["sha256"]) as fh:
                assert hashlib.sha256(fh.read()).hexdigest() == f["sha256"]
        carried = {
            rc.clip_id: rc.files for rc in s.scalars(sa.select(ReleaseClip).where(ReleaseClip.release_id == rid))
        }
        assert all("copy/index.jsonl" in files for files in carried.values())
        assert any(p.startswith("copy/clips/") for p in carried[a])
        # the describer saw the exporter's files with their hashes
        with lab.blobs.open(rows["card/card.json"].sha256) as fh:
            card = json.load(fh)
        assert sorted(p for p, _ in card["files"]) == sorted(p for p in paths if p.startswith("copy/"))
        # a signed audit checkpoint covers the release's events, committed with it
        assert s.scalar(sa.select(AuditCheckpoint).where(AuditCheckpoint.reason == f"release:{rid}")) is not None
        assert [e.action for e in audit.events_for(s, "release", rid)] == ["release.created", "release.published"]
    # the released video is the de-identified one, and a real reader opens it
    mp4 = next(f for f in m["files"] if f["path"].startswith("copy/clips/") and f["path"].endswith(f"-{b}.mp4"))
    with av.open(str(lab.blobs.path(mp4["sha256"]))) as container:
        assert sum(1 for _ in container.decode(video=0)) == 10
    # ...signed: its Content Credentials validate against the platform's root and name this release
    authority = credentials.load_authority(credentials.authority_dir(lab.settings))
    verdict = credentials.read_credentials(lab.blobs.path(mp4["sha256"]), trust_pem=authority.ca_pem)
    assert verdict.state == "Trusted", verdict.failures
    named = verdict.assertion("org.egocrowd.release")
    with lab.db.transaction(write=False) as s:
        clip_b = s.get_one(Clip, b)
        assert (named["release_id"], named["clip_sha256"]) == (rid, clip_b.sha256)
        assert named["deidentified_sha256"] == clip_b.derived.sha256
    # pseudonyms, not ids; the probe without the raw file's path
    index = [json.loads(x) for x in lab.blobs.path(index_sha).read_text().splitlines()]
    assert {x["worker"] for x in index} == {pseudonym(lab.settings.resolved_secret_key(), "worker", lab.worker())}
    assert all("path" not in x["probe"] for x in index)
    assert all(x["consent"]["scopes"] == ["commercial_use", "record_hands", "redistribution"] for x in index)
    # composition
    assert r.stats["clips"] == 2 and [(c["country"], c["clips"]) for c in r.stats["countries"]] == [("KE", 2)]
    assert r.stats["labels"]["labels"] == {"open jar": 1, "twist lid": 1} and r.stats["labels"]["spans"] == 2
    pay = r.stats["pay"][0]  # 1.20 a clip; 300 s worked (330 claimed, 30 idle): 14.40 an hour
    assert (pay["currency"], pay["per_clip_median_minor"], pay["hourly_median_minor"]) == ("USD", 120, 1440)
    # exported offline and verified: the manifest's sha256 is the root hash, every file matches
    out = tmp_path / "export"
    with lab.db.transaction(write=False) as s:
        service.export_release(s, lab.blobs, s.get_one(Release, rid), out)
    assert builder.verify_folder(out, r.root_hash) == {"root_hash": r.root_hash, "files": len(m["files"])}
    (out / "copy" / "index.jsonl").write_text("tampered\n")
    with pytest.raises(Exception) as e:
        builder.verify_folder(out, r.root_hash)
    assert getattr(e.value, "code", None) == "release.verify_failed" and "copy/index.jsonl" in str(e.value)


def test_versions_and_changes(release_lab):
    lab = release_lab
    a, b, c = lab.clip(video=0), lab.clip(video=1), lab.clip(video=2)
    first = build(lab, cut(lab))
    assert first.changes["added"] == sorted(_sha(lab, a, b, c)) and first.changes["withdrawn"] == []
    # b's worker-side withdrawal, c simply not picked, d new
    with lab.db.transaction() as s:
        s.get_one(Clip, b).status = ClipStatus.withdrawn
    d = lab.clip(video=3)
    second_id = cut(lab, selection={"clip_ids": [a, d]})
    second = build(lab, second_id)
    assert (second.version, second.previous_id) == (2, first.id)
    assert second.changes == {"added": _sha(lab, d), "withdrawn": _sha(lab, b), "removed": _sha(lab, c)}
    m = service.manifest(lab.blobs, second)
    assert m["previous"] == {"id": first.id, "version": 1, "root_hash": first.root_hash}
    # another series of the same lab starts at 1
    assert build(lab, cut(lab, name="other-series")).version == 1


def test_withdrawals_since_the_previous_version_are_published(release_lab):
    from egocrowd.db.models import Withdrawal

    lab = release_lab
    lab.clip(video=0)
    b = lab.clip(video=1)
    build(lab, cut(lab))
    with lab.db.transaction() as s:
        clip = s.get_one(Clip, b)
        clip.status = ClipStatus.withdrawn
        s.add(
            Withdrawal(
                clip_id=b,
                reason="consent_withdrawn",
                clip_sha256=clip.sha256,
                withdrawn_at=utcnow(),
                purge_after=utcnow() + timedelta(days=30),
            )
        )
    second = build(lab, cut(lab))
    m = service.manifest(lab.blobs, second)
    assert [w["clip_sha256"] for w in m["withdrawals"]] == _sha(lab, b)
    assert m["changes"]["withdrawn"] == _sha(lab, b)


def _sha(lab, *ids) -> list[str]:
    with lab.db.transaction(write=False) as s:
        return sorted(s.get_one(Clip, i).sha256 for i in ids)


def test_published_releases_never_change(release_lab):
    lab = release_lab
    lab.clip()
    rid = build(lab, cut(lab)).id
    attempts = [
        lambda s: setattr(s.get_one(Release, rid), "title", "Renamed"),
        lambda s: setattr(s.get_one(Release, rid), "status", ReleaseStatus.failed),
        lambda s: setattr(
            s.scalars(sa.select(ReleaseFile).where(ReleaseFile.release_id == rid)).first(), "sha256", "0" * 64
        ),
        lambda s: s.delete(s.scalars(sa.select(ReleaseClip).where(ReleaseClip.release_id == rid)).first()),
        lambda s: s.add(ReleaseFile(release_id=rid, path="extra.txt", sha256="1" * 64, size=1, format="x")),
    ]
    for change in attempts:
        with pytest.raises(Conflict) as e, lab.db.transaction() as s:
            change(s)
            s.flush()
        assert e.value.code == "release.immutable"
    # behind the ORM's back (a bulk statement, a script, a psql session): the database refuses too
    behind = [
        sa.update(Release).where(Release.id == rid).values(title="Renamed"),
        sa.delete(Release).where(Release.id == rid),
        sa.update(ReleaseFile).where(ReleaseFile.release_id == rid).values(sha256="0" * 64),
        sa.delete(ReleaseClip).where(ReleaseClip.release_id == rid),
        sa.insert(ReleaseFile).values(release_id=rid, path="extra.txt", sha256="1" * 64, size=1, format="x"),
    ]
    for statement in behind:
        with pytest.raises(sa.exc.DBAPIError, match="release.immutable"), lab.db.engine.begin() as c:
            c.execute(statement)
    with lab.db.transaction(write=False) as s:
        r = s.get_one(Release, rid)
        assert r.title == "Jar opening" and r.status is ReleaseStatus.published
        assert len(service.release_files(s, r)) == 4


def test_an_interrupted_build_looks_unfinished_and_is_picked_up_again(release_lab):
    lab = release_lab
    lab.clip()
    rid = cut(lab, formats={"copy": {"boom": True}, "card": {}})
    with pytest.raises(KeyboardInterrupt):  # the process dies half-way through the export
        builder.build_next(lab.db, lab.blobs, lab.settings, release_id=rid)
    with lab.db.transaction(write=False) as s:
        r = s.get_one(Release, rid)
        assert r.status is ReleaseStatus.building and r.root_hash is None and r.attempts == 1
        assert service.release_files(s, r) == []
        with pytest.raises(Conflict) as e:
            service.require_published(r)
        assert e.value.code == "release.not_published"
    # its lease still runs: nobody else takes it
    assert builder.build_next(lab.db, lab.blobs, lab.settings) is None
    with lab.db.transaction() as s:  # time passes: the lease runs out
        s.get_one(Release, rid).lease_expires_at = utcnow() - timedelta(seconds=1)
        s.get_one(Release, rid).formats = {"copy": {"version": 1}, "card": {"version": 1}}  # building: editable
    r = build(lab)
    assert r.id == rid and r.status is ReleaseStatus.published and r.attempts == 2


def test_builds_interrupted_too_often_are_given_up(release_lab):
    lab = release_lab
    lab.clip()
    rid = cut(lab)
    with lab.db.transaction() as s:
        s.get_one(Release, rid).attempts = builder.MAX_ATTEMPTS
    assert builder.build_next(lab.db, lab.blobs, lab.settings) is None
    with lab.db.transaction(write=False) as s:
        r = s.get_one(Release, rid)
        assert r.status is ReleaseStatus.failed and r.error["code"] == "release.build_gave_up"


def test_a_blob_missing_fails_the_build_naming_the_clip(release_lab):
    lab = release_lab
    lab.clip()
    lost = lab.clip(own_video=True)
    rid = cut(lab)
    with lab.db.transaction(write=False) as s:
        lab.blobs.delete(s.get_one(Clip, lost).derived.sha256)
    r = build(lab, rid)
    assert r.status is ReleaseStatus.failed and r.root_hash is None
    assert r.error["code"] == "release.blob_missing" and r.error["clip_ids"] == [lost]
    assert str(lost) in r.error["message"]
    with lab.db.transaction(write=False) as s:
        assert service.release_files(s, s.get_one(Release, rid)) == []
        assert [e.action for e in audit.events_for(s, "release", rid)] == ["release.created", "release.failed"]


def test_a_clip_that_cannot_be_signed_fails_the_build_with_nothing_published(release_lab):
    """Clips are signed several at once: one the signing library refuses (here, bytes that are no
    video) fails the whole build plainly, the others' signed copies serve nobody."""
    lab = release_lab
    for video in range(3):
        lab.clip(video=video)
    broken = lab.clip(own_video=True)
    rid = cut(lab)
    with lab.db.transaction(write=False) as s:
        path = lab.blobs.local_path(s.get_one(Clip, broken).derived.sha256)
    path.chmod(0o644)
    path.write_bytes(b"not a video at all" * 100)
    r = build(lab, rid)
    assert r.status is ReleaseStatus.failed and r.root_hash is None
    assert r.error["code"] == "c2pa.signing_failed", r.error
    with lab.db.transaction(write=False) as s:
        assert service.release_files(s, s.get_one(Release, rid)) == []


def test_the_orphan_sweep_keeps_release_files(release_lab):
    lab = release_lab
    lab.clip()
    r = build(lab, cut(lab))
    stray = lab.blobs.put_bytes(b"nobody owns this")
    removed = sweep_orphan_blobs(lab.db, lab.blobs, grace=timedelta(0), now=time.time() + 10)
    assert removed == [stray.sha256]
    with lab.db.transaction(write=False) as s:
        for f in service.release_files(s, s.get_one(Release, r.id)):
            assert lab.blobs.exists(f.sha256), f.path
    assert lab.blobs.exists(r.root_hash)


def test_median_hourly_rate_is_exact():
    assert builder.median_hourly(Money(120, "USD"), [300, 200, 400]) == Money(1440, "USD")
    assert builder.median_hourly(Money(100, "JPY"), [3600 * 3]) == Money(33, "JPY")
    assert builder.median_hourly(Money(100, "USD"), [0, -5]) is None


def test_housekeeping_builds_waiting_releases_in_the_background(release_lab):
    from egocrowd.uploads import UploadStore
    from egocrowd.worker import housekeeping

    lab = release_lab
    lab.clip()
    rid = cut(lab)
    done = housekeeping(lab.db, lab.blobs, UploadStore(lab.settings.uploads_path), lab.settings)
    assert done["release_builds_started"] == 1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lab.db.transaction(write=False) as s:
            status = s.get_one(Release, rid).status
        if status is not ReleaseStatus.building:
            break
        time.sleep(0.1)
    assert status is ReleaseStatus.published
    # nothing waits any more: the next round starts nothing
    deadline = time.monotonic() + 10
    while builder._running.locked() and time.monotonic() < deadline:  # the thread finishes its loop
        time.sleep(0.05)
    assert (
        housekeeping(lab.db, lab.blobs, UploadStore(lab.settings.uploads_path), lab.settings)["release_builds_started"]
        == 0
    )


def test_lerobot_gets_the_frame_rate_of_the_settings_unless_the_release_says():
    settings = type("S", (), {"release_fps": 24})()
    assert builder.with_settings({"lerobot": {"version": "v3.0"}, "copy": {"version": 1}}, settings) == {
        "lerobot": {"version": "v3.0", "fps": 24},
        "copy": {"version": 1},
    }
    assert builder.with_settings({"lerobot": {"version": "v3.0", "fps": 15}}, settings)["lerobot"]["fps"] == 15


def test_a_clip_withdrawn_between_the_cut_and_the_build_is_left_out(release_lab):
    lab = release_lab
    keep, gone = lab.clip(video=0), lab.clip(video=1, country="UG")  # two workers
    rid = cut(lab)
    with lab.db.transaction() as s:  # the worker withdraws before the builder gets to it
        rec = s.get_one(Clip, gone).consent_record_id
        from egocrowd.db.models import ConsentRecord

        s.get_one(ConsentRecord, rec).withdrawn_at = utcnow()
    r = build(lab, rid)
    assert r.status is ReleaseStatus.published
    assert r.changes["added"] == _sha(lab, keep) and r.stats["clips"] == 1
    with lab.db.transaction(write=False) as s:
        assert [rc.clip_id for rc in s.scalars(sa.select(ReleaseClip).where(ReleaseClip.release_id == rid))] == [keep]
        dropped = [e for e in audit.events_for(s, "release", rid) if e.action == "release.clips_dropped"]
        assert dropped[0].payload["clips"] == [{"clip_id": gone, "reasons": ["consent_withdrawn"]}]
    assert service.manifest(lab.blobs, r)["release"]["clips"] == 1


def test_an_exporter_naming_files_it_did_not_write_fails_the_build(release_lab):
    from egocrowd.releases.exporting import EXPORTERS

    def liar(spec, out, *, options, files, progress):
        (out / "real.txt").write_text("x")
        return {"liar/not-written.tar": [spec.items[0].clip_id]}

    EXPORTERS.add("liar", liar, version=1)  # removed again by the tiny_formats fixture's scratch()
    lab = release_lab
    lab.clip()
    r = build(lab, cut(lab, formats={"liar": {}}))
    assert r.status is ReleaseStatus.failed and r.error["code"] == "release.bad_export"
    assert "liar/not-written.tar" in r.error["message"]


def test_no_signing_authority_means_no_release_on_a_server_and_one_made_on_the_embedded_setup(release_lab, tmp_path):
    """Nothing is published unsigned: a server setup without `egocrowd c2pa init` fails the build
    with a clear code; the embedded setup makes its own authority, as it does its other keys."""
    lab = release_lab
    lab.clip(video=0)
    rid = cut(lab)
    lab.settings.content_credentials_dir = tmp_path / "no-authority-here"
    r = build(lab, rid)
    if lab.settings.is_embedded:
        assert r.status is ReleaseStatus.published
        assert (tmp_path / "no-authority-here" / credentials.KEY_FILE).exists()
    else:
        assert r.status is ReleaseStatus.failed and r.error["code"] == "c2pa.no_authority", r.error
        with lab.db.transaction(write=False) as s:
            assert service.release_files(s, s.get_one(Release, rid)) == []
