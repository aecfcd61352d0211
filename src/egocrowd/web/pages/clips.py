"""The phone capture page of an assignment, the clips list and one clip's page (with its QC report).

The clips pages refresh themselves while a clip is being checked: static/clips.js fetches the same
page again and swaps in the cards whose status changed (one mechanism for the list and the detail)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from egocrowd import clips
from egocrowd.campaigns import assignments
from egocrowd.web.auth import unit
from egocrowd.web.pages.render import render
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)
MB = 1024 * 1024

#: The checklist line of each mount, and what the worker confirms after recording ("any": no mount item).
MOUNTS = {
    "head_mounted": (
        "Phone on a forehead strap, camera tilted down at what your hands do.",
        "I recorded with the phone on a forehead strap.",
    ),
    "chest_mounted": (
        "Phone in a chest harness at sternum height, camera tilted down at your hands.",
        "I recorded with the phone in a chest harness at sternum height.",
    ),
    "handheld": (
        "Phone held in one hand, pointed at the work; your other hand does the task.",
        "I recorded holding the phone in one hand while the other hand did the task.",
    ),
}
ORIENTATIONS = {
    "landscape": "Phone turned sideways (landscape) the whole time.",
    "portrait": "Phone upright (portrait) the whole time.",
}
#: A clip's status in the worker's words, and the pill colour it is shown in.
STATUS_WORDS = {
    "processing": ("being checked", "submitted"),
    "qc_passed": ("passed the checks", "accepted"),
    "qc_failed": ("needs another take", "rejected"),
    "rejected": ("could not be used", "rejected"),
    "error": ("problem on our side", "closed"),
}


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
            "instructions": a.campaign.instructions,
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
            feedback=clips.feedback,
            status_words=STATUS_WORDS,
            flash="Upload complete: your clip is being checked." if uploaded else None,
        )


@router.get("/clips/{clip_id}", response_class=HTMLResponse)
def clip_page(request: Request, clip_id: Id):
    with unit(request) as ctx:
        user = ctx.require_user()
        clip = clips.get_clip(ctx.session, user, clip_id)
        return render(
            request,
            "clip.html",
            user,
            c=clip,
            feedback=clips.feedback,
            status_words=STATUS_WORDS,
            mounts={k: v[0] for k, v in MOUNTS.items()},
        )
