"""Reading and signing a consent document; the worker's consents and withdrawing one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from egocrowd import consent
from egocrowd.accounts import policy
from egocrowd.campaigns import assignments
from egocrowd.web.auth import unit
from egocrowd.web.pages.render import (
    RawForm,
    TextForm,
    render,
    safe_next,
    see_other,
    text_fields,
)
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)


@router.get("/consent/{version}", response_class=HTMLResponse)
def consent_page(request: Request, version: str, next: str | None = None):
    with unit(request) as ctx:
        user = ctx.require_user()
        doc = consent.get_document(ctx.session, version)
        rec = consent.active_consent(ctx.session, user, version)
        return render(request, "consent.html", user, doc=doc, record=rec, next=safe_next(next, "/consents"))


@router.post("/consent/{version}")
def consent_sign(request: Request, version: str, raw: RawForm):
    scopes = [v for v in raw.getlist("scopes") if isinstance(v, str)]
    form = text_fields(raw)
    nxt = safe_next(form.get("next"), "/consents")
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        worker = policy.require(ctx.user, "consent.sign")
        consent.sign(ctx.session, worker, version, scopes, document_sha256=form.get("sha256") or None)
    return see_other(nxt + ("&" if "?" in nxt else "?") + "m=signed")


@router.get("/consents", response_class=HTMLResponse)
def consents_page(request: Request):
    with unit(request) as ctx:
        user = ctx.require_user()
        rows = consent.list_consents(ctx.session, user, user_id=user.id)  # one's own, admins included
        return render(request, "consents.html", user, records=rows, documents=consent.list_documents(ctx.session))


@router.post("/consents/{record_id}/withdraw")
def consent_withdraw(request: Request, record_id: Id, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        assignments.withdraw_consent(ctx.session, ctx.require_user(), record_id)
    return see_other("/consents?m=withdrawn")
