"""What every page module shares: the templates, :func:`render`, form parsing, safe redirects, and
the error page the problem handler renders for non-API paths."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Collection
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape
from pydantic import ValidationError
from starlette.datastructures import FormData

from egocrowd import __version__, i18n, notifications
from egocrowd.accounts import policy
from egocrowd.consent.text import language_name
from egocrowd.db.models import CampaignStatus
from egocrowd.errors import EgocrowdError
from egocrowd.i18n import N_
from egocrowd.pay.money import MINOR_DIGITS, Money
from egocrowd.problem_titles import title as problem_title
from egocrowd.web.auth import Ctx, csrf_token, persist_anonymous_csrf, unit, viewer
from egocrowd.web.pages.forms import field_errors

templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
STATIC_DIR = Path(__file__).parent.parent / "static"
#: What a page says after a redirect with ``?m=KEY``: one table for the whole site, so a key means
#: one thing everywhere. Page modules add theirs with :func:`flash_messages`. The texts are msgids
#: (marked N_), translated when shown. These first ones are the shell's (accounts, consent, campaigns).
FLASH = {
    "signed": N_("Consent signed. Thank you."),
    "claimed": N_("Slot claimed: your lease is running."),
    "released": N_("Slot released."),
    "withdrawn": N_("Consent withdrawn. Your open slots were released."),
    "saved": N_("Saved."),
    "welcome": N_("Welcome to egocrowd!"),
    "status": N_("Campaign status changed."),
    "cloned": N_("A copy, as a draft: check it and save."),
}


def flash_messages(texts: dict[str, str]) -> None:
    """Add a page module's ``?m=`` messages; a key already used for other words is a bug."""
    for key, text in texts.items():
        if FLASH.setdefault(key, text) != text:
            raise ValueError(f"flash message {key!r} is defined twice with different words")


def _money(value: int | Money, currency: str | None = None) -> str:
    """An amount as the viewer's language writes money: ``{{ cents|money(c.currency) }}`` for minor
    units, ``{{ m|money }}`` for a pay.money.Money. "USD 1,500.00", "1 500,00 USD" (exact: money is
    never a float; the digits come from pay.money's ISO 4217 table, cents for a code it does not
    know, as campaigns created before the table were)."""
    if isinstance(value, Money):
        return value.shown()
    if currency is None:
        raise TypeError("|money needs the currency of an amount given in minor units")
    digits = MINOR_DIGITS.get(currency, 2)
    return i18n.money(Decimal(value).scaleb(-digits), currency, digits)


def _filesize(n: float) -> str:
    for suffix in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or suffix == "GB":
            return i18n.number(n, digits=0 if suffix == "bytes" else 1) + " " + suffix
        n /= 1024
    return str(n)


# Every template speaks through egocrowd.i18n: {% trans %}...{% endtrans %}, _("..."), and the
# filters below format times, numbers, money and countries for the viewer's language and zone.
templates.env.add_extension("jinja2.ext.i18n")
templates.env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True, pgettext=i18n.pgettext)  # type: ignore[attr-defined]
templates.env.policies["ext.i18n.trimmed"] = True  # {% trans %} blocks: whitespace folded, as extracted


def _each_time(format_value: Callable[..., str]) -> Callable[..., str]:
    """A filter whose output depends on the reader (language, zone), so Jinja must run it at every
    render: its optimizer folds filters of constant arguments (``{{ 1|number }}``) once, at compile
    time, in whichever language the first reader spoke."""

    @pass_context  # the one mark that stops the folding (an eval-context filter is still folded)
    def run(_context, value, *args, **kwargs):
        return format_value(value, *args, **kwargs)

    return run


_READER_FILTERS: dict[str, Callable[..., str]] = {
    "money": _money,
    "filesize": _filesize,
    "when": i18n.when,
    "day": i18n.day,
    "number": i18n.number,
    "percent": i18n.percent,
    "country": i18n.country_name,
    "language_name": language_name,  # a BCP 47 tag ("pt-BR") named in the viewer's language
}
templates.env.filters.update({name: _each_time(f) for name, f in _READER_FILTERS.items()})
# Data (a version, a name) inside a translated sentence: isolated, so a right-to-left sentence does
# not reorder it or its brackets (Unicode bidi), and never offered to a browser's translator.
templates.env.filters["bdi"] = lambda value: Markup('<bdi translate="no">{}</bdi>').format(value)
templates.env.globals["ui_language"] = i18n.current
templates.env.globals["ui_languages"] = i18n.languages
templates.env.globals["country_list"] = i18n.countries
templates.env.globals["zone_list"] = i18n.zones
templates.env.globals["check_words"] = i18n.check_words  # a stored QC verdict in the viewer's language
templates.env.globals["js_strings"] = lambda: js_strings()
templates.env.globals["version"] = __version__
templates.env.globals["CampaignStatus"] = CampaignStatus
templates.env.globals["can"] = policy.can  # templates ask the policy too; they never test roles


@cache
def _js_msgids() -> tuple[str, ...]:
    """The strings our page scripts show, marked ``tr("...")`` there: found with Babel's own
    JavaScript extractor, the same one ``make i18n-extract`` uses."""
    from babel.messages.extract import extract_javascript

    found: set[str] = set()
    for path in sorted(STATIC_DIR.glob("*.js")):
        with path.open("rb") as f:
            for _line, _func, message, _comments in extract_javascript(f, {"tr": None}, [], {}):
                found.add(message if isinstance(message, str) else message[0])
    return tuple(sorted(found))


def js_strings() -> str:
    """The page scripts' strings in the viewer's language, as JSON for ``static/locale.js``
    (``</`` escaped: it sits inside a <script type="application/json"> element)."""
    return _js_table(i18n.current())


@cache
def _js_table(language: str) -> str:
    """Made once per language and process: every page of that language carries the same table."""
    # Only the strings that differ from their msgid: tr() shows the msgid itself for the rest, so an
    # English page (and an untranslated string) costs nothing on a slow link.
    with i18n.using(language):
        table = {m: t for m in _js_msgids() if (t := i18n.gettext(m)) != m}
    return json.dumps(table, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def render(request: Request, name: str, ctx_user, status: int = 200, **values) -> HTMLResponse:
    flash_key = request.query_params.get("m", "")
    values.setdefault("flash", i18n.gettext(FLASH[flash_key]) if flash_key in FLASH else None)
    values.setdefault("unread", notifications.unread_for(ctx_user))  # the menu's count: one indexed COUNT
    resp = templates.TemplateResponse(
        request, name, {"user": ctx_user, "csrf": csrf_token(request), **values}, status_code=status
    )
    persist_anonymous_csrf(request, resp)
    return resp


def render_error(request: Request, status: int, code: str, message: str) -> HTMLResponse | RedirectResponse:
    """The HTML face of a problem document: its title in the reader's language, the occurrence's
    English ``message`` under it; a page that needs a log-in sends the visitor there."""
    if status == 401 and request.method == "GET":
        return see_other("/login?next=" + quote(request.url.path))
    with request.app.state.db.transaction(write=False) as s:
        return render(
            request,
            "error.html",
            viewer(request, s),
            status=status,
            code=code,
            title=problem_title(code, status),
            message=message,
        )


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def _raw_form(request: Request) -> AsyncIterator[FormData]:
    async with request.form() as form:  # closes the temporary files of any file fields sent
        yield form


def text_fields(raw: Annotated[FormData, Depends(_raw_form)]) -> dict[str, str]:
    """The form's text fields. Our forms have no file fields: a file sent in their place is dropped
    (treated as missing), never handed to code that expects text."""
    return {k: v for k, v in raw.items() if isinstance(v, str)}


# Form handlers are plain (sync) functions taking these: the body is read on the event loop, and
# FastAPI runs the handler, with its database work, in the thread pool (never on the loop, where a
# waiting SQLite write would stall every request).
RawForm = Annotated[FormData, Depends(_raw_form)]
TextForm = Annotated[dict[str, str], Depends(text_fields)]


def safe_next(url: str | None, default: str) -> str:
    """Only a path on this site: browsers read "/\\evil.org" (and "//evil.org") as another host."""
    if (
        not url
        or not url.startswith("/")
        or url.startswith("//")
        or "\\" in url
        or any(ch.isspace() or ord(ch) < 32 for ch in url)
    ):
        return default
    return url


def confirm_first(
    request: Request,
    user,
    form: dict[str, str],
    *,
    question: str,
    consequences: list[str],
    yes: str,
    back: str,
) -> HTMLResponse | None:
    """The one guard for destructive page actions (withdrawing consent, giving a slot back, closing
    a campaign, deleting an account). A form posted without ``confirmed=yes`` gets a page that says
    what will happen and posts the same fields again with it; ``None`` means "confirmed, go on".
    It needs no script, so it works on every phone; the API is not asked (its callers are programs)."""
    if form.get("confirmed") == "yes":
        return None
    fields = {k: v for k, v in form.items() if k not in ("csrf_token", "confirmed")}
    return render(
        request,
        "confirm.html",
        user,
        question=question,
        consequences=consequences,
        yes=yes,
        back=safe_next(back, "/"),
        action=request.url.path,
        fields=fields,
    )


def form_error(exc: EgocrowdError | ValidationError) -> dict[str, Any]:
    """An error shown above a form sent back: the problem's ``code``, its ``title`` in the reader's
    language and, as ``detail``, what exactly was wrong (the same words as ``forms.field_errors``,
    which pages that show errors next to fields use: translated for a form's fields, the
    occurrence's English message for a refusal of ours, marked ``lang="en"``).

    ``message``, which the templates show, is both: the title, and the detail on a second line."""
    code = exc.code if isinstance(exc, EgocrowdError) else "validation.failed"
    status = exc.status if isinstance(exc, EgocrowdError) else 422
    title = problem_title(code, status)
    detail = " ".join(field_errors(exc).values())
    english = isinstance(exc, EgocrowdError) and detail == exc.message
    message = escape(title)
    if detail and detail != title:
        lang = Markup(' lang="en" dir="ltr" translate="no"') if english else Markup("")
        message += Markup('<br><span class="error-detail"%s>%s</span>') % (lang, detail)
    return {"code": code, "title": title, "detail": detail, "message": message}


def page_unit(request: Request):
    """The unit of work a page is drawn in: a GET's, or the redraw after a refused form (the same
    request: its CSRF token goes along, as for every cookie write)."""
    return unit(request, form_csrf=getattr(request.state, "form_csrf", None))


def redraw_with(request: Request, show: Callable[..., Response], *args: Any) -> Callable[..., Response]:
    """The usual ``redraw`` of :func:`form_action`: ``show(request, ctx, *args, error=, status=,
    form=)`` in a read-only unit of its own (the failed action's unit was rolled back)."""

    def redraw(**values: Any) -> Response:
        with page_unit(request) as ctx:
            return show(request, ctx, *args, **values)

    return redraw


def form_action(
    request: Request,
    form: dict[str, str],
    work: Callable[[Ctx], Response],
    redraw: Callable[..., Response],
    *,
    redraw_codes: Collection[str] = (),
) -> Response:
    """Run a form's action in one unit of work; a refusal draws the page again with the problem.
    401 and 403 go to the error page (not a mistake on this page), except the codes in
    ``redraw_codes`` (e.g. ``consent.missing``, which the page explains next to the form)."""
    request.state.form_csrf = form.get("csrf_token", "")
    try:
        with unit(request, form_csrf=request.state.form_csrf) as ctx:
            return work(ctx)
    except EgocrowdError as exc:
        if exc.status in (401, 403) and exc.code not in redraw_codes:
            raise
        return redraw(error=form_error(exc), status=exc.status, form=form)
