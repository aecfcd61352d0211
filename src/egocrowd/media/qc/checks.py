"""The built-in QC checks. Each reads ``ClipStats`` numbers and thresholds, nothing else.

Messages are for the worker who filmed the clip: plain words, the measured number, and (in
``advice``) what to do differently next time.
"""

from __future__ import annotations

import numpy as np

from egocrowd.media.fingerprint import find_duplicates
from egocrowd.media.qc.registry import CheckContext, Status, Verdict, qc_check


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _grade_high(value: float, warn: float, fail: float) -> Status:
    """Status for a value where more is worse (warn when above ``warn``, fail above ``fail``)."""
    if value > fail:
        return "fail"
    if value > warn:
        return "warn"
    return "pass"


def _grade_low(value: float, warn: float, fail: float) -> Status:
    if value < fail:
        return "fail"
    if value < warn:
        return "warn"
    return "pass"


def _exposed(ctx: CheckContext) -> np.ndarray:
    s, th = ctx.stats, ctx.thresholds
    return (
        (s.luma >= th.dark_luma)
        & (s.dark_frac <= 0.7)
        & (s.bright_frac <= th.overexposed_pixels)
        & (s.luma <= th.overexposed_luma)
    )


@qc_check("duration", version=1, title="Duration")
def duration(ctx: CheckContext) -> Verdict:
    th = ctx.thresholds
    value = ctx.probe.duration_s if ctx.probe else ctx.stats.duration_s
    threshold = {"min": th.min_duration_s, "max": th.max_duration_s}
    if value < th.min_duration_s:
        return Verdict(
            "fail",
            round(value, 2),
            threshold,
            f"too short: {value:.1f} s, the campaign needs at least {th.min_duration_s:g} s",
            "record the whole task from start to finish in one take",
            "s",
        )
    if value > th.max_duration_s:
        return Verdict(
            "fail",
            round(value, 2),
            threshold,
            f"too long: {value:.0f} s, the campaign accepts at most {th.max_duration_s:g} s",
            "stop recording when the task is done, or split it into several clips",
            "s",
        )
    return Verdict("pass", round(value, 2), threshold, f"duration OK: {value:.1f} s", unit="s")


def _displayed_size(ctx: CheckContext) -> tuple[int, int]:
    """The picture as a player shows it: phones store portrait video landscape with a rotation."""
    if ctx.probe:
        return ctx.probe.display_width, ctx.probe.display_height
    return ctx.stats.width, ctx.stats.height


@qc_check("resolution", version=2, title="Resolution")
def resolution(ctx: CheckContext) -> Verdict:
    th = ctx.thresholds
    w, h = _displayed_size(ctx)
    short, long = min(w, h), max(w, h)
    status = _grade_low(short, th.warn_short_side, th.min_short_side)
    if long < th.min_long_side:
        status = "fail"
    need = f"{th.min_long_side}x{th.min_short_side}" if th.min_long_side else f"{th.min_short_side} p"
    threshold = {"fail_below": th.min_short_side, "warn_below": th.warn_short_side, "long_side_below": th.min_long_side}
    msg = {
        "pass": f"resolution OK: {w}x{h}",
        "warn": f"low resolution: {w}x{h}, {th.warn_short_side} p or more is better",
        "fail": f"resolution too low: {w}x{h}, the campaign needs at least {need}",
    }[status]
    return Verdict(
        status,
        short,
        threshold,
        msg,
        "set the camera to record 1080p (or at least 720p) video",
        "px",
        {"width": w, "height": h},
    )


@qc_check("orientation", version=1, title="Orientation")
def orientation(ctx: CheckContext) -> Verdict:
    want = ctx.thresholds.orientation
    w, h = _displayed_size(ctx)
    shape = "landscape" if w > h else "portrait" if h > w else "square"
    threshold = {"orientation": want}
    details = {"width": w, "height": h, "rotation": ctx.probe.rotation if ctx.probe else 0}
    if want == "any" or shape == want:
        return Verdict("pass", shape, threshold, f"orientation OK: {shape} ({w}x{h})", details=details)
    turn = "sideways" if want == "landscape" else "upright"
    return Verdict(
        "fail",
        shape,
        threshold,
        f"recorded in {shape} ({w}x{h}), the campaign needs {want}",
        f"turn your phone {turn} ({want}) before you start recording",
        details=details,
    )


#: How each mount is named to the worker, and how to keep the hands in the picture with it.
MOUNT_NAMES = {
    "head_mounted": "a head mount (phone on your forehead)",
    "chest_mounted": "a chest harness (phone at sternum height)",
    "handheld": "the phone held in one hand",
}
_HANDS_ADVICE = {
    "head_mounted": "wear the phone on your forehead tilted down, so both hands and the object stay in the picture",
    "chest_mounted": "wear the harness at sternum height and tilt the phone down, so both hands and the object "
    "stay in the picture",
    "handheld": "hold the phone in one hand, pointed at your other hand and the object",
    "any": "point the camera down at your hands, so both hands and the object stay in the picture",
}
_STEADY_ADVICE = {
    "head_mounted": "fasten the head mount firmly and move your head slowly and smoothly",
    "chest_mounted": "tighten the chest harness so the phone cannot bounce, and move smoothly",
    "handheld": "hold the phone with your elbow against your body and move smoothly",
    "any": "fasten the phone firmly and move slowly and smoothly",
}


@qc_check("mount", version=1, title="Camera mount")
def mount(ctx: CheckContext) -> Verdict:
    """The mount the worker confirmed on the capture page against the campaign's. The picture is not
    judged: no cheap measure we tried tells a head from a chest mount reliably (see docs/qc.md)."""
    want = ctx.thresholds.camera_placement
    declared = str(ctx.client_meta.get("mount") or "")
    threshold = {"camera_placement": want}
    if want == "any":
        return Verdict("pass", declared or None, threshold, "any mount is fine for this campaign")
    if not declared:
        return Verdict(
            "warn",
            None,
            threshold,
            f"mount not confirmed: the campaign asks for {MOUNT_NAMES[want]}",
            "confirm the mount in the checklist on the recording page",
        )
    if declared != want:
        return Verdict(
            "fail",
            declared,
            threshold,
            f"recorded with {MOUNT_NAMES.get(declared, 'another mount')}, the campaign needs {MOUNT_NAMES[want]}",
            f"record again with {MOUNT_NAMES[want]}",
        )
    return Verdict("pass", declared, threshold, f"mount as asked, as you confirmed: {MOUNT_NAMES[want]}")


@qc_check("frame_rate", version=1, title="Frame rate")
def frame_rate(ctx: CheckContext) -> Verdict:
    th = ctx.thresholds
    fps = ctx.probe.fps if ctx.probe and ctx.probe.fps else ctx.stats.fps
    vfr = bool(ctx.probe.vfr) if ctx.probe else False
    status = _grade_low(fps, th.warn_fps, th.min_fps)
    threshold = {"fail_below": th.min_fps, "warn_below": th.warn_fps}
    rate = f"{fps:.1f} fps" + (" (variable)" if vfr else "")
    msg = {
        "pass": f"frame rate OK: {rate}",
        "warn": f"low frame rate: {rate}, 30 fps is better",
        "fail": f"frame rate too low: {rate}, the campaign needs at least {th.min_fps:g} fps",
    }[status]
    return Verdict(
        status,
        round(fps, 2),
        threshold,
        msg,
        "set the camera to 30 fps and turn off slow-motion or time-lapse modes",
        "fps",
        {"variable_frame_rate": vfr},
    )


@qc_check("too_dark", version=1, title="Too dark")
def too_dark(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    dark = (s.luma < th.dark_luma) | (s.dark_frac > 0.7)
    frac = float(dark.mean()) if dark.size else 0.0
    status = _grade_high(frac, th.dark_warn_frac, th.dark_fail_frac)
    msg = f"too dark: {_pct(frac)} of frames" if status != "pass" else f"brightness OK: {_pct(frac)} of frames dark"
    return Verdict(
        status,
        round(frac, 4),
        {"warn_above": th.dark_warn_frac, "fail_above": th.dark_fail_frac, "dark_luma": th.dark_luma},
        msg,
        "record with the lights on, or near a window in daylight",
        "fraction",
    )


@qc_check("overexposed", version=1, title="Overexposed")
def overexposed(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    blown = (s.bright_frac > th.overexposed_pixels) | (s.luma > th.overexposed_luma)
    frac = float(blown.mean()) if blown.size else 0.0
    status = _grade_high(frac, th.bright_warn_frac, th.bright_fail_frac)
    msg = (
        f"overexposed: {_pct(frac)} of frames are washed out"
        if status != "pass"
        else f"exposure OK: {_pct(frac)} of frames washed out"
    )
    return Verdict(
        status,
        round(frac, 4),
        {"warn_above": th.bright_warn_frac, "fail_above": th.bright_fail_frac, "blown_pixels": th.overexposed_pixels},
        msg,
        "don't film towards a window or a bright lamp; tap the screen on your hands to set the exposure",
        "fraction",
    )


@qc_check("blur", version=1, title="Blur")
def blur(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    threshold = {"sharpness": th.blur_sharpness, "warn_above": th.blur_warn_frac, "fail_above": th.blur_fail_frac}
    # Only well exposed frames: a black frame has no edges, which says nothing about focus.
    sharp = s.sharpness[s.sharp_exposed] if s.sharpness.size else s.sharpness
    if sharp.size == 0:
        return Verdict("pass", None, threshold, "blur not measured: no well exposed frame", unit="fraction")
    frac = float((sharp < th.blur_sharpness).mean())
    status = _grade_high(frac, th.blur_warn_frac, th.blur_fail_frac)
    msg = (
        f"blurred: {_pct(frac)} of frames are out of focus or smeared"
        if status != "pass"
        else f"sharpness OK: {_pct(frac)} of frames blurred"
    )
    return Verdict(
        status,
        round(frac, 4),
        threshold,
        msg,
        "wipe the lens, let the camera focus before you start, and move your head slowly",
        "fraction",
        {"median_sharpness": round(float(np.median(sharp)), 4)},
    )


@qc_check("frozen_frames", version=1, title="Frozen or duplicated frames")
def frozen_frames(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    threshold = {
        "diff_below": th.frozen_diff,
        "relative_below": th.frozen_relative,
        "warn_above": th.frozen_warn_frac,
        "fail_above": th.frozen_fail_frac,
    }
    # A repeated frame is one that barely differs from the previous one while the footage around
    # it moves: exactly identical, or far below the local motion (encoders touch up a repeated
    # frame, so "identical" alone misses them). Where nothing moves for a while, that is the idle
    # check's business; badly exposed frames hide motion and are left to the exposure checks.
    if s.n_frames < 3:
        return Verdict("pass", 0.0, threshold, "no frozen frames", unit="fraction")
    motion = _motion(ctx)
    local = _moving_median(motion, max(3, int(round(0.5 * (s.fps or 30))) | 1))
    diff = np.nan_to_num(s.diff, nan=np.inf)
    repeated = (diff < th.frozen_diff) | (diff < th.frozen_relative * local)
    moving = _moving_average(motion, max(1, int(round(s.fps or 30)))) >= th.idle_motion
    considered = moving & _exposed(ctx)
    considered[0] = False
    if not considered.any():
        return Verdict(
            "pass", None, threshold, "frozen frames not measured: no moving, well exposed footage", unit="fraction"
        )
    frac = float(repeated[considered].mean())
    status = _grade_high(frac, th.frozen_warn_frac, th.frozen_fail_frac)
    msg = (
        f"frozen picture: {_pct(frac)} of frames repeat the previous one"
        if status != "pass"
        else f"no frozen frames: {_pct(frac)} repeated"
    )
    return Verdict(
        status,
        round(frac, 4),
        threshold,
        msg,
        "close other apps, free some storage and keep the phone cool while "
        "recording; upload the original file, not a screen recording",
        "fraction",
    )


def _motion(ctx: CheckContext) -> np.ndarray:
    """Frame-to-frame change (mean |diff|), with the undefined first value filled in."""
    d = ctx.stats.diff
    finite = np.isfinite(d)
    fill = float(np.median(d[finite])) if finite.any() else 0.0
    return np.where(finite, d, fill)


def _moving_median(x: np.ndarray, window: int) -> np.ndarray:
    if x.size == 0:
        return x
    pad = window // 2
    padded = np.pad(x, (pad, window - 1 - pad), mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, window)
    return np.asarray(np.median(view, axis=1))


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or x.size == 0:
        return x
    pad = window // 2
    padded = np.pad(x, [(pad, window - 1 - pad)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    kernel = np.ones(window) / window
    if x.ndim == 1:
        return np.convolve(padded, kernel, mode="valid")
    return np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(x.shape[1])], axis=1)


@qc_check("camera_shake", version=1, title="Camera shake")
def camera_shake(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    threshold = {"warn_above": th.shake_warn_pct, "fail_above": th.shake_fail_pct}
    ok = s.shift_ok
    if ok.sum() < 10:
        return Verdict(
            "pass", None, threshold, "camera shake not measured: too few frames with detail", unit="% of width"
        )
    # Shake is the jerky part of the camera path: frame-to-frame motion minus its local average
    # over ~0.3 s. A smooth head turn has a large motion but a small jerk; a bouncing phone has
    # both. The median keeps a few bad correlation peaks (a cut, a flash) from deciding.
    window = max(3, int(round(0.3 * (s.fps or 30))) | 1)
    path = s.shift.copy()
    path[~ok] = 0.0
    jerk = path - _moving_average(path, window)
    mag = np.hypot(jerk[ok, 0], jerk[ok, 1]) * 100.0
    value = float(np.median(mag))
    status = _grade_high(value, th.shake_warn_pct, th.shake_fail_pct)
    msg = (
        f"heavy camera shake: the picture jumps {value:.1f} % of its width per frame"
        if status != "pass"
        else f"camera steady: {value:.2f} % of the width per frame"
    )
    return Verdict(
        status,
        round(value, 3),
        threshold,
        msg,
        _STEADY_ADVICE[ctx.thresholds.camera_placement],
        "% of width",
    )


@qc_check("idle", version=1, title="Idle stretches")
def idle(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    threshold = {"motion_below": th.idle_motion, "warn_above_s": th.idle_warn_s, "fail_above_s": th.idle_fail_s}
    if s.n_frames < 2:
        return Verdict("pass", 0.0, threshold, "no idle stretch", unit="s")
    window = max(1, int(round(s.fps or 30)))
    motion = _moving_average(_motion(ctx), window)
    # Badly exposed frames hide motion; they are the exposure checks' business, not idleness.
    still = (motion < th.idle_motion) & _exposed(ctx)
    longest = 0.0
    start = None
    dt = 1.0 / s.fps if s.fps else 0.0
    for i, is_still in enumerate(np.append(still, False)):
        if is_still and start is None:
            start = i
        elif not is_still and start is not None:
            longest = max(longest, float(s.t[i - 1] - s.t[start]) + dt)
            start = None
    status = _grade_high(longest, th.idle_warn_s, th.idle_fail_s)
    msg = (
        f"idle: nothing moves for {longest:.0f} s"
        if status != "pass"
        else f"no long idle stretch (longest {longest:.1f} s)"
    )
    return Verdict(
        status,
        round(longest, 2),
        threshold,
        msg,
        "keep working on the task the whole time; pause the recording while you wait instead",
        "s",
    )


@qc_check("near_duplicate", version=1, title="Near-duplicate of an earlier clip")
def near_duplicate(ctx: CheckContext) -> Verdict:
    th = ctx.thresholds
    threshold = {"warn_above": th.duplicate_warn_score, "fail_above": th.duplicate_fail_score}
    if ctx.fingerprint is None or len(ctx.fingerprint) == 0:
        return Verdict("pass", None, threshold, "duplicate not measured: no frame with enough detail", unit="fraction")
    matches = find_duplicates(ctx.fingerprint, ctx.known_fingerprints or ())
    if not matches:
        return Verdict("pass", 0.0, threshold, "not a copy of any earlier clip", unit="fraction")
    best = matches[0]
    status: Status = (
        "fail"
        if best.score >= th.duplicate_fail_score
        else ("warn" if best.score >= th.duplicate_warn_score else "pass")
    )
    msg = (
        f"same footage as an earlier clip: {_pct(best.score)} of frames match clip {best.clip_id}"
        if status != "pass"
        else f"not a copy of any earlier clip (best match {_pct(best.score)})"
    )
    return Verdict(
        status,
        round(best.score, 4),
        threshold,
        msg,
        "record a new take; each upload must be a new recording",
        "fraction",
        {"matches": [m.to_dict() for m in matches[:5]]},
    )


@qc_check("hands_visible", version=1, title="Hands in view")
def hands_visible(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    threshold = {"score": th.hand_score, "warn_below": th.hands_warn_below, "fail_below": th.hands_fail_below}
    if s.hands_detector is None:
        # Said plainly rather than guessed: without the model this check measured nothing.
        return Verdict(
            "warn",
            None,
            threshold,
            "hands not checked: the hand detector is not installed on this server",
            "nothing to do on your side; staff will review the clip",
            "fraction",
            {"detector": None},
        )
    if s.hand_score.size == 0:
        return Verdict(
            "fail",
            0.0,
            threshold,
            "hands not checked: no frame was sampled",
            "record a longer clip with your hands in view",
            "fraction",
        )
    frac = float((s.hand_score >= th.hand_score).mean())
    status = _grade_low(frac, th.hands_warn_below, th.hands_fail_below)
    msg = (
        f"hands visible in only {_pct(frac)} of frames"
        if status != "pass"
        else f"hands visible in {_pct(frac)} of frames"
    )
    return Verdict(
        status,
        round(frac, 4),
        threshold,
        msg,
        _HANDS_ADVICE[ctx.thresholds.camera_placement],
        "fraction",
        {"detector": s.hands_detector, "frames_checked": int(s.hand_score.size)},
    )


@qc_check("integrity", version=1, title="File integrity")
def integrity(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    frac = s.decode_errors / s.packets if s.packets else 0.0
    threshold = {"warn_above": th.decode_error_warn_frac, "fail_above": th.decode_error_fail_frac}
    status = _grade_high(frac, th.decode_error_warn_frac, th.decode_error_fail_frac)
    msg = (
        f"the file is damaged: {s.decode_errors} of {s.packets} frames could not be decoded"
        if status != "pass"
        else "file decodes cleanly"
    )
    return Verdict(
        status,
        round(frac, 4),
        threshold,
        msg,
        "upload the original file from the phone's gallery again, on a stable connection",
        "fraction",
        {"decode_errors": s.decode_errors},
    )
