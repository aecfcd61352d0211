"""Content Credentials (C2PA) on released video, read back with the real c2pa reader: a local
signing authority made with one call, a signed file that validates as Trusted against its root and
says how it was captured, de-identified and released and what its consent allows; any modified byte
makes it Invalid; without an authority nothing is signed."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pytest

from egocrowd.errors import Conflict
from egocrowd.media.testmedia import write_video
from egocrowd.releases import credentials as cc
from egocrowd.releases.exporting import ReleaseItem
from egocrowd.settings import Settings

pytest.importorskip("c2pa", reason="c2pa-python is needed")


@pytest.fixture(scope="module")
def authority_and_video(tmp_path_factory) -> tuple[cc.Authority, Path, Path]:
    root = tmp_path_factory.mktemp("c2pa")
    authority = cc.init_authority(root / "authority", organization="Test platform")
    video = write_video(root / "clip.mp4", [np.full((64, 96, 3), 20 + 5 * i, np.uint8) for i in range(20)], 10)
    return authority, root / "authority", video


def _item(scopes=("record_hands",), sha="a") -> ReleaseItem:
    return ReleaseItem(
        clip_id=1, clip_sha256=sha * 64, media_path=Path("clip.mp4"), media_sha256="b" * 64, media_size=1,
        campaign_id=1, campaign_title="Jars", task="Open a jar", worker="worker-0", country="KE",
        recorded_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC), duration_s=2.0, width=96, height=64, fps=10.0,
        consent={"version": "worker-3", "sha256": "c" * 64, "scopes": list(scopes)},
        deid={"stage_version": "deid-3", "params": {"detection": {"faces": {"model": "centerface"}}}},
    )  # fmt: skip


RELEASE = {"id": 7, "name": "jars", "version": 2, "organization": "Lab A", "created_at": datetime.now(UTC)}


def _manifest(scopes=("record_hands",), uses=("training",)) -> dict:
    return cc.manifest_for(
        [_item(scopes)], title="clip.mp4", release=RELEASE, licence={"name": "r", "uses": list(uses)}
    )


def test_a_signed_clip_is_trusted_against_the_published_root_and_says_what_happened(authority_and_video, tmp_path):
    authority, directory, video = authority_and_video
    signed = tmp_path / "signed.mp4"
    cc.sign_video(video, signed, _manifest(), authority)
    verdict = cc.read_credentials(signed, trust_pem=authority.ca_pem)
    assert verdict.state == "Trusted", verdict.failures
    assert cc.read_credentials(signed).state == "Valid"  # intact; this reader just does not trust the root
    actions = [a["action"] for a in verdict.assertion("c2pa.actions")["actions"]]
    assert actions == ["c2pa.created", "c2pa.edited", "c2pa.published"]
    created = verdict.assertion("c2pa.actions")["actions"][0]
    assert created["digitalSourceType"].endswith("/digitalCapture")
    release = verdict.assertion("org.egocrowd.release")
    assert (release["release_id"], release["clip_sha256"], release["consent_document_sha256"]) == (
        7,
        "a" * 64,
        "c" * 64,
    )
    mining = verdict.assertion("cawg.training-mining")["entries"]
    # no commercial_use scope: training allowed only non-commercially; no generative training in the licence
    assert mining["cawg.ai_training"] == {
        "use": "constrained",
        "constraint_info": "non-commercial use only (the worker's consent)",
    }
    assert mining["cawg.ai_generative_training"] == {"use": "notAllowed"}
    # the video still plays: same frames
    with av.open(str(signed)) as a, av.open(str(video)) as b:
        assert sum(1 for _ in a.decode(video=0)) == sum(1 for _ in b.decode(video=0)) == 20
    # the key is the signer's alone
    assert stat.S_IMODE(os.stat(directory / cc.KEY_FILE).st_mode) == 0o600
    assert len(authority.fingerprint) == 64


def test_any_modified_byte_makes_the_file_invalid(authority_and_video, tmp_path):
    authority, _, video = authority_and_video
    signed = tmp_path / "signed.mp4"
    cc.sign_video(video, signed, _manifest(), authority)
    data = bytearray(signed.read_bytes())
    for where in (len(data) - 50, len(data) // 2):
        tampered = tmp_path / f"tampered-{where}.mp4"
        changed = bytearray(data)
        changed[where] ^= 0xFF
        tampered.write_bytes(changed)
        verdict = cc.read_credentials(tampered, trust_pem=authority.ca_pem)
        assert verdict.state == "Invalid", (where, verdict)
    assert cc.read_credentials(video).state is None  # never signed: no manifest at all


def test_a_file_joined_from_several_clips_says_so_and_the_strictest_consent_decides(authority_and_video, tmp_path):
    authority, _, video = authority_and_video
    joined = cc.manifest_for(
        [_item(("record_hands", "commercial_use"), "a"), _item(("record_hands",), "d")],
        title="file-000.mp4",
        release=RELEASE,
        licence={"name": "r", "uses": ["training", "commercial"]},
    )
    signed = tmp_path / "chunk.mp4"
    cc.sign_video(video, signed, joined, authority)
    verdict = cc.read_credentials(signed, trust_pem=authority.ca_pem)
    assert verdict.state == "Trusted"
    created = verdict.assertion("c2pa.actions")["actions"][0]
    assert created["digitalSourceType"].endswith("/compositeCapture")
    assert [c["clip_sha256"] for c in verdict.assertion("org.egocrowd.release")["clips"]] == ["a" * 64, "d" * 64]
    assert verdict.assertion("cawg.training-mining")["entries"]["cawg.ai_training"]["use"] == "constrained"


def test_consent_scopes_and_licence_decide_the_training_and_mining_assertion():
    full = cc.training_mining(["record_hands", "commercial_use"], ["training", "commercial", "generative_training"])
    assert {k: v["use"] for k, v in full["entries"].items()} == dict.fromkeys(full["entries"], "allowed")
    none = cc.training_mining(["commercial_use"], ["redistribution"])
    assert {v["use"] for v in none["entries"].values()} == {"notAllowed"}


def test_one_authority_only_and_none_means_nothing_is_signed(authority_and_video, tmp_path):
    _, directory, _ = authority_and_video
    with pytest.raises(Conflict) as e:
        cc.init_authority(directory)
    assert e.value.code == "c2pa.authority_exists"
    server = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://x@127.0.0.1/none")
    with pytest.raises(cc.NoAuthority) as e:
        cc.authority(server)
    assert e.value.code == "c2pa.no_authority" and e.value.status == 503
    embedded = Settings(data_dir=tmp_path / "embedded")
    made = cc.authority(embedded)  # the embedded setup makes its own on first use, once
    assert cc.authority(embedded) == made


def test_the_command_line_makes_the_authority_and_checks_files_and_the_root_is_published(client, settings, tmp_path):
    from click.testing import CliRunner

    from egocrowd.cli import main

    assert client.get("/api/v1/content-credentials/ca.pem").json()["code"] == "c2pa.no_authority"
    runner = CliRunner()
    env = {
        "EGOCROWD_CONTENT_CREDENTIALS_DIR": str(settings.data_dir / "cc"),
        "EGOCROWD_DATA_DIR": str(settings.data_dir),
    }
    made = runner.invoke(main, ["c2pa", "init", "--organization", "Test platform"], env=env)
    assert made.exit_code == 0, made.output
    again = runner.invoke(main, ["c2pa", "init"], env=env)
    assert again.exit_code != 0 and "c2pa.authority_exists" in again.output
    settings.content_credentials_dir = settings.data_dir / "cc"
    r = client.get("/api/v1/content-credentials/ca.pem")
    assert r.status_code == 200 and r.content.startswith(b"-----BEGIN CERTIFICATE-----")
    authority = cc.load_authority(settings.data_dir / "cc")
    assert r.headers["egocrowd-fingerprint"] == authority.fingerprint and authority.fingerprint in made.output

    video = write_video(tmp_path / "v.mp4", [np.full((64, 64, 3), 9 * i, np.uint8) for i in range(10)], 10)
    signed = tmp_path / "signed.mp4"
    cc.sign_video(video, signed, _manifest(), authority)
    ok = runner.invoke(main, ["c2pa", "verify", str(signed)], env=env)
    assert ok.exit_code == 0 and "Trusted" in ok.output and "c2pa.edited" in ok.output
    assert runner.invoke(main, ["c2pa", "verify", str(video)], env=env).exit_code == 2
    changed = bytearray(signed.read_bytes())
    changed[-40] ^= 0x01
    (tmp_path / "bad.mp4").write_bytes(changed)
    bad = runner.invoke(main, ["c2pa", "verify", str(tmp_path / "bad.mp4")], env=env)
    assert bad.exit_code == 1 and "Invalid" in bad.output


def test_direct_signing_is_used_here_and_gives_what_the_stream_api_gives(authority_and_video, tmp_path):
    """The fast path (the library reads and writes the files itself, on their descriptors) is the
    one this c2pa-python gets; its file validates like the public API's, and the returned hash
    and size are the file's own."""
    authority, _, video = authority_and_video
    assert cc._direct_signing() is not None  # a c2pa-python upgrade that breaks it fails here, not silently
    verdicts = {}
    for direct in (True, False):
        signed = tmp_path / f"signed-{direct}.mp4"
        sha, size = cc.sign_video(video, signed, _manifest(), authority, direct=direct)
        data = signed.read_bytes()
        assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
        assert data != video.read_bytes() and size > video.stat().st_size
        verdicts[direct] = cc.read_credentials(signed, trust_pem=authority.ca_pem)
        assert verdicts[direct].state == "Trusted", verdicts[direct].failures
        with av.open(str(signed)) as a:
            assert sum(1 for _ in a.decode(video=0)) == 20
    fast, public = verdicts[True], verdicts[False]
    for label in ("c2pa.actions", "cawg.training-mining", "org.egocrowd.release"):
        assert fast.assertion(label) == public.assertion(label)


def test_clips_signed_directly_on_several_threads_each_carry_their_own_manifest(authority_and_video, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    authority, _, video = authority_and_video
    clips = []
    for i in range(6):  # distinct bytes each, so that a mix-up of streams between threads shows
        clips.append(
            write_video(tmp_path / f"c{i}.mp4", [np.full((48, 64, 3), 7 * i + k, np.uint8) for k in range(5 + i)], 10)
        )
    with cc.signers_of(authority) as signer, ThreadPoolExecutor(3) as pool:

        def sign(i: int) -> tuple[str, int]:
            manifest = cc.manifest_for(
                [_item(sha="0123456789"[i])], title=f"c{i}.mp4", release=RELEASE, licence={"name": "r"}
            )
            return cc.sign_video(clips[i], tmp_path / f"s{i}.mp4", manifest, authority, signer=signer(), direct=True)

        results = list(pool.map(sign, range(6)))
    for i, (sha, size) in enumerate(results):
        signed = tmp_path / f"s{i}.mp4"
        assert sha == hashlib.sha256(signed.read_bytes()).hexdigest() and size == signed.stat().st_size
        verdict = cc.read_credentials(signed, trust_pem=authority.ca_pem)
        assert verdict.state == "Trusted", verdict.failures
        assert verdict.assertion("org.egocrowd.release")["clip_sha256"] == "0123456789"[i] * 64
        with av.open(str(signed)) as a:
            assert sum(1 for _ in a.decode(video=0)) == 5 + i


@pytest.mark.parametrize("direct", [True, False])
def test_a_file_that_is_not_a_video_is_not_signed_and_leaves_nothing(authority_and_video, tmp_path, direct):
    authority, _, _ = authority_and_video
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not an mp4 at all " * 1000)
    signed = tmp_path / "signed.mp4"
    with pytest.raises(cc.SigningFailed) as e:
        cc.sign_video(bogus, signed, _manifest(), authority, direct=direct)
    assert e.value.code == "c2pa.signing_failed"
    assert not signed.exists()
