"""The lab console beyond campaigns: the team (members and their roles) and each member's own API
tokens."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from egocrowd.accounts import organizations, policy, team
from egocrowd.accounts import service as accounts
from egocrowd.db.models import OrgRole
from egocrowd.errors import Conflict, InvalidInput, NotFound
from egocrowd.i18n import N_, _, tr
from egocrowd.web.auth import unit
from egocrowd.web.pages.forms import field_errors, summary
from egocrowd.web.pages.render import TextForm, confirm_first, flash_messages, render, see_other
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)

#: each role: its name and what it may do (msgids, translated where shown)
ROLE_WORDS = {
    OrgRole.owner.value: (N_("Owner"), N_("everything, including the team and its roles")),
    OrgRole.editor.value: (N_("Editor"), N_("creates, edits, opens, pauses and closes campaigns")),
    OrgRole.viewer.value: (N_("Viewer"), N_("sees campaigns, progress, quality and spend")),
}
flash_messages(
    {
        "team_added": N_("Added to the team."),
        "team_role": N_("Role changed."),
        "team_removed": N_("Removed from the team."),
        "token_revoked": N_("Token revoked: it no longer works."),
    }
)


def _team_page(request: Request, ctx, user, *, form=None, errors=None, status: int = 200, code: str = ""):
    org = team.own_lab(ctx.session, user)
    errors = errors or {}
    return render(
        request,
        "lab.html",
        user,
        status=status,
        org=org,
        members=organizations.members(ctx.session, org),
        manages=policy.can(user, "org.manage", org),
        roles=ROLE_WORDS,
        form=form or {"org_role": OrgRole.editor.value},
        errors=errors,
        summary=summary(errors) if errors else None,
        code=code,
    )


@router.get("/lab", response_class=HTMLResponse)
def lab_home(request: Request):
    with unit(request) as ctx:
        return _team_page(request, ctx, ctx.require_user())


@router.post("/lab/members")
def add_member(request: Request, form: TextForm):
    """An existing account by its email, or (with a name and first password) a new one."""
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        org = team.own_lab(ctx.session, user)
        try:  # both refuse before they change anything
            if form.get("password"):
                team.create_member(
                    ctx.session,
                    user,
                    org,
                    email=form.get("email", ""),
                    display_name=form.get("display_name", ""),
                    password=form.get("password", ""),
                    org_role=form.get("org_role", ""),
                )
            else:
                team.add_by_email(ctx.session, user, org, form.get("email", ""), form.get("org_role", ""))
        except (InvalidInput, Conflict, NotFound) as exc:
            if not policy.can(user, "org.manage", org):
                raise
            kept = {k: v for k, v in form.items() if k not in ("csrf_token", "password")}
            return _team_page(request, ctx, user, form=kept, errors=field_errors(exc), status=exc.status, code=exc.code)
    return see_other("/lab?m=team_added")


@router.post("/lab/members/{user_id}/role")
def change_role(request: Request, user_id: Id, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        org = team.own_lab(ctx.session, user)
        member = team.get_member(ctx.session, user, org, user_id)
        organizations.set_org_role(ctx.session, user, org, member, form.get("org_role", ""))
    return see_other("/lab?m=team_role")


@router.post("/lab/members/{user_id}/remove")
def remove_member(request: Request, user_id: Id, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        org = team.own_lab(ctx.session, user)
        member = team.get_member(ctx.session, user, org, user_id)
        policy.require(user, "org.manage", org)
        ask = confirm_first(
            request,
            user,
            form,
            question=tr("Remove {name} from {lab}?", name=member.display_name, lab=org.name),
            consequences=[
                tr("{name} no longer sees the lab’s campaigns, from their next click.", name=member.display_name),
                _("They are logged out everywhere; their account stays, as a worker’s account without a lab."),
                _("What they did in the lab stays in the record under their name."),
            ],
            yes=_("Remove from the team"),
            back="/lab",
        )
        if ask is not None:
            return ask
        organizations.remove_member(ctx.session, user, org, member)
    return see_other("/lab?m=team_removed")


# --- API tokens: each member's own ------------------------------------------------------------------
def _tokens_page(request: Request, ctx, user, *, new_token: str | None = None, errors=None, status: int = 200):
    resp = render(
        request,
        "lab_tokens.html",
        user,
        status=status,
        tokens=list(reversed(accounts.list_tokens(ctx.session, user))),
        new_token=new_token,
        errors=errors or {},
    )
    resp.headers["Cache-Control"] = "no-store"  # a new token is shown once: never from a cache
    return resp


@router.get("/lab/tokens", response_class=HTMLResponse)
def tokens(request: Request):
    with unit(request) as ctx:
        return _tokens_page(request, ctx, ctx.require_user())


@router.post("/lab/tokens")
def new_token(request: Request, form: TextForm):
    days = request.app.state.settings.token_days
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        name = " ".join(form.get("name", "").split())
        if not 1 <= len(name) <= 100:
            err = InvalidInput(
                _("Give the token a name of 1 to 100 characters."), code="validation.failed", field="name"
            )
            return _tokens_page(request, ctx, user, errors=field_errors(err), status=422)
        _token, secret = accounts.issue_token(ctx.session, user, name, ttl=timedelta(days=days) if days else None)
        return _tokens_page(request, ctx, user, new_token=secret)


@router.post("/lab/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: Id, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        ask = confirm_first(
            request,
            user,
            form,
            question=_("Revoke this API token?"),
            consequences=[
                _("Scripts and apps that use it stop working at once."),
                _("This cannot be undone; you can make a new token at any time."),
            ],
            yes=_("Revoke the token"),
            back="/lab/tokens",
        )
        if ask is not None:
            return ask
        accounts.revoke_token(ctx.session, user, token_id)
    return see_other("/lab/tokens?m=token_revoked")
