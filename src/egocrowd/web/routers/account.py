"""The caller's own account: logging in (throttled), logging out, password, sessions and API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import Field, StringConstraints

from egocrowd.accounts import service as accounts
from egocrowd.db.models import User
from egocrowd.inputs import InputModel
from egocrowd.web.auth import log_in, log_out, password_login, unit
from egocrowd.web.routers.api import Id
from egocrowd.web.schemas import IssuedTokenOut, Page, SessionOut, TokenOut, UserOut, page_of

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
