"""The phone capture page of an assignment and the clips list (with each clip's QC feedback)."""

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


@router.get("/assignments/{assignment_id}/capture", response_class=HTMLResponse)
def capture_page(request: Request, assignment_id: Id):
    with unit(request) as ctx:
        worker = ctx.require_user()
        a = assignments.require_active_lease(ctx.session, worker, assignment_id)
        req = a.campaign.requirements
        capture = {
            "assignment": a.id,
            "min_duration": req.get("min_duration_s", 0),
            "max_duration": req.get("max_duration_s", 600),
            "min_width": req.get("min_width", 0),
            "min_height": req.get("min_height", 0),
            "max_bytes": int(req.get("max_upload_mb", 500)) * MB,
            "redirect": "/clips?m=uploaded",
            "instructions": a.campaign.instructions,
        }
        return render(request, "capture.html", worker, a=a, capture=capture)


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
            flash="Upload complete: your clip is being checked." if uploaded else None,
        )
