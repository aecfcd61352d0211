"""Campaign pages: the list, one campaign, the create/edit form, status changes and claiming a slot."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from egocrowd import clips, consent
from egocrowd.accounts import policy
from egocrowd.campaigns import assignments
from egocrowd.campaigns import service as campaigns
from egocrowd.campaigns.schema import CampaignIn, CampaignPatch
from egocrowd.db.models import CampaignStatus
from egocrowd.errors import Conflict, EgocrowdError, InvalidInput
from egocrowd.web.auth import unit, viewer
from egocrowd.web.pages.render import TextForm, form_error, render, see_other
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)


@router.get("/campaigns", response_class=HTMLResponse)
def campaign_list(request: Request):
    with unit(request) as ctx:
        user = ctx.require_user()
        only_open = CampaignStatus.open if policy.can(user, "work.take") else None  # a worker's home: what's claimable
        rows = campaigns.list_campaigns(ctx.session, user, status=only_open)
        return render(
            request,
            "campaigns.html",
            user,
            campaigns=rows,
            signed=consent.signed_versions(ctx.session, user),
            hourly=campaigns.hourly_rate_cents,
        )


@router.get("/campaigns/new", response_class=HTMLResponse)
def campaign_new(request: Request):
    with unit(request) as ctx:
        user = policy.require(ctx.user, "campaign.create")
        return render(
            request,
            "campaign_form.html",
            user,
            form=_default_form(),
            campaign=None,
            documents=consent.list_documents(ctx.session),
        )


@router.post("/campaigns/new")
def campaign_create(request: Request, form: TextForm):
    try:
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            user = policy.require(ctx.user, "campaign.create")
            cid = campaigns.create_campaign(ctx.session, user, CampaignIn.model_validate(_campaign_data(form))).id
    except (EgocrowdError, ValidationError) as exc:
        return _form_again(request, form, exc)
    return see_other(f"/campaigns/{cid}?m=saved")


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_detail(request: Request, campaign_id: Id):
    with unit(request) as ctx:
        user = ctx.require_user()
        c = campaigns.get_campaign(ctx.session, user, campaign_id)
        manages = policy.can(user, "campaign.manage", c)
        prog = assignments.progress(ctx.session, c) if manages else None
        qc = clips.qc_statistics(ctx.session, c.id) if manages else None
        has_consent = (
            policy.can(user, "consent.sign")
            and consent.active_consent(ctx.session, user, c.consent_version) is not None
        )
        return render(
            request,
            "campaign.html",
            user,
            c=c,
            manages=manages,
            progress=prog,
            qc=qc,
            has_consent=has_consent,
            hourly=campaigns.hourly_rate_cents(c),
            transitions=sorted(s.value for s in campaigns.TRANSITIONS[c.status]),
        )


@router.get("/campaigns/{campaign_id}/edit", response_class=HTMLResponse)
def campaign_edit_form(request: Request, campaign_id: Id):
    with unit(request) as ctx:
        user = ctx.require_user()
        c = campaigns.get_managed_campaign(ctx.session, user, campaign_id)
        return render(
            request,
            "campaign_form.html",
            user,
            form=_form_from(c),
            campaign=c,
            documents=consent.list_documents(ctx.session),
        )


@router.post("/campaigns/{campaign_id}/edit")
def campaign_edit(request: Request, campaign_id: Id, form: TextForm):
    try:
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            user = ctx.require_user()
            c = campaigns.get_managed_campaign(ctx.session, user, campaign_id)
            data = _campaign_data(form)
            if c.status is not CampaignStatus.draft:  # live: only the pause-safe fields
                data = {k: v for k, v in data.items() if k in campaigns.EDITABLE_WHEN_LIVE}
            else:
                CampaignIn.model_validate(data)
            campaigns.update_campaign(ctx.session, user, campaign_id, CampaignPatch.model_validate(data))
    except (EgocrowdError, ValidationError) as exc:
        return _form_again(request, form, exc, campaign_id)
    return see_other(f"/campaigns/{campaign_id}?m=saved")


@router.post("/campaigns/{campaign_id}/status")
def campaign_status(request: Request, campaign_id: Id, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        campaigns.transition(ctx.session, ctx.require_user(), campaign_id, form.get("status", ""))
    return see_other(f"/campaigns/{campaign_id}?m=status")


@router.post("/campaigns/{campaign_id}/claim")
def campaign_claim(request: Request, campaign_id: Id, form: TextForm):
    settings = request.app.state.settings
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        assignments.claim(
            ctx.session,
            ctx.require_user(),
            campaign_id,
            lease=timedelta(hours=settings.lease_hours),
            max_open=settings.max_open_assignments,
        )
    return see_other("/assignments?m=claimed")


def _form_again(request: Request, form: dict, exc: Exception, campaign_id: int | None = None):
    """The form back with the viewer's input and what was wrong with it, only for a mistake in the
    input and only to a viewer who may fill in this form. Anyone else gets the plain error: the form
    shows the campaign (a draft's title, its terms), so it must never answer a stranger (issue #16)."""
    if not isinstance(exc, (ValidationError, InvalidInput, Conflict)):
        raise exc
    with request.app.state.db.transaction(write=False) as s:
        user = viewer(request, s)
        try:
            if campaign_id is None:
                campaign = None
                policy.require(user, "campaign.create")
            else:
                campaign = campaigns.get_managed_campaign(s, user, campaign_id)
        except EgocrowdError:
            raise exc from None
        status = exc.status if isinstance(exc, EgocrowdError) else 422
        return render(
            request,
            "campaign_form.html",
            user,
            status=status,
            form=form,
            campaign=campaign,
            documents=consent.list_documents(s),
            error=form_error(exc),
        )


_REQ_NUMBERS = ("min_duration_s", "max_duration_s", "min_width", "min_height", "min_fps", "max_upload_mb")


def _campaign_data(form: dict) -> dict:
    """Flat form fields → the nested shape CampaignIn validates."""
    pay = form.get("pay", "").strip()
    try:
        pay_cents = round(float(pay) * 100) if pay else None
    except (ValueError, OverflowError):  # "abc", "nan", "inf"
        raise InvalidInput("Pay per clip must be a number like 1.50.", code="validation.failed") from None
    req = {k: form.get(k) for k in _REQ_NUMBERS if form.get(k)}
    req.update(
        orientation=form.get("orientation") or "landscape",
        camera_placement=form.get("camera_placement") or "head_mounted",
        hands_in_view=form.get("hands_in_view") == "on",
    )
    return {
        "title": form.get("title", ""),
        "instructions": form.get("instructions", ""),
        "requirements": req,
        "taxonomy": {"verbs": form.get("verbs", ""), "nouns": form.get("nouns", "")},
        "target_clips": form.get("target_clips") or None,
        "pay_cents": pay_cents,
        "currency": (form.get("currency") or "USD").upper(),
        "expected_minutes": form.get("expected_minutes") or None,
        "allowed_countries": form.get("allowed_countries", ""),
        "data_use": {k: form.get(f"use_{k}") == "on" for k in ("train", "commercial", "redistribute")},
        "buyer_name": form.get("buyer_name", ""),
        "consent_version": form.get("consent_version", ""),
    }


def _default_form() -> dict:
    return {
        "min_duration_s": 20,
        "max_duration_s": 90,
        "min_width": 640,
        "min_height": 360,
        "min_fps": 24,
        "max_upload_mb": 500,
        "orientation": "landscape",
        "camera_placement": "head_mounted",
        "hands_in_view": "on",
        "currency": "USD",
        "use_train": "on",
        "target_clips": 100,
        "expected_minutes": 5,
        "pay": "1.50",
    }


def _form_from(c) -> dict:
    f = {
        "title": c.title,
        "instructions": c.instructions,
        "target_clips": c.target_clips,
        "pay": f"{c.pay_cents / 100:.2f}",
        "currency": c.currency,
        "expected_minutes": c.expected_minutes,
        "allowed_countries": ", ".join(c.allowed_countries),
        "buyer_name": c.buyer_name,
        "consent_version": c.consent_version,
        "verbs": ", ".join(c.taxonomy.get("verbs", [])),
        "nouns": ", ".join(c.taxonomy.get("nouns", [])),
    }
    f.update({k: c.requirements.get(k) for k in _REQ_NUMBERS})
    f.update(
        orientation=c.requirements.get("orientation"),
        camera_placement=c.requirements.get("camera_placement"),
        hands_in_view="on" if c.requirements.get("hands_in_view") else "",
    )
    f.update({f"use_{k}": "on" if v else "" for k, v in c.data_use.items()})
    return f
