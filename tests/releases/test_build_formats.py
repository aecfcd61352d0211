"""One release built with every built-in format, as a lab gets it, read back by the real readers:
LeRobot's layout rules (videos decoded), WebDataset, Hugging Face `datasets` offline, Croissant with
mlcroissant, each clip's PROV lineage, and the Content Credentials of every video (the clips' own
copies and LeRobot's joined chunks) validated against the platform's root."""

from __future__ import annotations

import json

import pytest

from egocrowd.db.models import Release, ReleaseStatus, User
from egocrowd.releases import builder, credentials, service
from egocrowd.releases.describers.croissant import validate
from egocrowd.releases.exporters.lerobot import check_layout
from egocrowd.releases.schema import ReleaseIn
from tests.releases.conftest import release_body

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


def test_every_builtin_format_reads_back_with_its_real_reader(release_lab, tmp_path, monkeypatch):
    lab = release_lab
    lab.clip(video=0, own_video=True, spans=[("open", "jar", 0, 500)])
    lab.clip(video=1, own_video=True, spans=[("twist", "lid", 100, 900)])
    with lab.db.transaction() as s:
        rid = service.create_release(s, s.get_one(User, lab.owner.id), ReleaseIn(**release_body(formats=None))).id
    r = builder.build_next(lab.db, lab.blobs, lab.settings, release_id=rid)
    assert r is not None and r.status is ReleaseStatus.published, r.error
    assert set(r.formats) >= {"lerobot", "webdataset", "hf", "croissant", "card", "provenance"}
    out = tmp_path / "copy"
    with lab.db.transaction(write=False) as s:
        service.export_release(s, lab.blobs, s.get_one(Release, rid), out)
    # LeRobot v3.0: the layout rules, every episode's frames decoded at their times (after signing)
    assert check_layout(out / "lerobot") == []
    # Croissant: every file's sha256 and mlcroissant's own reading
    assert [p for p in validate(out / "croissant" / "metadata.json") if not p.startswith("warning:")] == []
    # WebDataset and Hugging Face
    import webdataset as wds

    samples = list(wds.WebDataset(str(sorted((out / "webdataset").glob("*.tar"))[0]), shardshuffle=False))
    assert len(samples) == 2
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    rows = load_dataset(str(out / "hf"), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert len(rows) == 2
    # lineage of each clip
    index = json.loads((out / "provenance" / "index.json").read_text())
    assert len(index["clips"]) == 2
    # every video carries valid Content Credentials; LeRobot's chunks name the clips they join
    root = credentials.load_authority(credentials.authority_dir(lab.settings)).ca_pem
    videos = sorted(out.rglob("*.mp4"))
    assert videos and any("lerobot" in str(v) for v in videos)
    for video in videos:
        verdict = credentials.read_credentials(video, trust_pem=root)
        assert verdict.state == "Trusted", (video, verdict.failures)
    chunk = next(v for v in videos if "lerobot" in str(v))
    named = credentials.read_credentials(chunk, trust_pem=root).assertion("org.egocrowd.release")
    assert len(named["clips"]) == 2 and named["release_id"] == rid
