"""The Hugging Face ``datasets`` exporter, loaded offline with the real ``datasets`` library."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from egocrowd.releases.exporters.hf import export_hf
from egocrowd.releases.exporting import EXPORTERS, SpanLabel
from tests.releases.export_media import Counter, constant_clip, item, spec, variable_clip


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """``datasets`` with no network and an empty cache of its own."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    return tmp_path / "hf-cache"


def test_it_is_registered_with_a_format_version():
    assert EXPORTERS.get("hf").version == 1


def test_load_dataset_reads_the_folder_offline(tmp_path, offline):
    import datasets

    spans = (SpanLabel(100, 600, "wipe", "table", 0.75), SpanLabel(700, 900, "rinse", "sponge"))
    clips = [constant_clip(tmp_path / "a.mp4", 20, seed=1), variable_clip(tmp_path / "b.mp4", 20, seed=2)]
    release = spec([item(7, clips[0], spans=spans), item(9, clips[1])])
    out = tmp_path / "release" / "hf"
    progress = Counter()
    carried = export_hf(release, out, options={}, files=(), progress=progress)
    assert progress.done == 2
    assert carried == {
        "hf/videos/clip-00000007.mp4": [7],
        "hf/videos/clip-00000009.mp4": [9],
        "hf/data/train-00000-of-00001.parquet": [7, 9],
    }
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(offline))
    assert ds.num_rows == 2
    rows = ds.to_list()
    for row, it in zip(rows, release.items, strict=True):
        video = out / row["video"]
        assert not row["video"].startswith("/") and video.is_file()
        assert hashlib.sha256(video.read_bytes()).hexdigest() == row["video_sha256"] == it.media_sha256
        assert row["clip_id"] == it.clip_id and row["clip_sha256"] == it.clip_sha256
        assert row["release_id"] == release.release_id and row["campaign_id"] == it.campaign_id
        assert row["consent_scopes"] == ["commercial", "redistribution"]
        assert row["annotators"] == ["a-1", "a-2", "a-3"] and row["task"] == it.task
        assert json.loads(row["qc"])["values"] == {"brightness": 0.5}
        assert json.loads(row["agreement"])["annotators"] == 3
        assert row["recorded_at"].replace(tzinfo=UTC) == datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert rows[0]["spans"] == [
        {"start_ms": 100, "end_ms": 600, "verb": "wipe", "noun": "table", "label": "wipe table", "confidence": 0.75},
        {
            "start_ms": 700,
            "end_ms": 900,
            "verb": "rinse",
            "noun": "sponge",
            "label": "rinse sponge",
            "confidence": None,
        },
    ]
    assert rows[1]["spans"] == []
    # spans are a list of structs, filterable in datasets itself
    assert isinstance(ds.features["spans"], datasets.List | list)
    wiped = ds.filter(lambda r: any(s["verb"] == "wipe" for s in r["spans"]))
    assert wiped["clip_id"] == [7]


def test_the_card_names_the_data_files(tmp_path):
    release = spec([item(1, constant_clip(tmp_path / "a.mp4", 5))])
    export_hf(release, tmp_path / "hf", options={}, files=(), progress=Counter())
    text = (tmp_path / "hf" / "README.md").read_text()
    header = text.split("---")[1]
    import yaml

    meta = yaml.safe_load(header)
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}
    ]
    assert meta["license_name"] == "egocrowd research licence" and meta["pretty_name"] == "Kitchen chores"
