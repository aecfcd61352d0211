"""The landing page, sign-up, log-in and log-out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from egocrowd.accounts import service as accounts
from egocrowd.db.models import Role
from egocrowd.errors import EgocrowdError
from egocrowd.web.auth import log_in, log_out, password_login, unit
from egocrowd.web.pages.render import TextForm, form_error, render, safe_next, see_other

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request):
    with unit(request) as ctx:
        if ctx.user is not None:
            return see_other("/campaigns")
        return render(request, "landing.html", None)


@router.get("/signup", response_class=HTMLResponse)
def signup_form(request: Request):
    return render(request, "signup.html", None, form={})


@router.post("/signup")
def signup(request: Request, form: TextForm):
    try:
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            user = accounts.create_user(
                ctx.session,
                email=form.get("email", ""),
                password=form.get("password", ""),
                display_name=form.get("display_name", ""),
                role=Role.worker,
                country=(form.get("country") or None),
            )
            uid = user.id
    except EgocrowdError as exc:
        return render(request, "signup.html", None, status=exc.status, error=form_error(exc), form=form)
    resp = see_other("/campaigns?m=welcome")
    log_in(request, resp, uid)
    return resp


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None):
    return render(request, "login.html", None, next=safe_next(next, "/campaigns"), form={})


@router.post("/login")
def login(request: Request, form: TextForm):
    nxt = safe_next(form.get("next"), "/campaigns")
    try:
        uid = password_login(
            request, form.get("email", ""), form.get("password", ""), form_csrf=form.get("csrf_token", "")
        )
    except EgocrowdError as exc:
        resp = render(
            request,
            "login.html",
            None,
            status=exc.status,
            error=form_error(exc),
            next=nxt,
            form={"email": form.get("email", "")},
        )
        if "retry_after" in exc.extra:  # throttled: the same wait the API announces
            resp.headers["Retry-After"] = str(exc.extra["retry_after"])
        return resp
    redirect = see_other(nxt)
    log_in(request, redirect, uid)
    return redirect


@router.post("/logout")
def logout(request: Request, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")):
        pass
    resp = see_other("/")
    log_out(request, resp)
    return resp
