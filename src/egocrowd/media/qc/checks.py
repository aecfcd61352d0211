"""The built-in QC checks. Each reads ``ClipStats`` numbers and thresholds, nothing else.

Messages are for the worker who filmed the clip: plain words, the measured number, and (in
``advice``) what to do differently next time. Each is a ``say(N_("msgid"), name=value)`` so the
report keeps its msgid and numbers and pages show it in the worker's language (registry.Text).
"""

from __future__ import annotations

import numpy as np

from egocrowd.i18n import N_
from egocrowd.media.fingerprint import find_duplicates
from egocrowd.media.qc.registry import CheckContext, Status, Verdict, qc_check, say


def _share(x: float) -> float:
    """A fraction as the reports show it: whole percents."""
    return round(x, 2)


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


@qc_check("duration", version=1, title=N_("Duration"))
def duration(ctx: CheckContext) -> Verdict:
    th = ctx.thresholds
    value = ctx.probe.duration_s if ctx.probe else ctx.stats.duration_s
    threshold = {"min": th.min_duration_s, "max": th.max_duration_s}
    if value < th.min_duration_s:
        return Verdict(
            "fail",
            round(value, 2),
            threshold,
            say(
                N_("too short: {seconds} s, the campaign needs at least {min} s"),
                seconds=round(value, 1),
                min=float(th.min_duration_s),
            ),
            say(N_("record the whole task from start to finish in one take")),
            "s",
        )
    if value > th.max_duration_s:
        return Verdict(
            "fail",
            round(value, 2),
            threshold,
            say(
                N_("too long: {seconds} s, the campaign accepts at most {max} s"),
                seconds=float(round(value)),
                max=float(th.max_duration_s),
            ),
            say(N_("stop recording when the task is done, or split it into several clips")),
            "s",
        )
    return Verdict(
        "pass", round(value, 2), threshold, say(N_("duration OK: {seconds} s"), seconds=round(value, 1)), unit="s"
    )


def _displayed_size(ctx: CheckContext) -> tuple[int, int]:
    """The picture as a player shows it: phones store portrait video landscape with a rotation."""
    if ctx.probe:
        return ctx.probe.display_width, ctx.probe.display_height
    return ctx.stats.width, ctx.stats.height


@qc_check("resolution", version=2, title=N_("Resolution"))
def resolution(ctx: CheckContext) -> Verdict:
    th = ctx.thresholds
    w, h = _displayed_size(ctx)
    short, long = min(w, h), max(w, h)
    status = _grade_low(short, th.warn_short_side, th.min_short_side)
    if long < th.min_long_side:
        status = "fail"
    threshold = {"fail_below": th.min_short_side, "warn_below": th.warn_short_side, "long_side_below": th.min_long_side}
    size = {"width": int(w), "height": int(h)}
    if status == "pass":
        msg = say(N_("resolution OK: {width}x{height}"), **size)
    elif status == "warn":
        msg = say(
            N_("low resolution: {width}x{height}, {lines}p or more is better"), lines=int(th.warn_short_side), **size
        )
    elif th.min_long_side:
        msg = say(
            N_("resolution too low: {width}x{height}, the campaign needs at least {min_width}x{min_height}"),
            min_width=int(th.min_long_side),
            min_height=int(th.min_short_side),
            **size,
        )
    else:
        msg = say(
            N_("resolution too low: {width}x{height}, the campaign needs at least {lines}p"),
            lines=int(th.min_short_side),
            **size,
        )
    return Verdict(
        status,
        short,
        threshold,
        msg,
        say(N_("set the camera to record 1080p (or at least 720p) video")),
        "px",
        {"width": w, "height": h},
    )


@qc_check("orientation", version=1, title=N_("Orientation"))
def orientation(ctx: CheckContext) -> Verdict:
    want = ctx.thresholds.orientation
    w, h = _displayed_size(ctx)
    shape = "landscape" if w > h else "portrait" if h > w else "square"
    threshold = {"orientation": want}
    details = {"width": w, "height": h, "rotation": ctx.probe.rotation if ctx.probe else 0}
    size = {"width": int(w), "height": int(h)}
    if want == "any" or shape == want:
        msg = say(N_("orientation OK: {shape} ({width}x{height})"), shape=_SHAPES[shape], **size)
        return Verdict("pass", shape, threshold, msg, details=details)
    turn = (
        N_("turn your phone sideways (landscape) before you start recording")
        if want == "landscape"
        else N_("turn your phone upright (portrait) before you start recording")
    )
    return Verdict(
        "fail",
        shape,
        threshold,
        say(
            N_("recorded in {shape} ({width}x{height}), the campaign needs {wanted}"),
            shape=_SHAPES[shape],
            wanted=_SHAPES.get(want, want),
            **size,
        ),
        say(turn),
        details=details,
    )


#: The picture's shapes as the worker reads them inside a sentence.
_SHAPES = {"landscape": N_("landscape"), "portrait": N_("portrait"), "square": N_("square")}


#: How each mount is named to the worker, and how to keep the hands in the picture with it.
#: (Noun phrases placed inside the mount check's sentences; translated where shown.)
MOUNT_NAMES = {
    "head_mounted": N_("a head mount (phone on your forehead)"),
    "chest_mounted": N_("a chest harness (phone at sternum height)"),
    "handheld": N_("the phone held in one hand"),
}
_HANDS_ADVICE = {
    "head_mounted": N_("wear the phone on your forehead tilted down, so both hands and the object stay in the picture"),
    "chest_mounted": N_(
        "wear the harness at sternum height and tilt the phone down, so both hands and the object stay in the picture"
    ),
    "handheld": N_("hold the phone in one hand, pointed at your other hand and the object"),
    "any": N_("point the camera down at your hands, so both hands and the object stay in the picture"),
}
_STEADY_ADVICE = {
    "head_mounted": N_("fasten the head mount firmly and move your head slowly and smoothly"),
    "chest_mounted": N_("tighten the chest harness so the phone cannot bounce, and move smoothly"),
    "handheld": N_("hold the phone with your elbow against your body and move smoothly"),
    "any": N_("fasten the phone firmly and move slowly and smoothly"),
}


@qc_check("mount", version=1, title=N_("Camera mount"))
def mount(ctx: CheckContext) -> Verdict:
    """The mount the worker confirmed on the capture page against the campaign's. The picture is not
    judged: no cheap measure we tried tells a head from a chest mount reliably (see docs/qc.md)."""
    want = ctx.thresholds.camera_placement
    declared = str(ctx.client_meta.get("mount") or "")
    threshold = {"camera_placement": want}
    if want == "any":
        return Verdict("pass", declared or None, threshold, say(N_("any mount is fine for this campaign")))
    if not declared:
        return Verdict(
            "warn",
            None,
            threshold,
            say(N_("mount not confirmed: the campaign asks for {wanted}"), wanted=MOUNT_NAMES[want]),
            say(N_("confirm the mount in the checklist on the recording page")),
        )
    if declared != want:
        return Verdict(
            "fail",
            declared,
            threshold,
            say(
                N_("recorded with {declared}, the campaign needs {wanted}"),
                declared=MOUNT_NAMES.get(declared, N_("another mount")),
                wanted=MOUNT_NAMES[want],
            ),
            say(N_("record again with {wanted}"), wanted=MOUNT_NAMES[want]),
        )
    return Verdict(
        "pass", declared, threshold, say(N_("mount as asked, as you confirmed: {wanted}"), wanted=MOUNT_NAMES[want])
    )


@qc_check("frame_rate", version=1, title=N_("Frame rate"))
def frame_rate(ctx: CheckContext) -> Verdict:
    th = ctx.thresholds
    fps = ctx.probe.fps if ctx.probe and ctx.probe.fps else ctx.stats.fps
    vfr = bool(ctx.probe.vfr) if ctx.probe else False
    status = _grade_low(fps, th.warn_fps, th.min_fps)
    threshold = {"fail_below": th.min_fps, "warn_below": th.warn_fps}
    rate = say(N_("{fps} fps (variable)") if vfr else N_("{fps} fps"), fps=round(float(fps), 1))
    msg = {
        "pass": say(N_("frame rate OK: {rate}"), rate=rate),
        "warn": say(N_("low frame rate: {rate}, 30 fps is better"), rate=rate),
        "fail": say(
            N_("frame rate too low: {rate}, the campaign needs at least {min} fps"), rate=rate, min=float(th.min_fps)
        ),
    }[status]
    return Verdict(
        status,
        round(fps, 2),
        threshold,
        msg,
        say(N_("set the camera to 30 fps and turn off slow-motion or time-lapse modes")),
        "fps",
        {"variable_frame_rate": vfr},
    )


@qc_check("too_dark", version=1, title=N_("Too dark"))
def too_dark(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    dark = (s.luma < th.dark_luma) | (s.dark_frac > 0.7)
    frac = float(dark.mean()) if dark.size else 0.0
    status = _grade_high(frac, th.dark_warn_frac, th.dark_fail_frac)
    msg = (
        say(N_("too dark: {share} of frames"), share=_share(frac))
        if status != "pass"
        else say(N_("brightness OK: {share} of frames dark"), share=_share(frac))
    )
    return Verdict(
        status,
        round(frac, 4),
        {"warn_above": th.dark_warn_frac, "fail_above": th.dark_fail_frac, "dark_luma": th.dark_luma},
        msg,
        say(N_("record with the lights on, or near a window in daylight")),
        "fraction",
    )


@qc_check("overexposed", version=1, title=N_("Overexposed"))
def overexposed(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    blown = (s.bright_frac > th.overexposed_pixels) | (s.luma > th.overexposed_luma)
    frac = float(blown.mean()) if blown.size else 0.0
    status = _grade_high(frac, th.bright_warn_frac, th.bright_fail_frac)
    msg = (
        say(N_("overexposed: {share} of frames are washed out"), share=_share(frac))
        if status != "pass"
        else say(N_("exposure OK: {share} of frames washed out"), share=_share(frac))
    )
    return Verdict(
        status,
        round(frac, 4),
        {"warn_above": th.bright_warn_frac, "fail_above": th.bright_fail_frac, "blown_pixels": th.overexposed_pixels},
        msg,
        say(N_("don't film towards a window or a bright lamp; tap the screen on your hands to set the exposure")),
        "fraction",
    )


@qc_check("blur", version=1, title=N_("Blur"))
def blur(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    threshold = {"sharpness": th.blur_sharpness, "warn_above": th.blur_warn_frac, "fail_above": th.blur_fail_frac}
    # Only well exposed frames: a black frame has no edges, which says nothing about focus.
    sharp = s.sharpness[s.sharp_exposed] if s.sharpness.size else s.sharpness
    if sharp.size == 0:
        return Verdict("pass", None, threshold, say(N_("blur not measured: no well exposed frame")), unit="fraction")
    frac = float((sharp < th.blur_sharpness).mean())
    status = _grade_high(frac, th.blur_warn_frac, th.blur_fail_frac)
    msg = (
        say(N_("blurred: {share} of frames are out of focus or smeared"), share=_share(frac))
        if status != "pass"
        else say(N_("sharpness OK: {share} of frames blurred"), share=_share(frac))
    )
    return Verdict(
        status,
        round(frac, 4),
        threshold,
        msg,
        say(N_("wipe the lens, let the camera focus before you start, and move your head slowly")),
        "fraction",
        {"median_sharpness": round(float(np.median(sharp)), 4)},
    )


@qc_check("frozen_frames", version=1, title=N_("Frozen or duplicated frames"))
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
        return Verdict("pass", 0.0, threshold, say(N_("no frozen frames")), unit="fraction")
    motion = _motion(ctx)
    local = _moving_median(motion, max(3, int(round(0.5 * (s.fps or 30))) | 1))
    diff = np.nan_to_num(s.diff, nan=np.inf)
    repeated = (diff < th.frozen_diff) | (diff < th.frozen_relative * local)
    moving = _moving_average(motion, max(1, int(round(s.fps or 30)))) >= th.idle_motion
    considered = moving & _exposed(ctx)
    considered[0] = False
    if not considered.any():
        return Verdict(
            "pass",
            None,
            threshold,
            say(N_("frozen frames not measured: no moving, well exposed footage")),
            unit="fraction",
        )
    frac = float(repeated[considered].mean())
    status = _grade_high(frac, th.frozen_warn_frac, th.frozen_fail_frac)
    msg = (
        say(N_("frozen picture: {share} of frames repeat the previous one"), share=_share(frac))
        if status != "pass"
        else say(N_("no frozen frames: {share} repeated"), share=_share(frac))
    )
    return Verdict(
        status,
        round(frac, 4),
        threshold,
        msg,
        say(
            N_(
                "close other apps, free some storage and keep the phone cool while recording; "
                "upload the original file, not a screen recording"
            )
        ),
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


@qc_check("camera_shake", version=1, title=N_("Camera shake"))
def camera_shake(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    threshold = {"warn_above": th.shake_warn_pct, "fail_above": th.shake_fail_pct}
    ok = s.shift_ok
    if ok.sum() < 10:
        return Verdict(
            "pass",
            None,
            threshold,
            say(N_("camera shake not measured: too few frames with detail")),
            unit="% of width",
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
        say(N_("heavy camera shake: the picture jumps {percent} % of its width per frame"), percent=round(value, 1))
        if status != "pass"
        else say(N_("camera steady: {percent} % of the width per frame"), percent=round(value, 2))
    )
    return Verdict(
        status,
        round(value, 3),
        threshold,
        msg,
        say(_STEADY_ADVICE[ctx.thresholds.camera_placement]),
        "% of width",
    )


@qc_check("idle", version=1, title=N_("Idle stretches"))
def idle(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    threshold = {"motion_below": th.idle_motion, "warn_above_s": th.idle_warn_s, "fail_above_s": th.idle_fail_s}
    if s.n_frames < 2:
        return Verdict("pass", 0.0, threshold, say(N_("no idle stretch")), unit="s")
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
        say(N_("idle: nothing moves for {seconds} s"), seconds=float(round(longest)))
        if status != "pass"
        else say(N_("no long idle stretch (longest {seconds} s)"), seconds=round(longest, 1))
    )
    return Verdict(
        status,
        round(longest, 2),
        threshold,
        msg,
        say(N_("keep working on the task the whole time; pause the recording while you wait instead")),
        "s",
    )


@qc_check("near_duplicate", version=1, title=N_("Near-duplicate of an earlier clip"))
def near_duplicate(ctx: CheckContext) -> Verdict:
    th = ctx.thresholds
    threshold = {"warn_above": th.duplicate_warn_score, "fail_above": th.duplicate_fail_score}
    if ctx.fingerprint is None or len(ctx.fingerprint) == 0:
        return Verdict(
            "pass", None, threshold, say(N_("duplicate not measured: no frame with enough detail")), unit="fraction"
        )
    matches = find_duplicates(ctx.fingerprint, ctx.known_fingerprints or ())
    if not matches:
        return Verdict("pass", 0.0, threshold, say(N_("not a copy of any earlier clip")), unit="fraction")
    best = matches[0]
    status: Status = (
        "fail"
        if best.score >= th.duplicate_fail_score
        else ("warn" if best.score >= th.duplicate_warn_score else "pass")
    )
    msg = (
        say(
            N_("same footage as an earlier clip: {share} of frames match clip {clip}"),
            share=_share(best.score),
            clip=best.clip_id,
        )
        if status != "pass"
        else say(N_("not a copy of any earlier clip (best match {share})"), share=_share(best.score))
    )
    return Verdict(
        status,
        round(best.score, 4),
        threshold,
        msg,
        say(N_("record a new take; each upload must be a new recording")),
        "fraction",
        {"matches": [m.to_dict() for m in matches[:5]]},
    )


@qc_check("hands_visible", version=1, title=N_("Hands in view"))
def hands_visible(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    threshold = {"score": th.hand_score, "warn_below": th.hands_warn_below, "fail_below": th.hands_fail_below}
    if s.hands_detector is None:
        # Said plainly rather than guessed: without the model this check measured nothing.
        return Verdict(
            "warn",
            None,
            threshold,
            say(N_("hands not checked: the hand detector is not installed on this server")),
            say(N_("nothing to do on your side; staff will review the clip")),
            "fraction",
            {"detector": None},
        )
    if s.hand_score.size == 0:
        return Verdict(
            "fail",
            0.0,
            threshold,
            say(N_("hands not checked: no frame was sampled")),
            say(N_("record a longer clip with your hands in view")),
            "fraction",
        )
    frac = float((s.hand_score >= th.hand_score).mean())
    status = _grade_low(frac, th.hands_warn_below, th.hands_fail_below)
    msg = (
        say(N_("hands visible in only {share} of frames"), share=_share(frac))
        if status != "pass"
        else say(N_("hands visible in {share} of frames"), share=_share(frac))
    )
    return Verdict(
        status,
        round(frac, 4),
        threshold,
        msg,
        say(_HANDS_ADVICE[ctx.thresholds.camera_placement]),
        "fraction",
        {"detector": s.hands_detector, "frames_checked": int(s.hand_score.size)},
    )


@qc_check("integrity", version=1, title=N_("File integrity"))
def integrity(ctx: CheckContext) -> Verdict:
    s, th = ctx.stats, ctx.thresholds
    frac = s.decode_errors / s.packets if s.packets else 0.0
    threshold = {"warn_above": th.decode_error_warn_frac, "fail_above": th.decode_error_fail_frac}
    status = _grade_high(frac, th.decode_error_warn_frac, th.decode_error_fail_frac)
    msg = (
        say(
            N_("the file is damaged: {errors} of {frames} frames could not be decoded"),
            errors=int(s.decode_errors),
            frames=int(s.packets),
        )
        if status != "pass"
        else say(N_("file decodes cleanly"))
    )
    return Verdict(
        status,
        round(frac, 4),
        threshold,
        msg,
        say(N_("upload the original file from the phone's gallery again, on a stable connection")),
        "fraction",
        {"decode_errors": s.decode_errors},
    )
