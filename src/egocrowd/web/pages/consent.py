"""Consent pages: a worker reads (in their language) and signs a text, sees what changed, withdraws;
admins and allowed labs write, publish and retire documents."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from egocrowd import consent, i18n
from egocrowd.accounts import policy
from egocrowd.campaigns import assignments
from egocrowd.campaigns import service as campaigns
from egocrowd.db.models import ConsentDocument, ConsentStatus
from egocrowd.errors import EgocrowdError, NotFound
from egocrowd.i18n import N_, _, ngettext, tr
from egocrowd.web.auth import unit
from egocrowd.web.pages.render import (
    RawForm,
    TextForm,
    confirm_first,
    flash_messages,
    form_error,
    render,
    safe_next,
    see_other,
    templates,
    text_fields,
)
from egocrowd.web.routers.api import Id
from egocrowd.web.routers.withdrawals import honour_withdrawals

router = APIRouter(include_in_schema=False)
_FROM_CAMPAIGN = re.compile(r"^/campaigns/(\d{1,9})(?:[?#].*)?$")
SCOPE_ROWS_SPARE = 3  # empty rows under a draft's choices, to add new ones without a script
flash_messages({"published": N_("Published."), "retired": N_("Retired.")})
#: A document's status as people read it (the enum's values are words of the API, not of pages).
STATUS_WORDS = {
    ConsentStatus.draft: N_("draft"),
    ConsentStatus.published: N_("published"),
    ConsentStatus.retired: N_("retired"),
}
templates.env.globals["consent_status"] = lambda status: _(STATUS_WORDS[ConsentStatus(status)])


def _markdown(doc: ConsentDocument) -> Markup:
    return Markup(consent.render_markdown(doc.body))  # raw HTML is off: the text cannot inject markup


# --- reading, signing, withdrawing --------------------------------------------------------------------
@router.get("/consent/{version}", response_class=HTMLResponse)
def consent_page(request: Request, version: str, next: str | None = None, lang: str | None = None):
    with unit(request) as ctx:
        user = ctx.require_user()
        s = ctx.session
        doc = consent.get_document(s, version, user)
        languages = consent.language_versions(s, doc, user)
        reader = i18n.current()  # the account's language, else the switcher's, else the browser's
        untranslated = None  # the reader's language, when this revision has no text in it
        if lang is None and doc.status is ConsentStatus.published:  # the reader's language, when we have it
            published = [t for t in languages if t.status is ConsentStatus.published]
            wanted = [reader, *consent.parse_accept_language(request.headers.get("accept-language"))]
            pick = consent.pick_language([t.language for t in published], wanted, doc.language)
            doc = [t for t in published if t.language == pick][0] if published else doc
            if not consent.same_language(doc.language, reader):
                untranslated = reader
        newest = consent.newest_published(s, doc.family)
        record = consent.active_in_revision(s, user, doc.family, doc.revision)
        older = None  # the earlier revision this worker signed, to point at what changed
        if record is None and newest is not None and newest.revision == doc.revision:
            signed_before = [r for r in consent.list_consents(s, user, user_id=user.id) if _older_in(r, doc)]
            older = signed_before[0] if signed_before else None
        # what to compare with: the worker's older revision (else the previous one), in this language
        since = consent.text_in(s, doc.family, older.document.revision, doc.language) if older else None
        return render(
            request,
            "consent.html",
            user,
            needed=_needed_by(s, user, next),
            doc=doc,
            html=_markdown(doc),
            languages=languages,
            untranslated=untranslated,
            newest=newest,
            record=record,
            older=older,
            since=since,
            previous=consent.previous_revision(s, doc),
            next=safe_next(next, "/consents"),
        )


def _needed_by(session, user, next_url: str | None) -> set[str]:
    """The scopes the campaign the reader came from needs, to mark them on the form."""
    m = _FROM_CAMPAIGN.match(next_url or "")
    try:
        return (
            set(consent.needed_scopes(campaigns.get_campaign(session, user, int(m.group(1))).data_use)) if m else set()
        )
    except NotFound:
        return set()


def _older_in(rec, doc: ConsentDocument) -> bool:
    """An active signature of an earlier revision of ``doc``'s family."""
    d = rec.document
    return rec.withdrawn_at is None and d.family == doc.family and d.revision < doc.revision


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
        s = ctx.session
        families = sorted({d.family for d in consent.list_documents(s)})
        current = {f: consent.newest_published(s, f) for f in families}
        # for each signature of a replaced revision: the text it signed, in the new one's language
        since = {}
        for r in rows:
            now = current.get(r.document.family)
            if r.withdrawn_at is None and now is not None and now.revision > r.document.revision:
                since[r.id] = consent.text_in(s, now.family, r.document.revision, now.language)
        return render(request, "consents.html", user, records=rows, current=current, since=since)


@router.post("/consents/{record_id}/withdraw")
def consent_withdraw(request: Request, record_id: Id, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        rec = next((r for r in consent.list_consents(ctx.session, user, user_id=user.id) if r.id == record_id), None)
        ask = confirm_first(
            request,
            user,
            form,
            question=tr("Withdraw your consent to “{title}”?", title=rec.document.title)
            if rec
            else _("Withdraw your consent to this document?"),
            consequences=[
                _(
                    "Your open slots in every campaign that needs this consent are given back at once, and "
                    "unfinished uploads for them stop."
                ),
                _(
                    "Clips you already sent are left out of every dataset release made from now on; buyers of "
                    "earlier releases are told which clips to delete."
                ),
                _("You can sign again later to take part again."),
            ],
            yes=_("Withdraw my consent"),
            back="/consents",
        )
        if ask is not None:
            return ask
        rec = assignments.withdraw_consent(ctx.session, user, record_id)
        honour_withdrawals(request, ctx.session, record_id=rec.id)
    return see_other("/consents?m=withdrawn")


@router.get("/consent-documents/{version}/diff", response_class=HTMLResponse)
def diff_page(request: Request, version: str, against: str | None = None):
    with unit(request) as ctx:
        user = ctx.require_user()
        new = consent.get_document(ctx.session, version, user)
        old = (
            consent.get_document(ctx.session, against, user) if against else consent.previous_revision(ctx.session, new)
        )
        lines = consent.diff_lines(old.body, new.body) if old else []
        return render(request, "consent_diff.html", user, old=old, new=new, lines=lines)


# --- authoring ------------------------------------------------------------------------------------------
@router.get("/consent-documents", response_class=HTMLResponse)
def documents_page(request: Request):
    with unit(request) as ctx:
        user = ctx.require_user()
        families: dict[str, dict[int, list[ConsentDocument]]] = {}
        for d in consent.authored_documents(ctx.session, user):
            families.setdefault(d.family, {}).setdefault(d.revision, []).append(d)
        current = {f: consent.newest_published(ctx.session, f) for f in families}
        return render(request, "consent_documents.html", user, families=families, current=current)


def _scope_rows(form: dict[str, str]) -> list[dict]:
    """The choices typed into the rows of the form (empty rows skipped)."""
    rows, i = [], 0
    while f"scope_id_{i}" in form:
        sid, label = form[f"scope_id_{i}"].strip(), form.get(f"scope_label_{i}", "").strip()
        if sid or label:
            rows.append({"id": sid, "label": label, "required": form.get(f"scope_required_{i}") == "on"})
        i += 1
    return rows


def _form_of(doc: ConsentDocument) -> dict[str, object]:
    return {
        "family": doc.family,
        "title": doc.title,
        "language": doc.language,
        "body": doc.body,
        "scopes": doc.scopes,
    }


def _editor(request, user, form: dict, *, doc=None, mode="new", revision=None, error=None, status=200):
    scopes = list(form.get("scopes") or []) + [{"id": "", "label": "", "required": False}] * SCOPE_ROWS_SPARE
    return render(
        request,
        "consent_edit.html",
        user,
        status=status,
        form=form,
        scopes=scopes,
        doc=doc,
        mode=mode,
        revision=revision,
        error=error and form_error(error),
        field=error.extra.get("field") if isinstance(error, EgocrowdError) else None,
        html=_markdown(doc) if doc else None,
        words=consent.SCOPE_WORDS,
    )


@router.get("/consent-documents/new", response_class=HTMLResponse)
def new_document_page(request: Request, source: str | None = None, translate: bool = False):
    """A blank form, or one prefilled from ``source``: its next revision, or (``translate``) another
    language version of its revision."""
    with unit(request) as ctx:
        user = policy.require(ctx.user, "consent.author")
        if source is None:
            return _editor(request, user, {"language": "en", "scopes": []})
        src = consent.get_document(ctx.session, source, user)
        form = _form_of(src) | ({"language": ""} if translate else {})
        return _editor(request, user, form, mode="translate" if translate else "revise", revision=src.revision)


@router.post("/consent-documents/new")
def new_document(request: Request, form: TextForm):
    revision = int(form["revision"]) if form.get("revision", "").isdigit() else None
    scopes = _scope_rows(form)
    mode = form.get("mode", "new")
    try:
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            doc = consent.create_draft(
                ctx.session,
                policy.require(ctx.user, "consent.author"),
                family=form.get("family", "").strip(),
                title=form.get("title", ""),
                body=form.get("body", ""),
                scopes=scopes,
                language=form.get("language", "").strip() or "en",
                revision=revision if mode == "translate" else None,
            )
            version = doc.version
    except EgocrowdError as exc:
        if exc.status in (401, 403):
            raise
        # the form comes back as it was sent, the problem next to its field
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            data = {**form, "scopes": scopes}
            return _editor(request, ctx.user, data, mode=mode, revision=revision, error=exc, status=exc.status)
    return see_other(f"/consent-documents/{version}/edit?m=saved")


@router.get("/consent-documents/{version}/edit", response_class=HTMLResponse)
def edit_document_page(request: Request, version: str):
    with unit(request) as ctx:
        user = policy.require(ctx.user, "consent.author")
        doc = consent.get_document(ctx.session, version, user)
        return _editor(request, user, _form_of(doc), doc=doc, mode="edit")


@router.post("/consent-documents/{version}/edit")
def edit_document(request: Request, version: str, form: TextForm):
    scopes = _scope_rows(form)
    try:
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            consent.edit_draft(
                ctx.session,
                policy.require(ctx.user, "consent.author"),
                version,
                title=form.get("title", ""),
                body=form.get("body", ""),
                scopes=scopes,
            )
    except EgocrowdError as exc:
        if exc.status in (401, 403, 404):
            raise
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            doc = consent.get_document(ctx.session, version, ctx.user)
            form_data = _form_of(doc) | {"title": form.get("title", ""), "body": form.get("body", ""), "scopes": scopes}
            return _editor(request, ctx.user, form_data, doc=doc, mode="edit", error=exc, status=exc.status)
    return see_other(f"/consent-documents/{version}/edit?m=saved")


@router.post("/consent-documents/{version}/publish")
def publish_document(request: Request, version: str, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = policy.require(ctx.user, "consent.author")
        doc = consent.get_document(ctx.session, version, user)
        is_new_revision = consent.revision_texts(ctx.session, doc.family, doc.revision)[0].id == doc.id
        asked = len(consent.workers_to_ask(ctx.session, doc.family)) if is_new_revision and doc.revision > 1 else 0
        consequences = [_("The text is frozen: it can no longer be edited, only replaced by a new revision.")]
        if not is_new_revision:
            consequences.append(
                tr(
                    "Workers who read {language} get this version, and sign it.",
                    language=consent.language_name(doc.language),
                )
            )
        elif doc.revision == 1:
            consequences.append(_("Campaigns may name it, and workers may sign it."))
        else:
            consequences += [
                tr(
                    "It replaces revision {revision} for every campaign that uses {family}.",
                    revision=doc.revision - 1,
                    family=doc.family,
                ),
                ngettext(
                    "{count} worker holding slots in those campaigns will be notified and asked to sign it "
                    "again; until they do, their uploads are refused.",
                    "{count} workers holding slots in those campaigns will be notified and asked to sign it "
                    "again; until they do, their uploads are refused.",
                    asked,
                ).format(count=asked),
                _("New claims need the new revision too."),
            ]
        ask = confirm_first(
            request,
            user,
            form,
            question=tr("Publish “{title}” ({version})?", title=doc.title, version=doc.version),
            consequences=consequences,
            yes=_("Publish"),
            back=f"/consent-documents/{version}/edit",
        )
        if ask is not None:
            return ask
        consent.publish(ctx.session, user, version)
    return see_other("/consent-documents?m=published")


@router.post("/consent-documents/{version}/retire")
def retire_document(request: Request, version: str, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = policy.require(ctx.user, "consent.author")
        doc = consent.get_document(ctx.session, version, user)
        ask = confirm_first(
            request,
            user,
            form,
            question=tr("Retire {version}?", version=doc.version),
            consequences=[
                _("Nobody can sign it any more; signatures already given keep pointing at it."),
                _(
                    "If it is the newest published revision, campaigns require the revision before it again "
                    "(or, if there is none, accept no new claims or uploads until you publish one)."
                ),
            ]
            if doc.status is ConsentStatus.published
            else [_("The draft is put aside; it cannot be edited or published any more.")],
            yes=_("Retire"),
            back="/consent-documents",
        )
        if ask is not None:
            return ask
        consent.retire(ctx.session, user, version)
    return see_other("/consent-documents?m=retired")
