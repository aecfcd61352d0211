"""The caller's own account: logging in (throttled), logging out, password (and resetting it by
email), confirming the address, profile, sessions, API tokens, notices, a copy of one's data and
deleting the account. Email goes out after the transaction committed (:func:`send_letters`)."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field, StringConstraints
from starlette.background import BackgroundTask

from egocrowd import notifications, privacy
from egocrowd.accounts import login as throttle
from egocrowd.accounts import recovery
from egocrowd.accounts import service as accounts
from egocrowd.db.models import User
from egocrowd.inputs import InputModel
from egocrowd.web.auth import client_address, log_in, log_out, password_login, unit
from egocrowd.web.letters import SENT, base_url, send_letters
from egocrowd.web.routers.api import Id
from egocrowd.web.routers.withdrawals import honour_withdrawals
from egocrowd.web.schemas import (
    IssuedTokenOut,
    NotificationOut,
    Page,
    SessionOut,
    TokenOut,
    UserOut,
    page_of,
)

router = APIRouter(prefix="/api/v1", tags=["accounts"])
#: Passwords are used exactly as typed, here as in the forms (the API strips other strings).
Password = Annotated[str, StringConstraints(strip_whitespace=False, max_length=200)]


class _In(InputModel):
    pass


class LoginIn(_In):
    email: str = Field(max_length=254)
    password: Password
    token_name: str = Field("api", min_length=1, max_length=100)


class PasswordIn(_In):
    current_password: Password
    new_password: Password


@router.post(
    "/auth/token",
    status_code=201,
    response_model=IssuedTokenOut,
    responses={401: {"description": "auth.bad_credentials"}, 429: {"description": "auth.throttled"}},
)
def login_for_token(request: Request, body: LoginIn):
    """Exchange email + password for an API token (shown once; send it as ``Authorization: Bearer``).
    It expires after the ``token_days`` setting. Too many failed attempts: 429 with Retry-After."""
    uid = password_login(request, body.email, body.password)
    days = request.app.state.settings.token_days
    with unit(request) as ctx:
        user = ctx.session.get_one(User, uid)  # the account that just logged in
        row, token = accounts.issue_token(
            ctx.session, user, body.token_name, ttl=timedelta(days=days) if days else None
        )
        return IssuedTokenOut(**dict(TokenOut.model_validate(row)), token=token, user=UserOut.model_validate(user))


@router.post(
    "/auth/session",
    response_model=UserOut,
    responses={401: {"description": "auth.bad_credentials"}, 429: {"description": "auth.throttled"}},
)
def login_session(request: Request, response: Response, body: LoginIn):
    """Log in with a browser session cookie (for scripts running in our pages)."""
    uid = password_login(request, body.email, body.password)
    log_in(request, response, uid)
    with request.app.state.db.transaction(write=False) as s:
        return UserOut.model_validate(s.get(User, uid))


@router.post("/auth/logout", status_code=204)
def logout(request: Request):
    """End this browser session (its cookie never works again)."""
    with unit(request):
        pass  # the CSRF check for cookie callers
    response = Response(status_code=204)
    log_out(request, response)
    return response


@router.post("/me/password", status_code=204)
def change_password(request: Request, body: PasswordIn):
    """Needs the current password. Ends every other session and revokes every API token (the one
    making this call too); the browser session making it stays logged in."""
    with unit(request) as ctx:
        accounts.change_password(
            ctx.session, ctx.require_user(), body.current_password, body.new_password, keep_session=ctx.login_session_id
        )
    return Response(status_code=204)


@router.post("/me/logout-everywhere", status_code=204)
def logout_everywhere(request: Request):
    """End every session of this account, this one included, and revoke every API token."""
    with unit(request) as ctx:
        accounts.log_out_everywhere(ctx.session, ctx.require_user())
    response = Response(status_code=204)
    log_out(request, response)
    return response


@router.get("/me/sessions", response_model=Page[SessionOut])
def my_sessions(request: Request):
    """Live browser sessions (not ended, not expired), most recently used first."""
    with unit(request) as ctx:
        rows = accounts.list_sessions(ctx.session, ctx.require_user())
        return {"items": [SessionOut.of(r, ctx.login_session_id) for r in rows]}


@router.delete("/me/sessions/{session_id}", status_code=204)
def revoke_session(request: Request, session_id: Id):
    with unit(request) as ctx:
        accounts.revoke_session(ctx.session, ctx.require_user(), session_id)
    return Response(status_code=204)


@router.get("/me/tokens", response_model=Page[TokenOut])
def my_tokens(request: Request):
    """Every token ever issued to this account, revoked and expired ones included."""
    with unit(request) as ctx:
        return page_of(TokenOut, accounts.list_tokens(ctx.session, ctx.require_user()))


@router.delete("/me/tokens/{token_id}", status_code=204)
def revoke_token(request: Request, token_id: Id):
    with unit(request) as ctx:
        accounts.revoke_token(ctx.session, ctx.require_user(), token_id)
    return Response(status_code=204)


# --- email: links and letters ---------------------------------------------------------------------
def count_attempt(request: Request, kind: str, email: str | None) -> None:
    """The log-in throttle, counted apart per ``kind``: 429 ``auth.throttled`` past the limits."""
    limits = throttle.Limits.from_settings(request.app.state.settings)
    with request.app.state.db.transaction() as s:
        throttle.count_attempt(s, kind, email=email, address=client_address(request), limits=limits)


class EmailIn(_In):
    email: str = Field(max_length=254)


class ResetIn(_In):
    token: str = Field(min_length=1, max_length=100)
    new_password: Password


class TokenIn(_In):
    token: str = Field(min_length=1, max_length=100)


class ProfileIn(_In):
    display_name: str | None = Field(None, max_length=100)
    country: str | None = Field(None, max_length=2, description="ISO 3166 alpha-2; empty clears it")
    email: str | None = Field(
        None, max_length=254, description="A new address: it replaces the old one once its emailed link is followed"
    )


@router.post("/auth/password-reset", status_code=202, responses={429: {"description": "auth.throttled"}})
def request_password_reset(request: Request, body: EmailIn):
    """Email a one-time link (valid an hour) to choose a new password. The answer is the same
    whether or not the address has an account; too many requests: 429."""
    count_attempt(request, "reset", body.email)
    with request.app.state.db.transaction() as s:
        letter = recovery.request_password_reset(s, body.email, base_url=base_url(request))
    send_letters(request, letter)
    return SENT


@router.post(
    "/auth/password-reset/confirm",
    status_code=204,
    responses={410: {"description": "user.link_invalid"}, 429: {"description": "auth.throttled"}},
)
def confirm_password_reset(request: Request, body: ResetIn):
    """Set a new password with the emailed link's token. Every session ends and every API token is
    revoked; log in again with the new password."""
    count_attempt(request, "reset-link", None)
    with request.app.state.db.transaction() as s:
        recovery.reset_password(s, body.token, body.new_password)
    return Response(status_code=204)


@router.post("/auth/verify-email", response_model=UserOut, responses={410: {"description": "user.link_invalid"}})
def verify_email(request: Request, body: TokenIn):
    """Confirm an address with the emailed link's token (a new address replaces the old one now)."""
    with request.app.state.db.transaction() as s:
        return UserOut.model_validate(recovery.verify_email(s, body.token))


@router.post("/me/verify-email", status_code=202)
def resend_verification(request: Request):
    """Send a new confirmation link to the account's address (older links stop working)."""
    with unit(request) as ctx:
        user = ctx.require_user()
        letter = (
            None
            if user.email_verified_at
            else recovery.start_email_verification(ctx.session, user, base_url=base_url(request))
        )
    send_letters(request, letter)
    return SENT


@router.patch("/me", response_model=UserOut)
def update_me(request: Request, body: ProfileIn):
    """Change the name shown to others, the country (ISO 3166 code; "" clears it), or the email
    address (the new one gets a link and replaces the old one only once it is followed)."""
    fields = body.model_dump(exclude_unset=True)
    with unit(request) as ctx:
        user = ctx.require_user()
        accounts.update_profile(
            ctx.session,
            user,
            display_name=fields.get("display_name"),
            **({"country": fields["country"]} if "country" in fields else {}),
        )
        letter = (
            recovery.start_email_verification(ctx.session, user, email=body.email, base_url=base_url(request))
            if body.email
            else None
        )
        out = UserOut.model_validate(user)
    send_letters(request, letter)
    return out


@router.delete("/me", status_code=204)
def delete_me(request: Request):
    """Delete this account: active consents are withdrawn (open slots released), sessions end, tokens
    are revoked, name, email and country are blanked. Clips already sent stay, marked by the
    withdrawal: releases cut after it leave them out. Admins and a lab's last owner: 403."""
    with unit(request) as ctx:
        user = ctx.require_user()
        privacy.delete_account(ctx.session, user, request.app.state.blobs)
        honour_withdrawals(request, ctx.session, user_id=user.id)
    response = Response(status_code=204)
    log_out(request, response)
    return response


def export_response(request: Request, form_csrf: str | None = None) -> StreamingResponse:
    """The caller's data as a ZIP (audited), built in a temporary file and streamed from it."""
    with unit(request, form_csrf=form_csrf) as ctx:
        user = ctx.require_user()
        data, files = privacy.collect_personal_data(ctx.session, user)
        uid = user.id
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the response once streamed
    try:
        privacy.write_export(out, data, files, request.app.state.blobs)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return StreamingResponse(
        iter(lambda: out.read(1024 * 1024), b""),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="egocrowd-data-{uid}.zip"'},
        background=BackgroundTask(out.close),
    )


@router.post("/me/export", response_class=StreamingResponse, responses={200: {"content": {"application/zip": {}}}})
def export_me(request: Request):
    """Everything about you: a ZIP with ``data.json`` (profile, consents with the text's sha256 and
    scopes, slots, clips with their QC reports, notices, sessions, tokens, audit events) and your
    uploaded clip files under ``clips/``."""
    return export_response(request)


@router.get("/me/notifications", response_model=Page[NotificationOut])
def my_notifications(request: Request, unread_only: bool = False, limit: Annotated[int, Query(ge=1, le=200)] = 50):
    """Your notices, newest first."""
    with unit(request) as ctx:
        rows = notifications.list_for(ctx.session, ctx.require_user(), unread_only=unread_only, limit=limit)
        return page_of(NotificationOut, rows)


@router.post("/me/notifications/read-all", status_code=204)
def read_all_notifications(request: Request):
    with unit(request) as ctx:
        notifications.mark_all_read(ctx.session, ctx.require_user())
    return Response(status_code=204)


@router.post("/me/notifications/{notification_id}/read", response_model=NotificationOut)
def read_notification(request: Request, notification_id: Id):
    with unit(request) as ctx:
        return NotificationOut.model_validate(notifications.mark_read(ctx.session, ctx.require_user(), notification_id))
