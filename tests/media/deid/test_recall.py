"""Recall you can quote: the production detectors, tracker and settings on the evaluation set.

The face bar is the issue's: ≥ 0.98 of faces (≥ 20 px tall) covered on every frame. The text bar
is what the text detector measured on the set when it was written (0.955 of lines, see docs/deid.md),
less a little for onnxruntime's arithmetic on other CPUs. Per-condition numbers are printed
(``pytest -s`` or the captured output of a failure) so a miss says where it is.
"""

from __future__ import annotations

import numpy as np
import pytest

from egocrowd.media.deid.evalset import MIN_FACE, EvalClip, Region
from egocrowd.media.deid.evaluate import COVER, evaluate, score_clip
from egocrowd.media.deid.regions import RedactionPlan, Track
from tests.media.deid.evalsets import only

FACE_BAR = 0.98
TEXT_BAR = 0.94


def _table(report) -> str:
    lines = [f"{'category':8} {'condition':12} {'regions':>7} {'recall':>7} {'iou':>6} {'prec':>6} missed-frames"]
    for s in [*report.rows, *(report.total(c) for c in sorted({r.category for r in report.rows})), *report.tiny]:
        tiny = " (<20px)" if s in report.tiny else ""
        lines.append(
            f"{s.category:8} {s.condition + tiny:12} {s.regions:7} {s.recall:7.3f} {s.iou_recall:6.3f} "
            f"{s.precision:6.3f} {s.missed_frames}/{s.frames}"
        )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def face_report():
    report = evaluate(only("face"))
    print("\n" + _table(report))
    return report


@pytest.fixture(scope="module")
def text_report():
    report = evaluate(only("text"))
    print("\n" + _table(report))
    return report


def test_face_recall_per_frame_meets_the_bar(face_report):
    total = face_report.total("face")
    worst = min(face_report.rows, key=lambda s: s.recall)
    assert total.recall >= FACE_BAR, (
        f"face recall {total.recall:.3f} < {FACE_BAR} (worst: {worst.condition} {worst.recall:.3f})\n"
        + _table(face_report)
    )


def test_tiny_faces_are_scored_apart_from_the_headline(face_report):
    assert [s.condition for s in face_report.tiny] == ["small"]
    (tiny,) = face_report.tiny
    assert tiny.regions > 0
    # the headline counts every region of the rows and none of the tiny ones
    assert face_report.total("face").regions == sum(s.regions for s in face_report.rows)
    # the plan's settings and versions come with the numbers
    assert face_report.detectors["centerface"]["version"] and "tracking" in face_report.detectors


def test_text_recall_per_frame_meets_its_measured_bar(text_report):
    total = text_report.total("text")
    assert total.recall >= TEXT_BAR, _table(text_report)


# --- the scoring itself, on plans made by hand ---------------------------------------------------------
def _clip(regions: list[Region], n: int = 3) -> EvalClip:
    frames = [np.zeros((720, 1280, 3), np.uint8)] * n
    return EvalClip("face", "large", frames, [list(regions) for _ in range(n)], 15.0)


def _plan(boxes: list[tuple[int, int, int, int]], n: int = 3) -> RedactionPlan:
    tracks = [Track(i + 1, "face", "test", {f: (b, 0.9) for f in range(n)}) for i, b in enumerate(boxes)]
    return RedactionPlan(1280, 720, n, tracks)


FACE = Region("face", "a", (100, 100, 200, 220))
TINY = Region("face", "b", (600, 300, 612, 315))


def test_a_region_counts_only_when_enough_of_it_is_covered():
    main, tiny = score_clip(_clip([FACE, TINY]), _plan([]))
    assert (main.regions, main.covered, main.missed_frames, tiny.regions) == (3, 0, 3, 3)
    # a box twice the face's size hides it: covered, but its IoU is low (so the margin is taken off)
    big = (50, 40, 250, 280)
    main, _ = score_clip(_clip([FACE]), _plan([big]))
    assert main.recall == 1.0 and main.iou_recall == 0.0 and main.precision == 1.0
    main, _ = score_clip(_clip([FACE]), _plan([big]), {"face": 0.5})
    assert main.iou_recall == 1.0
    # two boxes that together cover the face count (the union is what gets blurred)
    main, _ = score_clip(_clip([FACE]), _plan([(100, 100, 200, 160), (100, 160, 200, 220)]))
    assert main.recall == 1.0
    # a box over the top 70 % leaves the mouth showing: not covered
    cut = int(100 + 120 * (COVER - 0.1))
    main, _ = score_clip(_clip([FACE]), _plan([(100, 100, 200, cut)]))
    assert main.recall == 0.0
    # a box over nothing true lowers precision, not recall
    main, _ = score_clip(_clip([FACE]), _plan([(100, 100, 200, 220), (900, 500, 1000, 600)]))
    assert main.recall == 1.0 and main.precision == 0.5
    # tiny faces have their own count
    _, tiny = score_clip(_clip([TINY]), _plan([(590, 290, 620, 320)]))
    assert TINY.size < MIN_FACE and tiny.recall == 1.0


def test_eval_command_ends_in_one_line_when_a_model_is_missing(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from egocrowd.cli import main

    monkeypatch.setenv("EGOCROWD_FACE_MODEL", str(tmp_path / "no-such-model.onnx"))
    result = CliRunner().invoke(main, ["deid", "eval", "--category", "face"])
    assert result.exit_code == 1
    assert "face model is missing" in result.output and "[deid.model_missing]" in result.output
    assert "Traceback" not in result.output
