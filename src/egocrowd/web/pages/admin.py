"""The admin console's pages (/admin): home, people, organizations, the audit log, system health.

Each page is drawn by one ``_show_*`` function, used by its GET and by the form handlers that post
to it: a refused action (an owner who is the last one, an unknown email) draws the same page again
with the problem above it, and a done one redirects back with ``?done=…``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from egocrowd import audit
from egocrowd.accounts import directory, organizations, policy
from egocrowd.accounts import service as accounts
from egocrowd.clips import operations
from egocrowd.clock import utcnow
from egocrowd.db.models import MAX_ID, OrgRole, Role
from egocrowd.errors import InvalidInput
from egocrowd.i18n import N_, gettext, tr
from egocrowd.pipeline.stages import STAGES
from egocrowd.web.auth import Ctx, unit
from egocrowd.web.pages.render import (
    TextForm,
    confirm_first,
    flash_messages,
    form_action,
    page_unit,
    render,
    see_other,
)
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)
PAGE = 50
flash_messages(
    {
        "created": N_("Created."),
        "user_role": N_("Role changed. Their sessions ended: they log in again with the new role."),
        "suspended": N_("Account suspended: every session ended and every API token was revoked."),
        "reactivated": N_("Account reactivated. They can log in again."),
        "member_added": N_("Member added."),
        "member_role": N_("Role in the lab changed."),
        "member_removed": N_("Removed from the lab. They keep their account, as a worker."),
        "authoring": N_("Consent authoring setting saved."),
        "retried": N_("The job is queued again with fresh attempts."),
        "requeued": N_("The stage will run again."),
    }
)
#: Lower is less power: a change to a lower rank asks first (the person loses access at once).
_RANK = {Role.worker: 0, Role.reviewer: 1, Role.requester: 1, Role.admin: 2}


#: The words the admin pages show for status and role values (never the raw enum value).
LABELS: dict[str, dict[str, str]] = {
    "role": {
        "worker": N_("worker"),
        "reviewer": N_("reviewer"),
        "requester": N_("requester"),
        "admin": N_("admin"),
    },
    "roles": {
        "worker": N_("Workers"),
        "reviewer": N_("Reviewers"),
        "requester": N_("Requesters"),
        "admin": N_("Admins"),
    },
    "org_role": {"owner": N_("owner"), "editor": N_("editor"), "viewer": N_("viewer")},
    "campaign": {"draft": N_("draft"), "open": N_("open"), "paused": N_("paused"), "closed": N_("closed")},
    "clip": {
        "processing": N_("processing"),
        "qc_passed": N_("passed the checks"),
        "qc_failed": N_("failed the checks"),
        "rejected": N_("rejected"),
        "error": N_("error"),
        "accepted": N_("accepted"),
        "declined": N_("declined"),
        "withdrawn": N_("withdrawn"),
    },
    "job": {"pending": N_("waiting"), "running": N_("running"), "done": N_("done"), "error": N_("failed")},
    "deid": {"pending": N_("waiting"), "clean": N_("blurred"), "review": N_("in review"), "failed": N_("failed")},
}


def label(kind: str, value: Any) -> str:
    """The shown word for a status or role ``value`` (an enum or its value) of ``kind``."""
    raw = str(getattr(value, "value", value))
    text = LABELS.get(kind, {}).get(raw)
    return gettext(text) if text else raw


def _page(request: Request, name: str, user, **values) -> HTMLResponse:
    return render(request, name, user, label=label, **values)


def _act(request: Request, form: dict[str, str], work: Callable[[Ctx], Response], redraw: Callable[..., Response]):
    return form_action(request, form, work, redraw)


_view = page_unit


def _int(value: str | None) -> int | None:
    try:
        n = int(value or "")
    except ValueError:
        return None
    return n if 0 <= n <= MAX_ID else None


# --- home -----------------------------------------------------------------------------------------
@router.get("/admin", response_class=HTMLResponse)
def home(request: Request):
    with unit(request) as ctx:
        admin = policy.require(ctx.require_user(), "system.view")
        return _page(
            request,
            "admin_home.html",
            admin,
            users=directory.users_by_role(ctx.session, admin),
            overview=operations.overview(ctx.session, admin),
        )


# --- people ---------------------------------------------------------------------------------------
@router.get("/admin/users", response_class=HTMLResponse)
def users(request: Request):
    p = request.query_params
    status = p.get("status", "")
    query = directory.UserQuery(
        text=p.get("q") or None,
        role=Role(p["role"]) if p.get("role") in Role.__members__ else None,
        active={"active": True, "suspended": False}.get(status),
        organization_id=_int(p.get("org")),
    )
    with unit(request) as ctx:
        admin = ctx.require_user()
        rows = directory.find_users(ctx.session, admin, query, before_id=_int(p.get("before")), limit=PAGE)
        older = None
        if len(rows) == PAGE:
            older = str(request.url.include_query_params(before=rows[-1].id))
        return _page(
            request,
            "admin_users.html",
            admin,
            rows=rows,
            filters={"q": p.get("q", ""), "role": p.get("role", ""), "status": status, "org": p.get("org", "")},
            roles=list(Role),
            orgs=organizations.list_organizations(ctx.session, admin),
            older=older,
        )


def _show_new_user(request: Request, *, status: int = 200, form: dict[str, str] | None = None, **values):
    with _view(request) as ctx:
        admin = policy.require(ctx.require_user(), "user.manage")
        form = form if form is not None else {"organization_id": request.query_params.get("org", "")}
        return _page(
            request,
            "admin_user_new.html",
            admin,
            status=status,
            form=form,
            roles=list(Role),
            org_roles=list(OrgRole),
            orgs=organizations.list_organizations(ctx.session, admin),
            **values,
        )


@router.get("/admin/users/new", response_class=HTMLResponse)
def new_user_form(request: Request):
    return _show_new_user(request)


@router.post("/admin/users/new")
def new_user(request: Request, form: TextForm):
    def work(ctx: Ctx):
        admin = policy.require(ctx.require_user(), "user.manage")
        org_id = _int(form.get("organization_id"))
        org = organizations.get_organization(ctx.session, admin, org_id) if org_id is not None else None
        user = accounts.create_user(
            ctx.session,
            email=form.get("email", ""),
            password=form.get("password", ""),
            display_name=form.get("display_name", ""),
            role=form.get("role", "") if form.get("role") in Role.__members__ else Role.worker,
            organization=org,
            country=form.get("country") or None,
            actor=admin,
            org_role=form.get("org_role") if form.get("org_role") in OrgRole.__members__ else None,
        )
        return see_other(f"/admin/users/{user.id}?m=created")

    return _act(request, form, work, lambda **v: _show_new_user(request, **v))


def _show_user(request: Request, user_id: int, *, status: int = 200, **values):
    with _view(request) as ctx:
        admin = ctx.require_user()
        person = directory.get_user(ctx.session, admin, user_id)
        values.pop("form", None)
        return _page(
            request,
            "admin_user.html",
            admin,
            status=status,
            person=person,
            facts=directory.user_facts(ctx.session, admin, person, now=utcnow()),
            events=audit.list_events(
                ctx.session, entity_type="user", entity_id=str(person.id), newest_first=True, limit=10
            ),
            roles=list(Role),
            **values,
        )


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
def user_page(request: Request, user_id: Id):
    return _show_user(request, user_id)


@router.post("/admin/users/{user_id}/role")
def user_role(request: Request, user_id: Id, form: TextForm):
    def work(ctx: Ctx):
        admin = ctx.require_user()
        person = directory.get_user(ctx.session, admin, user_id)
        role = Role(form["role"]) if form.get("role") in Role.__members__ else None
        if role is None:
            raise InvalidInput("Choose a role.", code="validation.failed", field="role")
        if _RANK[role] < _RANK[person.role]:
            ask = confirm_first(
                request,
                admin,
                form,
                question=tr(
                    "Change the role of {name} from {old} to {new}?",
                    name=person.display_name,
                    old=label("role", person.role),
                    new=label("role", role),
                ),
                consequences=[
                    tr("They lose, at once, what the role {old} may see and do.", old=label("role", person.role)),
                    gettext("Every browser session they have ends; their API tokens act with the new role."),
                    gettext("This is recorded in the audit log."),
                ],
                yes=tr("Change the role to {new}", new=label("role", role)),
                back=f"/admin/users/{user_id}",
            )
            if ask is not None:
                return ask
        accounts.change_role(ctx.session, admin, person, role)
        return see_other(f"/admin/users/{user_id}?m=user_role")

    return _act(request, form, work, lambda **v: _show_user(request, user_id, **v))


@router.post("/admin/users/{user_id}/suspend")
def user_suspend(request: Request, user_id: Id, form: TextForm):
    def work(ctx: Ctx):
        admin = ctx.require_user()
        person = directory.get_user(ctx.session, admin, user_id)
        ask = confirm_first(
            request,
            admin,
            form,
            question=tr("Suspend {name} ({email})?", name=person.display_name, email=person.email),
            consequences=[
                gettext("They are logged out everywhere and cannot log in."),
                gettext("Every API token of theirs stops working for good."),
                gettext("Their data stays; you can reactivate the account later."),
                gettext("This is recorded in the audit log."),
            ],
            yes=gettext("Suspend the account"),
            back=f"/admin/users/{user_id}",
        )
        if ask is not None:
            return ask
        accounts.set_active(ctx.session, admin, person, False)
        return see_other(f"/admin/users/{user_id}?m=suspended")

    return _act(request, form, work, lambda **v: _show_user(request, user_id, **v))


@router.post("/admin/users/{user_id}/reactivate")
def user_reactivate(request: Request, user_id: Id, form: TextForm):
    def work(ctx: Ctx):
        admin = ctx.require_user()
        accounts.set_active(ctx.session, admin, directory.get_user(ctx.session, admin, user_id), True)
        return see_other(f"/admin/users/{user_id}?m=reactivated")

    return _act(request, form, work, lambda **v: _show_user(request, user_id, **v))


# --- organizations --------------------------------------------------------------------------------
def _show_orgs(request: Request, *, status: int = 200, form: dict[str, str] | None = None, **values):
    with _view(request) as ctx:
        admin = ctx.require_user()
        return _page(
            request,
            "admin_orgs.html",
            admin,
            status=status,
            form=form or {},
            orgs=organizations.list_organizations(ctx.session, admin),
            **values,
        )


@router.get("/admin/organizations", response_class=HTMLResponse)
def orgs_page(request: Request):
    return _show_orgs(request)


@router.post("/admin/organizations")
def org_create(request: Request, form: TextForm):
    def work(ctx: Ctx):
        org = organizations.create_organization(ctx.session, ctx.require_user(), form.get("name", ""))
        return see_other(f"/admin/organizations/{org.id}?m=created")

    return _act(request, form, work, lambda **v: _show_orgs(request, **v))


def _admin_org(ctx: Ctx, org_id: int):
    admin = policy.require(ctx.require_user(), "user.manage")
    return admin, organizations.get_organization(ctx.session, admin, org_id)


def _show_org(request: Request, org_id: int, *, status: int = 200, form: dict[str, str] | None = None, **values):
    with _view(request) as ctx:
        admin, org = _admin_org(ctx, org_id)
        return _page(
            request,
            "admin_org.html",
            admin,
            status=status,
            form=form or {},
            org=org,
            members=organizations.members(ctx.session, org),
            org_roles=list(OrgRole),
            **values,
        )


@router.get("/admin/organizations/{org_id}", response_class=HTMLResponse)
def org_page(request: Request, org_id: Id):
    return _show_org(request, org_id)


def _org_action(request: Request, org_id: int, form: dict[str, str], act: Callable[[Ctx, Any, Any], str | Response]):
    """An action on one organization; ``act`` returns the ``done`` word (or a confirmation page)."""

    def work(ctx: Ctx):
        admin, org = _admin_org(ctx, org_id)
        done = act(ctx, admin, org)
        return done if isinstance(done, Response) else see_other(f"/admin/organizations/{org_id}?m={done}")

    return _act(request, form, work, lambda **v: _show_org(request, org_id, **v))


@router.post("/admin/organizations/{org_id}/members")
def org_add_member(request: Request, org_id: Id, form: TextForm):
    def act(ctx: Ctx, admin, org):
        user = directory.find_by_email(ctx.session, admin, form.get("email", ""))
        organizations.add_member(ctx.session, admin, org, user, form.get("org_role", ""))
        return "member_added"

    return _org_action(request, org_id, form, act)


@router.post("/admin/organizations/{org_id}/members/{user_id}/role")
def org_member_role(request: Request, org_id: Id, user_id: Id, form: TextForm):
    def act(ctx: Ctx, admin, org):
        member = directory.get_user(ctx.session, admin, user_id)
        organizations.set_org_role(ctx.session, admin, org, member, form.get("org_role", ""))
        return "member_role"

    return _org_action(request, org_id, form, act)


@router.post("/admin/organizations/{org_id}/members/{user_id}/remove")
def org_remove_member(request: Request, org_id: Id, user_id: Id, form: TextForm):
    def act(ctx: Ctx, admin, org):
        member = directory.get_user(ctx.session, admin, user_id)
        ask = confirm_first(
            request,
            admin,
            form,
            question=tr("Remove {name} from {lab}?", name=member.display_name, lab=org.name),
            consequences=[
                tr("They no longer see the campaigns, clips or spend of {lab}, at once.", lab=org.name),
                gettext("They keep their account, as a worker; what they did stays attributed to them."),
                gettext("Every browser session they have ends."),
            ],
            yes=gettext("Remove from the lab"),
            back=f"/admin/organizations/{org_id}",
        )
        if ask is not None:
            return ask
        organizations.remove_member(ctx.session, admin, org, member)
        return "member_removed"

    return _org_action(request, org_id, form, act)


@router.post("/admin/organizations/{org_id}/consent-authoring")
def org_consent_authoring(request: Request, org_id: Id, form: TextForm):
    def act(ctx: Ctx, admin, org):
        organizations.set_consent_authoring(ctx.session, admin, org, form.get("allowed") == "yes")
        return "authoring"

    return _org_action(request, org_id, form, act)


# --- the audit log --------------------------------------------------------------------------------
def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value or "")
    except ValueError:
        return None


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(request: Request):
    p = request.query_params
    since, until = _day(p.get("since")), _day(p.get("until"))
    filters = {k: p.get(k, "").strip() for k in ("actor", "entity_type", "entity_id", "action", "since", "until")}
    with unit(request) as ctx:
        admin = policy.require(ctx.require_user(), "audit.view")
        rows = audit.list_events(
            ctx.session,
            before_id=_int(p.get("before")),
            entity_type=filters["entity_type"][:40] or None,
            entity_id=filters["entity_id"][:64] or None,
            action=filters["action"][:60] or None,
            actor_id=_int(p.get("actor_id")),
            actor_email=filters["actor"][:254] or None,
            since=datetime.combine(since, time(), UTC) if since else None,
            until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,  # the whole day
            newest_first=True,
            limit=PAGE,
        )
        # who acted, and the people events are about: named, in one query
        people = {e.actor_id for e in rows if e.actor_id is not None}
        people |= {n for e in rows if e.entity_type == "user" and (n := _int(e.entity_id)) is not None}
        actors = directory.users_by_id(ctx.session, admin, people)
        older = str(request.url.include_query_params(before=rows[-1].id)) if len(rows) == PAGE else None
        return _page(request, "admin_audit.html", admin, rows=rows, actors=actors, filters=filters, older=older)


# --- system health --------------------------------------------------------------------------------
def _show_health(request: Request, *, status: int = 200, **values):
    state = request.app.state
    values.pop("form", None)
    with _view(request) as ctx:
        admin = policy.require(ctx.require_user(), "system.view")
        h = operations.health(ctx.session, admin, state.blobs, state.upload_store)
        return _page(request, "admin_health.html", admin, status=status, h=h, stages=STAGES.names(), **values)


@router.get("/admin/health", response_class=HTMLResponse)
def health_page(request: Request):
    return _show_health(request)


@router.post("/admin/jobs/{job_id}/retry")
def job_retry(request: Request, job_id: Id, form: TextForm):
    def work(ctx: Ctx):
        operations.retry_job(ctx.session, ctx.require_user(), job_id)
        return see_other("/admin/health?m=retried")

    return _act(request, form, work, lambda **v: _show_health(request, **v))


@router.post("/admin/jobs/requeue")
def job_requeue(request: Request, form: TextForm):
    def work(ctx: Ctx):
        admin = policy.require(ctx.require_user(), "system.manage")
        stage, stale = form.get("stage", ""), form.get("stale_only") == "on"
        ask = confirm_first(
            request,
            admin,
            form,
            question=tr("Run the “{stage}” stage again?", stage=stage),
            consequences=[
                _requeue_what(stage, stale),
                # deidentify keeps the QC verdict (Stage.put_back): only the video waits for the new copy
                gettext("Workers and labs see no video of those clips until the new copy is made.")
                if stage == "deidentify"
                else gettext("Workers and labs see those clips as processing until the stage has run again."),
                gettext("Each job put back is recorded in the audit log."),
            ],
            yes=gettext("Run it again"),
            back="/admin/health",
        )
        if ask is not None:
            return ask
        operations.requeue_stage(ctx.session, admin, stage, stale_only=stale)
        return see_other("/admin/health?m=requeued")

    return _act(request, form, work, lambda **v: _show_health(request, **v))


def _requeue_what(stage: str, stale: bool) -> str:
    """What a requeue does to the clips, as one whole sentence per case (never glued fragments)."""
    if stage == "deidentify":
        if stale:
            return gettext(
                "Every clip it finished or failed with an older version of the stage is de-identified again."
            )
        return gettext("Every clip it finished or failed is de-identified again.")
    if stale:
        return gettext("Every clip it finished or failed with an older version of the stage goes back to processing.")
    return gettext("Every clip it finished or failed goes back to processing.")
