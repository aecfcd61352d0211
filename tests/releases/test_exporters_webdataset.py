"""The WebDataset exporter, read back with the webdataset package itself."""

from __future__ import annotations

import gc
import hashlib
import json
import tarfile

import pytest
import webdataset as wds

from egocrowd.errors import InvalidInput, MediaError
from egocrowd.releases.exporters._meta import clip_metadata
from egocrowd.releases.exporters.webdataset import export_webdataset
from egocrowd.releases.exporting import EXPORTERS, SpanLabel
from tests.releases.export_media import Counter, constant_clip, item, spec, variable_clip


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    d = tmp_path_factory.mktemp("wds-media")
    clips = [
        constant_clip(d / "a.mp4", 30, seed=1),
        variable_clip(d / "b.mp4", 30, seed=2),
        constant_clip(d / "c.mp4", 20, seed=3),
        constant_clip(d / "d.mp4", 25, seed=4),
        constant_clip(d / "e.mp4", 15, seed=5),
    ]
    spans = (SpanLabel(0, 500, "open", "drawer", 0.8), SpanLabel(500, 900, "take", "cup"))
    return spec([item(i + 1, c, spans=spans[: i % 3]) for i, c in enumerate(clips)])


def test_it_is_registered_with_a_format_version():
    assert EXPORTERS.get("webdataset").version == 1


# webdataset's reader leaves each shard's file for the garbage collector to close
@pytest.mark.filterwarnings("ignore:unclosed file <_io.BufferedReader name='[^']*[.]tar'")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_every_clip_reads_back_with_webdataset_byte_for_byte(release, tmp_path):
    out = tmp_path / "webdataset"
    progress = Counter()
    carried = export_webdataset(release, out, options={"maxcount": 2}, files=(), progress=progress)
    assert progress.done == 5
    shards = sorted(p.name for p in out.iterdir())
    assert shards == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert carried == {
        "webdataset/shard-000000.tar": [1, 2],
        "webdataset/shard-000001.tar": [3, 4],
        "webdataset/shard-000002.tar": [5],
    }
    by_key = {it.clip_id: it for it in release.items}
    urls = str(out / "shard-{000000..000002}.tar")
    seen = []
    for sample in wds.WebDataset(urls, shardshuffle=False):
        meta = json.loads(sample["json"])
        it = by_key[meta["clip_id"]]
        assert hashlib.sha256(sample["mp4"]).hexdigest() == it.media_sha256 == meta["media_sha256"]
        assert sample["__key__"] == meta["key"] == f"clip-{it.clip_id:08d}"
        assert sample["__url__"].endswith(next(k for k, v in carried.items() if it.clip_id in v).split("/")[-1])
        assert meta["clip_sha256"] == it.clip_sha256 and meta["campaign"] == {"id": 11, "title": "Folding laundry"}
        assert meta["release"] == {"id": release.release_id, "name": "kitchen-chores", "version": 1}
        assert meta["spans"] == [
            {
                "start_ms": s.start_ms,
                "end_ms": s.end_ms,
                "verb": s.verb,
                "noun": s.noun,
                "label": s.label,
                "confidence": s.confidence,
            }
            for s in it.spans
        ]
        assert meta["consent"]["scopes"] == ["commercial", "redistribution"]
        assert meta["worker"] == it.worker and meta["annotators"] == ["a-1", "a-2", "a-3"]
        assert meta["qc"] == {"checks": {"too_dark": "pass"}, "values": {"brightness": 0.5}}
        assert meta["agreement"]["alpha"] == 0.8 and meta["format_version"] == 1
        seen.append(it.clip_id)
    assert seen == [1, 2, 3, 4, 5]
    gc.collect()  # here, where the reader's unclosed shards are expected


def test_shards_close_at_the_size_limit_and_the_same_release_gives_the_same_bytes(release, tmp_path):
    sizes = [it.media_size for it in release.items]
    limit = sizes[0] + sizes[1]  # a shard closes once it holds this much
    first = export_webdataset(release, tmp_path / "one", options={"maxsize": limit}, files=(), progress=Counter())
    assert len(first) >= 2 and sorted(c for ids in first.values() for c in ids) == [1, 2, 3, 4, 5]
    for name, clip_ids in first.items():
        with tarfile.open(tmp_path / "one" / name.split("/")[-1]) as tar:
            members = tar.getnames()
        assert members == [f"clip-{c:08d}.{ext}" for c in clip_ids for ext in ("json", "mp4")]
    export_webdataset(release, tmp_path / "two", options={"maxsize": limit}, files=(), progress=Counter())
    for name in first:
        shard = name.split("/")[-1]
        assert (tmp_path / "one" / shard).read_bytes() == (tmp_path / "two" / shard).read_bytes()


@pytest.mark.parametrize("options", [{"maxcount": 2}, {"maxsize": 1}, {}])
def test_the_shards_are_byte_for_byte_what_webdatasets_own_writer_makes(release, tmp_path, options):
    """The videos are copied in the kernel after a header of our own; the tars stay exactly
    ShardWriter's (pax headers, the release's time, padding, the end of the archive)."""
    ours = export_webdataset(release, tmp_path / "ours", options=options, files=(), progress=Counter())
    (tmp_path / "theirs").mkdir()
    with wds.ShardWriter(
        str(tmp_path / "theirs" / "shard-%06d.tar"),
        maxcount=options.get("maxcount", 1000),
        maxsize=options.get("maxsize", 1e9),
        verbose=0,
        mtime=release.created_at.timestamp(),
        user="egocrowd",
        group="egocrowd",
    ) as sink:
        for it in release.items:
            sink.write({"__key__": f"clip-{it.clip_id:08d}", "mp4": it.media_path.read_bytes(),
                        "json": clip_metadata(release, it)})  # fmt: skip
    theirs = sorted(p.name for p in (tmp_path / "theirs").iterdir())
    assert sorted(name.split("/")[-1] for name in ours) == theirs
    for name in theirs:
        assert (tmp_path / "ours" / name).read_bytes() == (tmp_path / "theirs" / name).read_bytes()


def test_bad_options_and_a_missing_video_are_clear_errors(release, tmp_path):
    for options in ({"maxcount": 0}, {"maxcount": "3"}, {"maxsize": -1}):
        with pytest.raises(InvalidInput):
            export_webdataset(release, tmp_path / "bad", options=options, files=(), progress=Counter())
    gone = spec([item(1, constant_clip(tmp_path / "gone.mp4", 5))])
    (tmp_path / "gone.mp4").unlink()
    with pytest.raises(MediaError) as err:
        export_webdataset(gone, tmp_path / "missing", options={}, files=(), progress=Counter())
    assert err.value.code == "video.unreadable" and "clip 1" in err.value.message
