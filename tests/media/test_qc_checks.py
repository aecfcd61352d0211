"""QC checks: a confusion table over the generated clips, the report format, thresholds, registry."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from egocrowd import i18n
from egocrowd.errors import InvalidInput, MediaError
from egocrowd.media import fingerprint, run_qc
from egocrowd.media.analysis import FrameAnalyzer
from egocrowd.media.hands import get_palm_detector
from egocrowd.media.qc import QCReport, QCThresholds, Verdict, evaluate, get_check, qc_check, registered_checks
from egocrowd.media.qc.registry import check_words
from egocrowd.media.testmedia import QC_CLIPS, REAL_CLIPS

# Which checks must FAIL on which clip (everything else must not fail). Each defect clip changes
# one thing of the good clip; the second entries are honest consequences: a black picture hides
# the hands, and bikes.mp4 / its re-encode are street scenes with no hands and are the "earlier
# upload" the duplicate check compares against.
EXPECTED_FAILS = {
    "good": set(),
    "dark": {"too_dark", "hands_visible"},
    "overexposed": {"overexposed"},
    "blurred": {"blur"},
    "frozen": {"frozen_frames"},
    "shaky": {"camera_shake"},
    "too_short": {"duration"},
    "idle": {"idle"},
    "low_res": {"resolution"},
    "low_fps": {"frame_rate"},
    "portrait_rotated": {"orientation"},
    "portrait": {"orientation"},
    "reencoded_duplicate": {"near_duplicate", "hands_visible"},
    "corrupt": {"integrity"},
    "bikes": {"near_duplicate", "hands_visible"},
    "carphone_pristine": {"resolution"},
    "bigbuckbunny": {"hands_visible"},
}
HANDS = get_palm_detector() is not None


@pytest.fixture(scope="session")
def known(qc_media):
    # The earlier upload: bikes.mp4 as shipped. Stored as JSON, as the database would.
    return {"clip-bikes": json.loads(json.dumps(fingerprint(qc_media["bikes"]).to_dict()))}


@pytest.fixture(scope="session")
def reports(qc_media, qc_thresholds, known):
    return {name: run_qc(str(qc_media[name]), qc_thresholds, known) for name in QC_CLIPS + REAL_CLIPS}


def test_confusion_table_no_misses_no_false_alarms(reports):
    names = [spec.name for spec in registered_checks()]
    if not HANDS:
        names.remove("hands_visible")  # measured by test_hands_detector_is_installed
    got = {clip: {c.name for c in r.checks if c.status == "fail" and c.name in names} for clip, r in reports.items()}
    want = {clip: exp & set(names) for clip, exp in EXPECTED_FAILS.items()}
    table = "\n".join(
        f"{clip:20s} "
        + " ".join(
            ("X" if n in got[clip] else ".") + ("!" if (n in got[clip]) != (n in want[clip]) else " ") for n in names
        )
        for clip in want
    )
    assert got == want, f"checks: {names}\n{table}"
    # Every check is exercised: some clip must make it fail (the mount is what the worker declared,
    # not a property of the file: see test_mount_is_checked_against_the_declared_one).
    assert set(names) - {"mount"} <= set().union(*want.values())


def test_good_clip_passes_without_warnings(reports):
    good = reports["good"]
    assert good.status == "qc_passed" and good.passed
    assert [c.name for c in good.checks if c.status != "pass"] == ([] if HANDS else ["hands_visible"])


def test_overall_status_follows_the_checks(reports):
    for clip, report in reports.items():
        fails = EXPECTED_FAILS[clip] - (set() if HANDS else {"hands_visible"})
        assert report.status == ("qc_failed" if fails else "qc_passed"), clip


@pytest.mark.skipif(not HANDS, reason="the palm model (mediapipe==0.10.21, installed --no-deps) is not installed")
def test_hands_detector_is_installed(reports):
    r = reports["good"].check("hands_visible")
    assert r.value >= 0.9 and r.details["detector"].startswith("blazepalm")
    assert reports["bigbuckbunny"].check("hands_visible").value < 0.2


def test_failed_checks_speak_plain_words(reports):
    dark = reports["dark"]
    line = next(x for x in dark.reasons() if x.startswith("too dark"))
    assert line == "too dark: 100% of frames — record with the lights on, or near a window in daylight"
    for report in reports.values():
        for c in report.failed_checks:
            assert c.message and c.advice, c
        for c in report.checks:
            if c.status == "pass":
                assert c.advice == ""


def test_verdicts_keep_their_msgid_and_numbers_for_the_workers_language(reports, monkeypatch):
    # The stored English is the msgid filled in; a page renders the msgid in the reader's language.
    dark = reports["dark"].to_dict()
    c = next(x for x in dark["checks"] if x["name"] == "too_dark")
    assert c["message_id"] == "too dark: {share} of frames" and c["params"] == {"share": 1.0}
    assert c["advice_id"] == "record with the lights on, or near a window in daylight" and c["advice_params"] == {}
    assert check_words(c) == c["message"] == "too dark: 100% of frames"
    monkeypatch.setenv("EGOCROWD_PSEUDO_LOCALE", "1")
    with i18n.using("en-XA"):
        assert check_words(c) == "⟦ţöö đàŕķ: ⟦100%⟧ öƒ ƒŕàɱéš⟧"  # the share formatted for the reader too
        assert check_words(c, "advice").startswith("⟦ŕéçöŕđ ŵîţĥ") and check_words(c, "title") == "⟦Ţöö đàŕķ⟧"
    # Words and numbers in the reader's language.
    duration = {
        "message_id": "too short: {seconds} s, the campaign needs at least {min} s",
        "params": {"seconds": 1.5, "min": 20.0},
    }
    with i18n.using("fr"):
        assert (
            check_words(duration) == "trop court : 1,5 s, la campagne demande au moins 20 s"
        )  # French words, French decimals
    # A nested phrase and a translated label inside a sentence.
    rate = {
        "message_id": "frame rate OK: {rate}",
        "params": {"rate": {"message_id": "{fps} fps (variable)", "params": {"fps": 29.9}}},
    }
    with i18n.using("en-XA"):
        assert check_words(rate) == "⟦ƒŕàɱé ŕàţé ÖĶ: ⟦{fps} ƒƥš (ṽàŕîàƀĺé)⟧⟧".replace("{fps}", "⟦29.9⟧")
    # Reports written before msgids were kept show their stored words.
    assert check_words({"message": "too dark: 62 % of frames", "advice": "x"}) == "too dark: 62 % of frames"


def test_report_is_json_with_versions(reports):
    d = reports["frozen"].to_dict()
    again = json.loads(json.dumps(d))
    assert again["format_version"] == 1
    assert again["status"] == "qc_failed" and again["failed"] == ["frozen_frames"]
    assert again["check_versions"] == {s.name: s.version for s in registered_checks()}
    assert again["fingerprint"]["format_version"] == 1 and again["fingerprint"]["h"]
    assert again["thresholds"]["idle_fail_s"] == 3
    assert again["probe"]["frame_count"] == 240
    assert QCReport.from_dict(again).to_dict() == again
    for c in again["checks"]:
        assert set(c) >= {"name", "version", "status", "value", "threshold", "message", "advice"}
        assert c["status"] in ("pass", "warn", "fail")


def test_defaults_reject_the_small_test_clips(qc_media):
    # Out of the box a campaign wants >= 10 s of >= 480p: the 8 s CIF good clip fails both.
    report = run_qc(str(qc_media["good"]))
    assert {c.name for c in report.failed_checks} == {"duration", "resolution"}


def test_thresholds_from_campaign_dict():
    th = QCThresholds.from_dict({"min_duration_s": "20", "disabled": ["hands_visible"]})
    assert th.min_duration_s == 20.0 and th.disabled == ("hands_visible",)
    assert th.max_duration_s == QCThresholds().max_duration_s
    with pytest.raises(InvalidInput) as info:
        QCThresholds.from_dict({"min_duration": 20})
    assert info.value.code == "campaign.bad_requirements"
    with pytest.raises(InvalidInput):
        QCThresholds.from_dict({"min_duration_s": 100, "max_duration_s": 50})
    with pytest.raises(InvalidInput):
        QCThresholds.from_dict({"min_fps": "fast"})


def test_disabled_checks_are_not_run(qc_media, qc_thresholds):
    th = QCThresholds.from_dict({**qc_thresholds.to_dict(), "disabled": ["duration", "blur"]})
    report = run_qc(str(qc_media["too_short"]), th)
    assert "duration" not in {c.name for c in report.checks}
    assert report.status == "qc_passed"


def test_hands_check_says_so_when_the_detector_is_missing(qc_media, qc_thresholds):
    report = run_qc(str(qc_media["good"]), qc_thresholds, use_hand_detector=False)
    hands = report.check("hands_visible")
    assert hands.status == "warn" and hands.value is None
    assert "not checked" in hands.message
    assert report.status == "qc_passed"


def test_unreadable_file_raises_media_error(qc_media):
    with pytest.raises(MediaError) as info:
        run_qc(str(qc_media["zip_renamed"]))
    assert info.value.code == "video.not_video"


def test_checks_are_pure_functions_of_frame_statistics():
    # No file: feed synthetic frames straight into the analyzer, then evaluate.
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 255, (120, 180), dtype=np.uint8)

    def stats_of(frames):
        a = FrameAnalyzer(180, 120)
        for i, f in enumerate(frames):
            a.add(i / 30, f)
        return a.finish()

    th = {"min_duration_s": 1, "min_short_side": 100, "warn_short_side": 100}
    moving = [np.roll(texture, 2 * i, axis=1) for i in range(90)]
    ok = evaluate(stats_of(moving), th)
    assert ok.check("too_dark").status == "pass"
    assert ok.check("camera_shake").status == "pass"  # a steady pan is not shake
    assert ok.check("frozen_frames").status == "pass"
    dark = evaluate(stats_of([(f // 10).astype(np.uint8) for f in moving]), th)
    assert dark.check("too_dark").status == "fail" and dark.check("too_dark").value == 1.0
    jumpy = [np.roll(np.roll(texture, int(s), axis=1), int(t), axis=0) for s, t in rng.integers(-15, 15, (90, 2))]
    assert evaluate(stats_of(jumpy), th).check("camera_shake").status == "fail"
    still = evaluate(stats_of([texture] * 150), {**th, "idle_fail_s": 3})
    assert still.check("idle").status == "fail" and still.check("idle").value >= 4.9


def test_plugins_register_with_name_and_version(qc_media, qc_thresholds, scratch_registries):
    @qc_check("test_always_warns", version=3, title="Test plugin")
    def _always_warns(ctx):
        return Verdict("warn", ctx.stats.n_frames, {"never": True}, "just a test", "ignore it")

    report = run_qc(str(qc_media["good"]), qc_thresholds)
    c = report.check("test_always_warns")
    assert (c.version, c.status, c.value, c.title) == (3, "warn", 240, "Test plugin")
    assert report.to_dict()["check_versions"]["test_always_warns"] == 3
    with pytest.raises(InvalidInput) as info:
        qc_check("test_always_warns", version=1)(lambda ctx: None)
    assert info.value.code == "qc.duplicate_check"
    with pytest.raises(InvalidInput) as info:
        get_check("no_such_check")
    assert info.value.code == "qc.unknown_check" and "too_dark" in info.value.message


def test_qc_uses_the_palm_model_it_is_given(qc_media, tmp_path):
    """The setting palm_model is an argument: QC runs in a child process that has no Settings."""
    report = run_qc(str(qc_media["good"]), palm_model=tmp_path / "missing.tflite")
    assert report.hands_detector is None  # that file is not there: the check says it could not run
    assert report.check("hands_visible").status == "warn"


def test_orientation_is_judged_on_the_displayed_picture(reports, qc_media, qc_thresholds):
    # Stored 352x288 with a phone's 90° display matrix: players show it 288x352, so it is portrait.
    rotated = reports["portrait_rotated"].check("orientation")
    assert (rotated.value, rotated.details["rotation"]) == ("portrait", 90)
    assert rotated.message == "recorded in portrait (288x352), the campaign needs landscape"
    assert rotated.advice == "turn your phone sideways (landscape) before you start recording"
    assert reports["good"].check("orientation").value == "landscape"
    portrait = QCThresholds.from_dict({**qc_thresholds.to_dict(), "orientation": "portrait"})
    r = run_qc(str(qc_media["portrait_rotated"]), portrait)
    assert r.check("orientation").status == "pass" and r.check("resolution").details == {"width": 288, "height": 352}
    assert run_qc(str(qc_media["good"]), portrait).check("orientation").status == "fail"
    with pytest.raises(InvalidInput):
        QCThresholds.from_dict({"orientation": "diagonal"})


def test_resolution_checks_both_sides(qc_thresholds):
    # A campaign's 400x200 means: long side >= 400 and short side >= 200, in either orientation.
    th = QCThresholds.from_dict({**qc_thresholds.to_dict(), "min_long_side": 400})
    r = evaluate(_stats(), th, only=["resolution"]).check("resolution")
    assert (r.status, r.message) == ("fail", "resolution too low: 180x120, the campaign needs at least 400x200")
    ok = QCThresholds.from_dict({"min_short_side": 100, "warn_short_side": 100, "min_long_side": 180})
    assert evaluate(_stats(), ok, only=["resolution"]).check("resolution").status == "pass"


def _stats():
    rng = np.random.default_rng(2)
    texture = rng.integers(0, 255, (120, 180), dtype=np.uint8)
    a = FrameAnalyzer(180, 120)
    for i in range(30):
        a.add(i / 30, np.roll(texture, i, axis=1))
    return a.finish()


@pytest.mark.parametrize(
    ("wanted", "declared", "status"),
    [
        ("chest_mounted", "chest_mounted", "pass"),
        ("chest_mounted", "head_mounted", "fail"),
        ("head_mounted", None, "warn"),  # bulk ingest or an old client: said, not failed
        ("any", None, "pass"),
        ("handheld", "no such mount", "fail"),
    ],
)
def test_mount_is_checked_against_the_declared_one(wanted, declared, status):
    th = {"min_duration_s": 0.5, "camera_placement": wanted}
    meta = {"mount": declared} if declared else {}
    c = evaluate(_stats(), th, only=["mount"], client_meta=meta).check("mount")
    assert c.status == status, c
    if status == "fail":
        assert c.message.startswith("recorded with") and "the campaign needs" in c.message and c.advice
    if (wanted, status) == ("chest_mounted", "pass"):  # one pair of brackets: the mount's own
        assert c.message == "mount as asked, as you confirmed: a chest harness (phone at sternum height)"


def test_advice_follows_the_campaign_mount():
    # No hands found in any frame: the advice says how to wear *this campaign's* mount.
    no_hands = dataclasses.replace(_stats(), hands_detector="test", hand_score=np.zeros(10))
    advice = {
        mount: evaluate(no_hands, {"camera_placement": mount}, only=["hands_visible"]).check("hands_visible").advice
        for mount in ("head_mounted", "chest_mounted", "handheld", "any")
    }
    assert "forehead" in advice["head_mounted"] and "sternum" in advice["chest_mounted"]
    assert "one hand" in advice["handheld"] and "forehead" not in advice["any"]
