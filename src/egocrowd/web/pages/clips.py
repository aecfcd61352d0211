"""The phone capture page of an assignment, the clips list and one clip's page (with its QC report).

The clips pages refresh themselves while a clip is being checked: static/clips.js fetches the same
page again and swaps in the cards whose status changed (one mechanism for the list and the detail)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from egocrowd import clips
from egocrowd.accounts import policy
from egocrowd.campaigns import assignments
from egocrowd.campaigns import service as campaigns
from egocrowd.clips import media, redaction
from egocrowd.db.models import Clip
from egocrowd.errors import EgocrowdError, InvalidInput
from egocrowd.i18n import N_, _
from egocrowd.labels import review
from egocrowd.releases import lineage
from egocrowd.web.auth import Ctx, unit
from egocrowd.web.pages.render import TextForm, flash_messages, form_action, form_error, page_unit, render, see_other
from egocrowd.web.routers.admin import raw_link
from egocrowd.web.routers.api import Id
from egocrowd.web.routers.clips import derived_video

router = APIRouter(include_in_schema=False)
MB = 1024 * 1024

#: The checklist line of each mount, and what the worker confirms after recording ("any": no mount item).
MOUNTS = {
    "head_mounted": (
        N_("Phone on a forehead strap, camera tilted down at what your hands do."),
        N_("I recorded with the phone on a forehead strap."),
    ),
    "chest_mounted": (
        N_("Phone in a chest harness at sternum height, camera tilted down at your hands."),
        N_("I recorded with the phone in a chest harness at sternum height."),
    ),
    "handheld": (
        N_("Phone held in one hand, pointed at the work; your other hand does the task."),
        N_("I recorded holding the phone in one hand while the other hand did the task."),
    ),
}
ORIENTATIONS = {
    "landscape": N_("Phone turned sideways (landscape) the whole time."),
    "portrait": N_("Phone upright (portrait) the whole time."),
}
#: A clip's status in the worker's words, and the pill colour it is shown in.
STATUS_WORDS = {
    "processing": (N_("being checked"), "submitted"),
    "qc_passed": (N_("passed the checks: waiting for acceptance"), "submitted"),
    "qc_failed": (N_("needs another take"), "rejected"),
    "rejected": (N_("could not be used"), "rejected"),
    "error": (N_("problem on our side"), "closed"),
    "accepted": (N_("accepted"), "accepted"),
    "declined": (N_("not accepted"), "rejected"),
    "withdrawn": (N_("withdrawn: left out of every new release"), "closed"),
}


def _feedback(c: Clip) -> list[dict]:
    """The checks' words in the viewer's language (the report keeps each verdict's msgid)."""
    return clips.feedback(c, localized=True)


def _campaign_title(c) -> str:
    """A campaign's title in the viewer's language where the lab wrote one."""
    return campaigns.localized(c)[0]


@router.get("/assignments/{assignment_id}/capture", response_class=HTMLResponse)
def capture_page(request: Request, assignment_id: Id):
    with unit(request) as ctx:
        worker = ctx.require_user()
        a = assignments.require_active_lease(ctx.session, worker, assignment_id)
        req = a.campaign.requirements
        mount = req.get("camera_placement", "any")
        capture = {
            "assignment": a.id,
            "min_duration": req.get("min_duration_s", 0),
            "max_duration": req.get("max_duration_s", 600),
            "min_width": req.get("min_width", 0),
            "min_height": req.get("min_height", 0),
            "min_fps": req.get("min_fps", 0),
            "orientation": req.get("orientation", "any"),
            "mount": mount if mount in MOUNTS else "",
            "mount_confirm": MOUNTS[mount][1] if mount in MOUNTS else "",
            "max_bytes": int(req.get("max_upload_mb", 500)) * MB,
            "redirect": "/clips?m=uploaded",
            "instructions": campaigns.localized(a.campaign)[1],  # in the worker's language when the lab wrote it
        }
        checklist = [MOUNTS[mount][0]] if mount in MOUNTS else []
        if capture["orientation"] in ORIENTATIONS:
            checklist.append(ORIENTATIONS[capture["orientation"]])
        return render(request, "capture.html", worker, a=a, capture=capture, checklist=checklist)


@router.get("/clips", response_class=HTMLResponse)
def clips_page(request: Request):
    with unit(request) as ctx:
        user = ctx.require_user()
        rows = clips.list_clips(ctx.session, user)
        uploaded = request.query_params.get("m") == "uploaded"
        return render(
            request,
            "clips.html",
            user,
            clips=rows,
            feedback=_feedback,
            campaign_title=_campaign_title,
            file_name=_file_name(user),
            status_words=STATUS_WORDS,
            flash=_("Upload complete: your clip is being checked.") if uploaded else None,
        )


flash_messages(
    {
        "deid_requested": N_("De-identification is queued: the new video goes to the redaction review."),
        "edit_added": N_("Correction saved. Re-render to see it in the video."),
        "edit_withdrawn": N_("Correction withdrawn. Re-render to see the change in the video."),
        "rerender": N_("Re-render queued: the video is being made again with the corrections."),
        "reviewed": N_("Marked reviewed: the clip's video is now shown to its worker and lab."),
        "appealed": N_("Appeal sent: a reviewer will look at it, and you will be told the outcome."),
    }
)


_view = page_unit


def _file_name(user) -> Callable[[Clip], str]:
    """The clip card's file name for ``user``: the phone's own name only for the clip's worker and
    admins, ``clip-<id>.<ext>`` for the lab and reviewers (the API's rule, clips.source_details)."""
    return lambda c: str(clips.source_details(user, c)["original_name"])


def _act(request: Request, form: dict[str, str], work: Callable[[Ctx], Response], redraw: Callable[..., Response]):
    return form_action(request, form, work, redraw, redraw_codes={"consent.missing"})


def _show_clip(request: Request, clip_id: int, *, status: int = 200, **values) -> Response:
    with _view(request) as ctx:
        user = ctx.require_user()
        clip = media.find_clip(ctx.session, user, clip_id)  # the worker, the lab, reviewers, admins
        return render(
            request,
            "clip.html",
            user,
            status=status,
            c=clip,
            feedback=_feedback,
            campaign_title=_campaign_title,
            file_name=_file_name(user),
            status_words=STATUS_WORDS,
            mounts={k: v[0] for k, v in MOUNTS.items()},
            video_ready=media.derived_ready_for(user, clip),
            standing=None if media.derived_ready_for(user, clip) else media.not_deidentified(user, clip).message,
            may_review=policy.can(user, "clip.review_redaction"),
            may_view_raw=policy.can(user, "clip.view_raw"),
            # acceptance and appeal (#10): the reviewer's verdict, the worker's one appeal
            verdict=review.earlier_decision(ctx.session, clip.id),
            appeal=review.appeal_for(ctx.session, clip.id),
            may_appeal=review.can_appeal(ctx.session, user, clip),
            reject_reasons=review.REJECT_REASONS,
            lineage=lineage.clip_lineage(
                ctx.session, clip, secret=request.app.state.settings.resolved_secret_key()
            ).steps,
            **values,
        )


@router.get("/clips/{clip_id}", response_class=HTMLResponse)
def clip_page(request: Request, clip_id: Id):
    return _show_clip(request, clip_id)


@router.get("/clips/{clip_id}/video")
def clip_video(request: Request, clip_id: Id):
    """The de-identified video for the page's <video> tag (session cookie; Range answered)."""
    return derived_video(request, clip_id)


@router.post("/clips/{clip_id}/raw")
def clip_raw(request: Request, clip_id: Id, form: TextForm):
    """An admin's "View original (audited)": the reason goes to the audit log, then the browser is
    sent to the short-lived link."""
    request.state.form_csrf = form.get("csrf_token", "")
    try:
        return see_other(raw_link(request, clip_id, form.get("reason"), request.state.form_csrf))
    except EgocrowdError as exc:
        if exc.status in (401, 403):
            raise
        # the reason's own problem is shown next to its field (a form sent without JS skips minlength)
        where = "raw_error" if exc.extra.get("field") == "reason" else "error"
        return _show_clip(request, clip_id, status=exc.status, form=form, **{where: form_error(exc)})


@router.post("/clips/{clip_id}/deidentify")
def clip_deidentify(request: Request, clip_id: Id, form: TextForm):
    """A reviewer or admin asks for a clip to be de-identified (e.g. one that failed QC)."""

    def work(ctx: Ctx) -> Response:
        redaction.request_deidentify(ctx.session, ctx.require_user(), clip_id, "asked on the clip page")
        return see_other(f"/clips/{clip_id}?m=deid_requested")

    return _act(request, form, work, lambda **v: _show_clip(request, clip_id, **v))


@router.post("/clips/{clip_id}/appeal")
def clip_appeal(request: Request, clip_id: Id, form: TextForm):
    """The clip's worker disputes a failed check or a rejection, once (labels.review.appeal)."""

    def work(ctx: Ctx) -> Response:
        review.appeal(ctx.session, ctx.require_user(), clip_id, form.get("comment", ""))
        return see_other(f"/clips/{clip_id}?m=appealed")

    return _act(request, form, work, lambda **v: _show_clip(request, clip_id, appeal_error=v.pop("error", None), **v))


# --- redaction review (issue #9) ----------------------------------------------------------------------
@router.get("/review/redaction", response_class=HTMLResponse)
def review_queue_page(request: Request):
    with unit(request) as ctx:
        user = ctx.require_user()
        return render(request, "review_queue.html", user, queue=redaction.review_queue(ctx.session, user))


def _show_review(request: Request, clip_id: int, *, status: int = 200, **values) -> Response:
    with _view(request) as ctx:
        user = ctx.require_user()
        plan = redaction.plan(ctx.session, user, clip_id)
        clip = redaction.get_clip(ctx.session, user, clip_id)
        tracks = []
        times = plan["frame_times"]
        for t in (plan["plan"] or {}).get("tracks", []):
            seen = [int(b[0]) for b in t.get("boxes", [])] or [0]
            first, last = min(seen), max(seen)
            tracks.append(
                {
                    **{k: t.get(k) for k in ("id", "category", "source")},
                    # a region a reviewer added is named by its correction, not by its internal track id
                    "edit": redaction.reviewer_edit(t.get("source")),
                    "first": first,
                    "last": last,
                    "start_s": times[first] if first < len(times) else 0,
                    "end_s": times[last] if last < len(times) else 0,
                }
            )
        values.setdefault("form", {})
        return render(
            request,
            "review_clip.html",
            user,
            status=status,
            c=clip,
            plan=plan,
            tracks=tracks,
            frames=len(times),
            edits=plan["edits"],
            **values,
        )


@router.get("/review/redaction/{clip_id}", response_class=HTMLResponse)
def review_page(request: Request, clip_id: Id):
    return _show_review(request, clip_id)


def _opt_int(form: dict[str, str], name: str) -> int | None:
    value = (form.get(name) or "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(
            f"{name.replace('_', ' ')} must be a whole number.", code="validation.failed", field=name
        ) from None


def _box_of(form: dict[str, str]) -> list[float]:
    try:
        return [float(form.get(k) or "") for k in ("x0", "y0", "x1", "y1")]
    except ValueError:
        raise InvalidInput(
            "Draw the box on the video, or type its corners as fractions between 0 and 1.",
            code="redaction.bad_box",
            field="box",
        ) from None


@router.post("/review/redaction/{clip_id}/edits")
def review_add(request: Request, clip_id: Id, form: TextForm):
    def work(ctx: Ctx) -> Response:
        kind = form.get("kind", "")
        redaction.add_edit(
            ctx.session,
            ctx.require_user(),
            clip_id,
            kind=kind,
            box=_box_of(form) if kind == "add" else None,
            frame_start=_opt_int(form, "frame_start"),
            frame_end=_opt_int(form, "frame_end"),
            track_id=_opt_int(form, "track_id"),
            note=form.get("note", ""),
        )
        return see_other(f"/review/redaction/{clip_id}?m=edit_added")

    return _act(request, form, work, lambda **v: _show_review(request, clip_id, **v))


@router.post("/review/redaction/{clip_id}/edits/{edit_id}/withdraw")
def review_withdraw(request: Request, clip_id: Id, edit_id: Id, form: TextForm):
    def work(ctx: Ctx) -> Response:
        redaction.withdraw_edit(ctx.session, ctx.require_user(), clip_id, edit_id)
        return see_other(f"/review/redaction/{clip_id}?m=edit_withdrawn")

    return _act(request, form, work, lambda **v: _show_review(request, clip_id, **v))


@router.post("/review/redaction/{clip_id}/rerender")
def review_rerender(request: Request, clip_id: Id, form: TextForm):
    def work(ctx: Ctx) -> Response:
        redaction.request_deidentify(ctx.session, ctx.require_user(), clip_id, "rerender after review")
        return see_other(f"/review/redaction/{clip_id}?m=rerender")

    return _act(request, form, work, lambda **v: _show_review(request, clip_id, **v))


@router.post("/review/redaction/{clip_id}/reviewed")
def review_done(request: Request, clip_id: Id, form: TextForm):
    def work(ctx: Ctx) -> Response:
        redaction.mark_reviewed(ctx.session, ctx.require_user(), clip_id)
        return see_other(f"/review/redaction/{clip_id}?m=reviewed")

    return _act(request, form, work, lambda **v: _show_review(request, clip_id, **v))
