"""Server-rendered pages (Jinja2), mobile-first. Forms post back here with a CSRF token; the
decisions are the same service calls the API makes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.datastructures import FormData

from egocrowd import __version__, clips, consent
from egocrowd.accounts import policy
from egocrowd.accounts import service as accounts
from egocrowd.campaigns import assignments
from egocrowd.campaigns import service as campaigns
from egocrowd.campaigns.schema import CampaignIn, CampaignPatch
from egocrowd.db.models import CampaignStatus, ConsentRecord, Role
from egocrowd.errors import EgocrowdError, InvalidInput
from egocrowd.web.app import HERE
from egocrowd.web.routers.api import Id
from egocrowd.web.auth import csrf_token, persist_anonymous_csrf, unit, write_cookie

templates = Jinja2Templates(directory=HERE / "templates")
FLASH = {"signed": "Consent signed. Thank you.", "claimed": "Slot claimed: your lease is running.",
         "released": "Slot released.", "withdrawn": "Consent withdrawn. Your open slots were released.",
         "saved": "Saved.", "welcome": "Welcome to egocrowd!", "status": "Campaign status changed."}


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency}"


def _filesize(n: int) -> str:
    for suffix in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or suffix == "GB":
            return f"{n:.0f} {suffix}" if suffix == "bytes" else f"{n:.1f} {suffix}"
        n /= 1024
    return str(n)


templates.env.filters["money"] = _money
templates.env.filters["filesize"] = _filesize
templates.env.globals["version"] = __version__
templates.env.globals["CampaignStatus"] = CampaignStatus


def render(request: Request, name: str, ctx_user, status: int = 200, **values) -> HTMLResponse:
    values.setdefault("flash", FLASH.get(request.query_params.get("m", "")))
    resp = templates.TemplateResponse(request, name, {"user": ctx_user, "csrf": csrf_token(request), **values},
                                      status_code=status)
    persist_anonymous_csrf(request, resp)
    return resp


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def _raw_form(request: Request) -> AsyncIterator[FormData]:
    async with request.form() as form:  # closes the temporary files of any file fields sent
        yield form


def _text_form(raw: Annotated[FormData, Depends(_raw_form)]) -> dict[str, str]:
    """The form's text fields. Our forms have no file fields: a file sent in their place is dropped
    (treated as missing), never handed to code that expects text."""
    return {k: v for k, v in raw.items() if isinstance(v, str)}


# Form handlers are plain (sync) functions taking these: the body is read on the event loop, and
# FastAPI runs the handler, with its database work, in the thread pool (never on the loop, where a
# waiting SQLite write would stall every request).
RawForm = Annotated[FormData, Depends(_raw_form)]
TextForm = Annotated[dict[str, str], Depends(_text_form)]


def _safe_next(url: str | None, default: str) -> str:
    """Only a path on this site: browsers read "/\\evil.org" (and "//evil.org") as another host."""
    if (not url or not url.startswith("/") or url.startswith("//") or "\\" in url
            or any(ch.isspace() or ord(ch) < 32 for ch in url)):
        return default
    return url


def _error(exc: Exception) -> dict:
    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        field = ".".join(str(p) for p in e["loc"])
        return {"code": "validation.failed", "message": f"{field}: {e['msg']}" if field else e["msg"]}
    return {"code": exc.code, "message": exc.message}


def install(app: FastAPI) -> None:
    def render_error(request: Request, status: int, code: str, message: str):
        if status == 401 and request.method == "GET":
            return see_other("/login?next=" + quote(request.url.path))
        with request.app.state.db.transaction(write=False) as s:
            return render(request, "error.html", _viewer(request, s), status=status, code=code, message=message)

    app.state.render_error = render_error

    # --- landing, sign-up, log-in --------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request):
        with unit(request) as ctx:
            if ctx.user is not None:
                return see_other("/campaigns")
            return render(request, "landing.html", None)

    @app.get("/signup", response_class=HTMLResponse, include_in_schema=False)
    def signup_form(request: Request):
        return render(request, "signup.html", None, form={})

    @app.post("/signup", include_in_schema=False)
    def signup(request: Request, form: TextForm):
        try:
            with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
                user = accounts.create_user(ctx.session, email=form.get("email", ""),
                                            password=form.get("password", ""),
                                            display_name=form.get("display_name", ""), role=Role.worker,
                                            country=(form.get("country") or None))
                uid = user.id
        except EgocrowdError as exc:
            return render(request, "signup.html", None, status=exc.status, error=_error(exc), form=form)
        resp = see_other("/campaigns?m=welcome")
        write_cookie(request, resp, user_id=uid)
        return resp

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str | None = None):
        return render(request, "login.html", None, next=_safe_next(next, "/campaigns"), form={})

    @app.post("/login", include_in_schema=False)
    def login(request: Request, form: TextForm):
        nxt = _safe_next(form.get("next"), "/campaigns")
        try:
            with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
                uid = accounts.authenticate(ctx.session, form.get("email", ""), form.get("password", "")).id
        except EgocrowdError as exc:
            return render(request, "login.html", None, status=exc.status, error=_error(exc), next=nxt,
                          form={"email": form.get("email", "")})
        resp = see_other(nxt)
        write_cookie(request, resp, user_id=uid)
        return resp

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, form: TextForm):
        with unit(request, form_csrf=form.get("csrf_token", "")):
            pass
        resp = see_other("/")
        write_cookie(request, resp, user_id=None)
        return resp

    # --- campaigns -----------------------------------------------------------------------------
    @app.get("/campaigns", response_class=HTMLResponse, include_in_schema=False)
    def campaign_list(request: Request):
        with unit(request) as ctx:
            user = ctx.require_user()
            only_open = CampaignStatus.open if user.role is Role.worker else None  # a worker's home: what's claimable
            rows = campaigns.list_campaigns(ctx.session, user, status=only_open)
            signed = _signed_versions(ctx.session, user)
            return render(request, "campaigns.html", user, campaigns=rows, signed=signed,
                          hourly=campaigns.hourly_rate_cents)

    @app.get("/campaigns/new", response_class=HTMLResponse, include_in_schema=False)
    def campaign_new(request: Request):
        with unit(request) as ctx:
            user = policy.require(ctx.user, "campaign.create")
            return render(request, "campaign_form.html", user, form=_default_form(), campaign=None,
                          documents=_documents(ctx.session))

    @app.post("/campaigns/new", include_in_schema=False)
    def campaign_create(request: Request, form: TextForm):
        try:
            with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
                user = policy.require(ctx.user, "campaign.create")
                c = campaigns.create_campaign(ctx.session, user, CampaignIn.model_validate(_campaign_data(form)))
                cid = c.id
        except (EgocrowdError, ValidationError) as exc:
            return _form_again(request, form, None, exc)
        return see_other(f"/campaigns/{cid}?m=saved")

    @app.get("/campaigns/{campaign_id}", response_class=HTMLResponse, include_in_schema=False)
    def campaign_detail(request: Request, campaign_id: Id):
        with unit(request) as ctx:
            user = ctx.require_user()
            c = campaigns.get_campaign(ctx.session, user, campaign_id)
            manages = policy.can(user, "campaign.manage", c)
            prog = assignments.progress(ctx.session, c) if manages else None
            qc = clips.qc_statistics(ctx.session, c.id) if manages else None
            has_consent = (user.role is Role.worker
                           and consent.active_consent(ctx.session, user, c.consent_version) is not None)
            return render(request, "campaign.html", user, c=c, manages=manages, progress=prog, qc=qc,
                          has_consent=has_consent, hourly=campaigns.hourly_rate_cents(c),
                          transitions=sorted(s.value for s in campaigns.TRANSITIONS[c.status]))

    @app.get("/campaigns/{campaign_id}/edit", response_class=HTMLResponse, include_in_schema=False)
    def campaign_edit_form(request: Request, campaign_id: Id):
        with unit(request) as ctx:
            user = ctx.require_user()
            c = campaigns.get_campaign(ctx.session, user, campaign_id)
            policy.require(user, "campaign.manage", c)
            return render(request, "campaign_form.html", user, form=_form_from(c), campaign=c,
                          documents=_documents(ctx.session))

    @app.post("/campaigns/{campaign_id}/edit", include_in_schema=False)
    def campaign_edit(request: Request, campaign_id: Id, form: TextForm):
        try:
            with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
                user = ctx.require_user()
                c = campaigns.get_campaign(ctx.session, user, campaign_id)
                data = _campaign_data(form)
                if c.status is not CampaignStatus.draft:  # live: only the pause-safe fields
                    data = {k: v for k, v in data.items() if k in campaigns.EDITABLE_WHEN_LIVE}
                else:
                    CampaignIn.model_validate(data)
                campaigns.update_campaign(ctx.session, user, campaign_id, CampaignPatch.model_validate(data))
        except (EgocrowdError, ValidationError) as exc:
            return _form_again(request, form, campaign_id, exc)
        return see_other(f"/campaigns/{campaign_id}?m=saved")

    @app.post("/campaigns/{campaign_id}/status", include_in_schema=False)
    def campaign_status(request: Request, campaign_id: Id, form: TextForm):
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            campaigns.transition(ctx.session, ctx.require_user(), campaign_id, form.get("status", ""))
        return see_other(f"/campaigns/{campaign_id}?m=status")

    @app.post("/campaigns/{campaign_id}/claim", include_in_schema=False)
    def campaign_claim(request: Request, campaign_id: Id, form: TextForm):
        settings = request.app.state.settings
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            assignments.claim(ctx.session, ctx.require_user(), campaign_id,
                              lease=timedelta(hours=settings.lease_hours), max_open=settings.max_open_assignments)
        return see_other("/assignments?m=claimed")

    # --- consent -------------------------------------------------------------------------------
    @app.get("/consent/{version}", response_class=HTMLResponse, include_in_schema=False)
    def consent_page(request: Request, version: str, next: str | None = None):
        with unit(request) as ctx:
            user = ctx.require_user()
            doc = consent.get_document(ctx.session, version)
            rec = consent.active_consent(ctx.session, user, version)
            return render(request, "consent.html", user, doc=doc, record=rec, next=_safe_next(next, "/consents"))

    @app.post("/consent/{version}", include_in_schema=False)
    def consent_sign(request: Request, version: str, raw: RawForm):
        scopes = [v for v in raw.getlist("scopes") if isinstance(v, str)]
        form = _text_form(raw)
        nxt = _safe_next(form.get("next"), "/consents")
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            worker = policy.require(ctx.user, "consent.sign")
            consent.sign(ctx.session, worker, version, list(scopes), document_sha256=form.get("sha256") or None)
        return see_other(nxt + ("&" if "?" in nxt else "?") + "m=signed")

    @app.get("/consents", response_class=HTMLResponse, include_in_schema=False)
    def consents_page(request: Request):
        with unit(request) as ctx:
            import sqlalchemy as sa
            user = ctx.require_user()
            rows = list(ctx.session.scalars(sa.select(ConsentRecord).where(ConsentRecord.user_id == user.id)
                                            .order_by(ConsentRecord.id.desc())))
            return render(request, "consents.html", user, records=rows, documents=_documents(ctx.session))

    @app.post("/consents/{record_id}/withdraw", include_in_schema=False)
    def consent_withdraw(request: Request, record_id: Id, form: TextForm):
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            consent.withdraw(ctx.session, ctx.require_user(), record_id)
        return see_other("/consents?m=withdrawn")

    # --- assignments ---------------------------------------------------------------------------
    @app.get("/assignments", response_class=HTMLResponse, include_in_schema=False)
    def assignments_page(request: Request):
        with unit(request) as ctx:
            user = ctx.require_user()
            rows = assignments.list_assignments(ctx.session, user)
            return render(request, "assignments.html", user, assignments=rows)

    @app.post("/assignments/{assignment_id}/release", include_in_schema=False)
    def assignment_release(request: Request, assignment_id: Id, form: TextForm):
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            user = ctx.require_user()
            assignments.release(ctx.session, user, assignments.get_assignment(ctx.session, user, assignment_id))
        return see_other("/assignments?m=released")


# --- helpers --------------------------------------------------------------------------------------
def _signed_versions(session, user) -> set[str]:
    import sqlalchemy as sa
    from egocrowd.db.models import ConsentDocument
    rows = session.scalars(sa.select(ConsentDocument.version).join(ConsentRecord)
                           .where(ConsentRecord.user_id == user.id, ConsentRecord.withdrawn_at.is_(None)))
    return set(rows)


def _documents(session):
    import sqlalchemy as sa
    from egocrowd.db.models import ConsentDocument
    return list(session.scalars(sa.select(ConsentDocument).order_by(ConsentDocument.id)))


_REQ_NUMBERS = ("min_duration_s", "max_duration_s", "min_width", "min_height", "min_fps", "max_upload_mb")


def _campaign_data(form: dict) -> dict:
    """Flat form fields → the nested shape CampaignIn validates."""
    pay = form.get("pay", "").strip()
    try:
        pay_cents = round(float(pay) * 100) if pay else None
    except (ValueError, OverflowError):  # "abc", "nan", "inf"
        raise InvalidInput("Pay per clip must be a number like 1.50.", code="validation.failed") from None
    req = {k: form.get(k) for k in _REQ_NUMBERS if form.get(k)}
    req.update(orientation=form.get("orientation") or "landscape",
               camera_placement=form.get("camera_placement") or "head_mounted",
               hands_in_view=form.get("hands_in_view") == "on")
    return {"title": form.get("title", ""), "instructions": form.get("instructions", ""),
            "requirements": req, "taxonomy": {"verbs": form.get("verbs", ""), "nouns": form.get("nouns", "")},
            "target_clips": form.get("target_clips") or None, "pay_cents": pay_cents,
            "currency": (form.get("currency") or "USD").upper(), "expected_minutes": form.get("expected_minutes") or None,
            "allowed_countries": form.get("allowed_countries", ""),
            "data_use": {k: form.get(f"use_{k}") == "on" for k in ("train", "commercial", "redistribute")},
            "buyer_name": form.get("buyer_name", ""), "consent_version": form.get("consent_version", "")}


def _default_form() -> dict:
    return {"min_duration_s": 20, "max_duration_s": 90, "min_width": 640, "min_height": 360, "min_fps": 24,
            "max_upload_mb": 500, "orientation": "landscape", "camera_placement": "head_mounted",
            "hands_in_view": "on", "currency": "USD", "use_train": "on", "target_clips": 100,
            "expected_minutes": 5, "pay": "1.50"}


def _form_from(c) -> dict:
    f = {"title": c.title, "instructions": c.instructions, "target_clips": c.target_clips,
         "pay": f"{c.pay_cents / 100:.2f}", "currency": c.currency, "expected_minutes": c.expected_minutes,
         "allowed_countries": ", ".join(c.allowed_countries), "buyer_name": c.buyer_name,
         "consent_version": c.consent_version, "verbs": ", ".join(c.taxonomy.get("verbs", [])),
         "nouns": ", ".join(c.taxonomy.get("nouns", []))}
    f.update({k: c.requirements.get(k) for k in _REQ_NUMBERS})
    f.update(orientation=c.requirements.get("orientation"), camera_placement=c.requirements.get("camera_placement"),
             hands_in_view="on" if c.requirements.get("hands_in_view") else "")
    f.update({f"use_{k}": "on" if v else "" for k, v in c.data_use.items()})
    return f


def _viewer(request, session):
    """Who is looking, for pages rendered outside a unit of work (error pages, forms shown again)."""
    from egocrowd.db.models import User
    from egocrowd.web.auth import read_cookie

    uid = read_cookie(request).get("uid")
    return session.get(User, uid) if uid else None


def _form_again(request, form, campaign_id, exc):
    from egocrowd.db.models import Campaign

    with request.app.state.db.transaction(write=False) as s:
        c = s.get(Campaign, campaign_id) if campaign_id else None
        return render(request, "campaign_form.html", _viewer(request, s), status=422, form=form, campaign=c,
                      documents=_documents(s), error=_error(exc))
