"""The landing page, sign-up, log-in and log-out; forgotten passwords and email links; the account
page (profile, address, password, sessions, a copy of one's data, deleting the account); notices;
and the admin's "send a password-reset link" for someone locked out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from egocrowd import i18n, notifications, privacy
from egocrowd.accounts import directory, recovery
from egocrowd.accounts import service as accounts
from egocrowd.errors import EgocrowdError
from egocrowd.i18n import N_, _, tr
from egocrowd.web.auth import check_csrf, log_in, log_out, password_login, unit, viewer
from egocrowd.web.letters import base_url, send_letters
from egocrowd.web.pages.render import TextForm, confirm_first, flash_messages, form_error, render, safe_next, see_other
from egocrowd.web.routers.account import count_attempt, export_response
from egocrowd.web.routers.api import Id
from egocrowd.web.routers.withdrawals import honour_withdrawals

router = APIRouter(include_in_schema=False)
flash_messages(
    {
        "password_reset": N_("Your password was changed. Log in with the new one."),
        "verified": N_("Your email address is confirmed. Thank you."),  # on /login too
        "deleted": N_("Your account was deleted."),
        "profile": N_("Saved."),
        "password": N_("Password changed. Your other sessions were logged out."),
        "email_sent": N_("We sent a link to the new address. It replaces the old one once you open the link."),
        "verify_sent": N_("We sent you a new link. Open it to confirm your address."),
        "reset_sent": N_("A password-reset link was sent to this person's email address."),
        "session_ended": N_("That session was logged out."),
    }
)


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
    """The same answer for a new address and one with an account: each gets its email."""
    try:
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            letter = recovery.sign_up(
                ctx.session,
                email=form.get("email", ""),
                password=form.get("password", ""),
                display_name=form.get("display_name", ""),
                country=form.get("country") or None,
                language=i18n.current(),  # the language they were browsing in
                base_url=base_url(request),
            )
    except EgocrowdError as exc:
        return render(request, "signup.html", None, status=exc.status, error=form_error(exc), form=form)
    send_letters(request, letter)
    return see_other("/signup/sent")


@router.get("/signup/sent", response_class=HTMLResponse)
def signup_sent(request: Request):
    return render(
        request,
        "account_sent.html",
        None,
        heading=_("Check your email"),
        lines=[
            _("We sent an email to the address you gave. Open the link inside to confirm it, then log in."),
            _("Nothing there after a few minutes? Look in your spam folder."),
        ],
    )


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


# --- forgotten password -----------------------------------------------------------------------------
@router.get("/forgot-password", response_class=HTMLResponse)
def forgot_form(request: Request):
    return render(request, "reset_request.html", None, form={})


@router.post("/forgot-password")
def forgot(request: Request, form: TextForm):
    """The same answer whether or not the address has an account; throttled like log-in."""
    email = form.get("email", "")
    try:
        check_csrf(request, form.get("csrf_token", ""))
        count_attempt(request, "reset", email)
        with request.app.state.db.transaction() as s:
            letter = recovery.request_password_reset(s, email, base_url=base_url(request))
    except EgocrowdError as exc:
        return render(
            request, "reset_request.html", None, status=exc.status, error=form_error(exc), form={"email": email}
        )
    send_letters(request, letter)
    return see_other("/forgot-password/sent")


@router.get("/forgot-password/sent", response_class=HTMLResponse)
def forgot_sent(request: Request):
    return render(
        request,
        "account_sent.html",
        None,
        heading=_("Check your email"),
        lines=[
            _("If an account uses this address, we sent it a link to choose a new password."),
            _("The link works once, for one hour. Nothing there after a few minutes? Look in your spam folder."),
        ],
    )


@router.get("/reset-password", response_class=HTMLResponse)
def reset_form(request: Request, token: str = ""):
    try:
        with request.app.state.db.transaction(write=False) as s:
            recovery.check_reset_link(s, token)
    except EgocrowdError as exc:
        return render(request, "reset_form.html", None, status=exc.status, error=form_error(exc), token=None)
    return render(request, "reset_form.html", None, token=token)


@router.post("/reset-password")
def reset(request: Request, form: TextForm):
    token = form.get("token", "")
    try:
        check_csrf(request, form.get("csrf_token", ""))
        count_attempt(request, "reset-link", None)
        with request.app.state.db.transaction() as s:
            recovery.reset_password(s, token, form.get("password", ""))
    except EgocrowdError as exc:
        gone = exc.code == "user.link_invalid"
        return render(
            request, "reset_form.html", None, status=exc.status, error=form_error(exc), token=None if gone else token
        )
    resp = see_other("/login?m=password_reset")
    log_out(request, resp)  # whatever session this browser had ended with the reset
    return resp


@router.get("/verify-email", response_class=HTMLResponse)
def verify(request: Request, token: str = ""):
    """The emailed confirmation link (a GET: mail programs that open links first only confirm it sooner)."""
    try:
        with request.app.state.db.transaction() as s:
            user = recovery.verify_email(s, token)
            logged_in = viewer(request, s) is user  # the link may be opened in another browser
    except EgocrowdError as exc:
        return render(
            request,
            "account_sent.html",
            None,
            status=exc.status,
            heading=_("This link does not work any more"),
            lines=[form_error(exc)["message"], _("Log in and ask for a new link on your account page.")],
        )
    return see_other("/account?m=verified" if logged_in else "/login?m=verified")


# --- the account page -----------------------------------------------------------------------------
def _account_page(request: Request, ctx, status: int = 200, **values) -> HTMLResponse:
    user = ctx.require_user()
    return render(
        request,
        "account.html",
        user,
        status=status,
        sessions=accounts.list_sessions(ctx.session, user),
        current_session=ctx.login_session_id,
        **values,
    )


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request):
    with unit(request) as ctx:
        return _account_page(request, ctx)


def _account_form(request: Request, form: dict[str, str], action, done: str):
    """Run ``action(ctx)`` for a form of the account page; its error comes back on the page."""
    try:
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            letter = action(ctx)
    except EgocrowdError as exc:
        if exc.code in ("auth.required", "auth.csrf"):
            raise
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:  # a fresh one: the failed one rolled back
            return _account_page(request, ctx, status=exc.status, error=form_error(exc), flash=None)
    send_letters(request, letter)
    return see_other(f"/account?m={done}")


@router.post("/account/profile")
def account_profile(request: Request, form: TextForm):
    def save(ctx):
        accounts.update_profile(
            ctx.session,
            ctx.require_user(),
            display_name=form.get("display_name", ""),
            country=form.get("country", ""),
            language=form.get("language", ""),
            time_zone=form.get("time_zone", ""),
        )

    return _account_form(request, form, save, "profile")


@router.post("/account/email")
def account_email(request: Request, form: TextForm):
    def change(ctx):
        return recovery.start_email_verification(
            ctx.session, ctx.require_user(), email=form.get("email", ""), base_url=base_url(request)
        )

    return _account_form(request, form, change, "email_sent")


@router.post("/account/verify")
def account_resend(request: Request, form: TextForm):
    def resend(ctx):
        user = ctx.require_user()
        return (
            None
            if user.email_verified_at
            else recovery.start_email_verification(ctx.session, user, base_url=base_url(request))
        )

    return _account_form(request, form, resend, "verify_sent")


@router.post("/account/password")
def account_password(request: Request, form: TextForm):
    def change(ctx):
        accounts.change_password(
            ctx.session,
            ctx.require_user(),
            form.get("current_password", ""),
            form.get("new_password", ""),
            keep_session=ctx.login_session_id,
        )

    return _account_form(request, form, change, "password")


@router.post("/account/sessions/{session_id}/end")
def account_end_session(request: Request, session_id: Id, form: TextForm):
    """Log out one other browser or phone (one that was lost, or lent)."""

    def end(ctx):
        accounts.revoke_session(ctx.session, ctx.require_user(), session_id)

    return _account_form(request, form, end, "session_ended")


@router.post("/account/logout-everywhere")
def account_logout_everywhere(request: Request, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        ask = confirm_first(
            request,
            user,
            form,
            question=_("Log out everywhere?"),
            consequences=[
                _("Every browser and phone logged in to your account is logged out, this one too."),
                _("Every API token of your account stops working."),
                _("Uploads in progress on other devices stop; they can go on after logging in again."),
            ],
            yes=_("Log out everywhere"),
            back="/account",
        )
        if ask is not None:
            return ask
        accounts.log_out_everywhere(ctx.session, user)
    resp = see_other("/login")
    log_out(request, resp)
    return resp


@router.post("/account/export")
def account_export(request: Request, form: TextForm):
    """Download my data (a POST: making the copy is recorded in the audit log)."""
    return export_response(request, form_csrf=form.get("csrf_token", ""))


@router.post("/account/delete")
def account_delete(request: Request, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        ask = confirm_first(
            request,
            user,
            form,
            question=_("Delete your account?"),
            consequences=[
                _("Every consent you signed is withdrawn now, and your open slots are given back."),
                _(
                    "Your name, email address and country are erased, and you are logged out everywhere. "
                    "You cannot log in again; to work again, sign up anew."
                ),
                _(
                    "Clips you already sent stay with the labs they were made for, marked with the time you "
                    "withdrew: dataset releases made from now on leave them out, and buyers of earlier releases "
                    "are told which files to delete."
                ),
                _("Money already earned stays in the ledger under a number, not your name."),
                _("Tip: download your data first. This cannot be undone."),
            ],
            yes=_("Delete my account"),
            back="/account",
        )
        if ask is not None:
            return ask
        privacy.delete_account(ctx.session, user, request.app.state.blobs)
        honour_withdrawals(request, ctx.session, user_id=user.id)
    resp = see_other("/?m=deleted")
    log_out(request, resp)
    return resp


# --- notices --------------------------------------------------------------------------------------
@router.get("/notifications", response_class=HTMLResponse)
def notifications_page(request: Request):
    with unit(request) as ctx:
        user = ctx.require_user()
        return render(request, "notifications.html", user, notes=notifications.list_for(ctx.session, user, limit=100))


@router.post("/notifications/{notification_id}/read")
def notification_read(request: Request, notification_id: Id, form: TextForm):
    """Mark one notice read and go where it points."""
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        note = notifications.mark_read(ctx.session, ctx.require_user(), notification_id)
        target = safe_next(note.link, "/notifications")
    return see_other(target)


@router.post("/notifications/read-all")
def notifications_read_all(request: Request, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        notifications.mark_all_read(ctx.session, ctx.require_user())
    return see_other("/notifications")


# --- an admin helping someone locked out --------------------------------------------------------------
@router.post("/admin/users/{user_id}/reset-password")
def admin_reset_password(request: Request, user_id: Id, form: TextForm):
    """Mail the person a reset link (their password keeps working until they use it)."""
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        target = directory.get_user(ctx.session, ctx.require_user(), user_id)
        back = f"/admin/users/{user_id}"
        ask = confirm_first(
            request,
            ctx.user,
            form,
            question=tr("Send {name} a password-reset link?", name=target.display_name),
            consequences=[
                tr("An email with a one-time link goes to {email}; it works for one hour.", email=target.email),
                _("Their current password keeps working until they choose a new one."),
                _("When they do, all their sessions end and their API tokens stop working."),
            ],
            yes=_("Send the link"),
            back=back,
        )
        if ask is not None:
            return ask
        letter = recovery.start_password_reset(ctx.session, target, actor=ctx.user, base_url=base_url(request))
    send_letters(request, letter)
    return see_other(f"{back}?m=reset_sent")
