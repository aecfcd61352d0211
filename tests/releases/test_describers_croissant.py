"""The Croissant describer, read back by MLCommons' own mlcroissant: the document validates with no
error and no warning, its record sets load (offline), every file it lists has the sha256 it claims,
and the RAI statements carry the release's own figures."""

from __future__ import annotations

import hashlib
import json
import socket
import sys
from pathlib import Path

import mlcroissant as mlc
import pytest

from egocrowd.releases.describers.croissant import CLIP_COLUMNS, check_files, validate
from tests.releases.describe_world import build_world, describe

# mlcroissant 1.1 builds an rdflib ConjunctiveGraph, which rdflib 7 deprecates: theirs to change
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")


@pytest.fixture
def world(tmp_path):
    w = build_world(tmp_path)
    w.carried = describe(w, "croissant")
    return w


def _doc(world) -> dict:
    return json.loads((world.root / "croissant" / "metadata.json").read_text())


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_mlcroissant_validates_it_with_no_error_or_warning(world, offline):
    path = world.root / "croissant" / "metadata.json"
    assert validate(path) == []
    dataset = mlc.Dataset(jsonld=str(path))
    assert not dataset.metadata.ctx.issues.errors
    assert not dataset.metadata.ctx.issues.warnings
    assert str(dataset.metadata.ctx.conforms_to.value) == "http://mlcommons.org/croissant/1.1"
    doc = _doc(world)
    assert doc["conformsTo"] == ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/RAI/1.0"]
    assert dataset.metadata.version == "2.0.0"
    assert dataset.metadata.name == "kitchen-chores"


def test_the_clips_record_set_loads_one_record_per_clip(world, offline):
    dataset = mlc.Dataset(jsonld=str(world.root / "croissant" / "metadata.json"))
    records = list(dataset.records("clips"))
    assert len(records) == len(world.spec.items)
    by_hash = {r["clips/clip_sha256"].decode(): r for r in records}
    assert set(by_hash) == {i.clip_sha256 for i in world.spec.items}
    for item in world.spec.items:
        r = by_hash[item.clip_sha256]
        assert r["clips/media_sha256"].decode() == item.media_sha256
        assert r["clips/duration_s"] == pytest.approx(item.duration_s)
        assert r["clips/campaign_id"] == item.campaign_id
        assert (r["clips/country"] or b"").decode() == (item.country or "")
        assert r["clips/spans"] == len(item.spans)
        assert r["clips/annotators"] == (3 if item.agreement else 0)
        labels = (r["clips/labels"] or b"").decode()
        assert (labels.split("|") if labels else []) == list(dict.fromkeys(s.label for s in item.spans))
        if item.agreement:
            assert r["clips/agreement_alpha"] == pytest.approx(item.agreement["alpha"])
        else:
            assert r["clips/agreement_alpha"] is None
        assert set(r["clips/consent_scopes"].decode().split("|")) == set(item.consent["scopes"])
    assert set(records[0]) == {f"clips/{c}" for c in CLIP_COLUMNS}


def test_the_spans_record_set_loads_every_span_and_refers_to_clips(world, offline):
    dataset = mlc.Dataset(jsonld=str(world.root / "croissant" / "metadata.json"))
    spans = list(dataset.records("spans"))
    expected = sorted(
        (i.clip_sha256, s.start_ms / 1000, s.end_ms / 1000, s.label) for i in world.spec.items for s in i.spans
    )
    got = sorted(
        (r["spans/clip_sha256"].decode(), r["spans/start_s"], r["spans/end_s"], r["spans/label"].decode())
        for r in spans
    )
    assert got == expected
    field = next(f for f in _doc(world)["recordSet"][1]["field"] if f["@id"] == "spans/clip_sha256")
    assert field["references"] == {"field": {"@id": "clips/clip_sha256"}}


def test_every_release_file_is_a_file_object_with_its_true_sha256(world):
    doc = _doc(world)
    objects = {o["@id"]: o for o in doc["distribution"] if o["@type"] == "cr:FileObject"}
    expected = {f.path for f in world.files} | {"croissant/clips.csv", "croissant/spans.csv"}
    assert set(objects) == expected
    for o in objects.values():
        target = (world.root / "croissant" / o["contentUrl"]).resolve()
        assert target == (world.root / o["@id"]).resolve()  # contentUrl: relative to metadata.json
        assert not Path(o["contentUrl"]).is_absolute()
        assert o["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
        assert o["contentSize"] == f"{target.stat().st_size} B"
    assert objects["webdataset/shard-000000.tar"]["encodingFormat"] == "application/x-tar"
    assert objects["lerobot/data/chunk-000/file-000.parquet"]["encodingFormat"] == "application/x-parquet"
    assert objects["lerobot/videos/observation.images.ego/chunk-000/file-000.mp4"]["encodingFormat"] == "video/mp4"
    sets = {o["@id"]: o for o in doc["distribution"] if o["@type"] == "cr:FileSet"}
    assert sets["tar-shards/mp4"]["containedIn"] == [{"@id": "webdataset/shard-000000.tar"}]
    assert sets["tar-shards/mp4"]["includes"] == "*.mp4"


def test_it_says_which_files_carry_which_clips(world):
    ids = [i.clip_id for i in world.spec.items]
    assert world.carried == {
        "croissant/clips.csv": ids,
        "croissant/spans.csv": [i.clip_id for i in world.spec.items if i.spans],
    }


def test_the_rai_statements_carry_the_releases_own_figures(world):
    meta = mlc.Dataset(jsonld=str(world.root / "croissant" / "metadata.json")).metadata
    spec = world.spec
    assert [d.date().isoformat() for d in meta.data_collection_timeframe] == ["2026-09-01", "2026-09-10"]
    assert "3 workers contributed 4 clips" in meta.data_collection
    assert "KE (2), IN (1)" in meta.data_collection
    assert "User-generated content data" in meta.data_collection_type
    assert meta.annotations_per_item.startswith("3 annotators per clip")
    assert "5 distinct pseudonymous annotators" in meta.annotations_per_item
    protocol = " ".join(meta.data_annotation_protocol)
    assert "verbs: open, close, pour, fold" in protocol and "3 annotators" in protocol and "gold rate 10%" in protocol
    assert "Dawid-Skene" in protocol
    assert "median over 3 clips): 0.7" in meta.data_annotation_analysis[0]
    personal = " ".join(meta.personal_sensitive_information)
    assert "Faces of bystanders are removed" in personal
    assert (
        "hid 6 face tracks and 1 text regions in 3 of 4 clips (faces: blur 3, fill 1; sound: drop 3, kept 1)"
        in personal
    )
    assert "audio_kept scope (1 clips)" in personal
    assert "centerface v2" in " ".join(meta.machine_annotation_tools)
    assert "The most common country is KE: 2 of 4 (50%)." in meta.data_biases
    uses = " ".join(meta.data_use_cases)
    assert "commercial use" in uses.split("Prohibited")[0]
    assert "passing the data on to others" in uses.split("Prohibited")[1]  # not granted by the licence
    plan = meta.data_release_maintenance_plan
    assert f"version {spec.version}" in plan and spec.previous["root_hash"] in plan
    assert "2 clips were added and 1 withdrawn" in plan and spec.changes["withdrawn"][0] in plan
    assert meta.cite_as.startswith("@misc{kitchen_chores_v2")
    assert meta.creators[0].name == "Robot Hands Lab"
    assert meta.date_published.date().isoformat() == "2026-10-11"
    doc = _doc(world)
    for key in (
        "rai:dataCollection",
        "rai:dataCollectionType",
        "rai:dataCollectionTimeframe",
        "rai:dataAnnotationProtocol",
        "rai:dataAnnotationPlatform",
        "rai:annotationsPerItem",
        "rai:personalSensitiveInformation",
        "rai:dataBiases",
        "rai:dataLimitations",
        "rai:dataUseCases",
        "rai:dataReleaseMaintenancePlan",
    ):
        assert doc[key], key
    assert doc["prov:wasRevisionOf"]["sha256"] == spec.previous["root_hash"]
    assert doc["license"]["name"] == "egocrowd data licence 1.0"
    assert [u["name"] for u in doc["usageInfo"]] == ["training", "commercial"]


def test_a_first_version_has_no_previous_and_still_validates(tmp_path, offline):
    w = build_world(tmp_path, previous=False, n=1)
    describe(w, "croissant")
    path = w.root / "croissant" / "metadata.json"
    assert validate(path) == []
    doc = json.loads(path.read_text())
    assert "This is the first version." in doc["rai:dataReleaseMaintenancePlan"]
    assert "prov:wasRevisionOf" not in doc
    assert len(list(mlc.Dataset(jsonld=str(path)).records("clips"))) == 1


def test_describing_twice_gives_the_same_bytes(world):
    first = {p: (world.root / p).read_bytes() for p in world.carried}
    first["meta"] = (world.root / "croissant" / "metadata.json").read_bytes()
    describe(world, "croissant")
    again = {p: (world.root / p).read_bytes() for p in world.carried}
    again["meta"] = (world.root / "croissant" / "metadata.json").read_bytes()
    assert again == first


def test_a_changed_file_is_named_and_mlcroissant_refuses_its_records(world):
    path = world.root / "croissant" / "metadata.json"
    shard = world.root / "webdataset" / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes() + b"\0")
    (world.root / "hf" / "data" / "train-00000-of-00001.parquet").unlink()
    problems = validate(path)
    assert any(p.startswith("webdataset/shard-000000.tar:") and "bytes" in p for p in problems)
    assert any(p.startswith("webdataset/shard-000000.tar:") and "sha256" in p for p in problems)
    assert any(p.startswith("hf/data/train-00000-of-00001.parquet:") and "missing" in p for p in problems)
    clips = world.root / "croissant" / "clips.csv"
    clips.write_text(clips.read_text().replace("KE", "FR"))
    assert any(p.startswith("croissant/clips.csv:") for p in check_files(path))
    with pytest.raises(Exception, match=r"Download\(croissant/clips.csv\)") as caught:
        list(mlc.Dataset(jsonld=str(path)).records("clips"))
    assert "Hash of downloaded file" in str(caught.value.__cause__ or caught.value.__context__)


def test_a_broken_document_gets_mlcroissants_errors(world):
    path = world.root / "croissant" / "metadata.json"
    doc = _doc(world)
    doc["recordSet"][0]["field"][0]["source"]["fileObject"]["@id"] = "croissant/nowhere.csv"
    path.write_text(json.dumps(doc))
    problems = validate(path)
    assert problems and any("nowhere.csv" in p for p in problems)


def test_without_mlcroissant_validate_says_so_and_still_checks_the_files(world, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlcroissant", None)  # import mlcroissant now raises ImportError
    path = world.root / "croissant" / "metadata.json"
    assert validate(path) == ["mlcroissant is not installed: Croissant validation skipped (pip install mlcroissant)"]
    (world.root / "lerobot" / "meta" / "info.json").write_text("{}")
    problems = validate(path)
    assert problems[0].startswith("lerobot/meta/info.json:") and problems[-1].startswith("mlcroissant is not installed")
