"""Campaign pages: the list, one campaign at a glance, the create/edit form, cloning, status changes
(pausing and closing ask first) and claiming a slot."""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
import typing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from annotated_types import Ge, Le
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError

from egocrowd import clips, consent, i18n
from egocrowd.accounts import policy
from egocrowd.campaigns import assignments
from egocrowd.campaigns import service as campaigns
from egocrowd.campaigns.schema import (
    AnnotationSettings,
    CampaignIn,
    CampaignPatch,
    CaptureRequirements,
    DataUse,
    PaySettings,
    PrivacySettings,
    ReviewSettings,
)
from egocrowd.db.models import Campaign, CampaignStatus
from egocrowd.errors import Conflict, EgocrowdError, InvalidInput
from egocrowd.evaluations import sessions as field_sessions
from egocrowd.i18n import N_, _, ngettext, tr
from egocrowd.pay import budgets, rates
from egocrowd.training import service as training
from egocrowd.web.auth import unit, viewer
from egocrowd.web.pages.battles import campaign_section, evaluation_form, save_evaluation
from egocrowd.web.pages.clips import STATUS_WORDS as CLIP_WORDS
from egocrowd.web.pages.forms import GENERAL, Words, field_errors, summary
from egocrowd.web.pages.render import RawForm, TextForm, confirm_first, render, see_other
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)

#: A campaign's status, and the buttons that move it, in words.
STATUS_WORDS = {"draft": N_("draft"), "open": N_("open"), "paused": N_("paused"), "closed": N_("closed")}
TRANSITION_WORDS = {"open": N_("Open"), "paused": N_("Pause"), "closed": N_("Close")}
#: The capture requirements' choices in words (the model's values are short codes).
OPTION_WORDS = {
    "landscape": N_("Landscape"),
    "portrait": N_("Portrait"),
    "any": N_("Any"),
    "head_mounted": N_("Head mounted"),
    "chest_mounted": N_("Chest mounted"),
    "handheld": N_("Handheld"),
}
#: Where the phone is worn, as the campaign page says it.
MOUNT_WORDS = {
    "head_mounted": N_("head mounted"),
    "chest_mounted": N_("chest mounted"),
    "handheld": N_("handheld"),
    "any": N_("any mount"),
}


#: The languages a lab may add a title and instructions in (the main text is the campaign's own).
def translation_languages() -> list[str]:
    return [code for code in i18n.LANGUAGES if code != i18n.DEFAULT]


# --- the form ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    """One field of the campaign form: its form name, the campaign setting it fills (for the rule
    of what a live campaign may change), its words and its kind of input."""

    name: str
    setting: str
    label: str
    hint: str = ""
    kind: str = "text"  # text, textarea, number, select, check, datetime, countries
    options: tuple[tuple[str, str], ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Section:
    heading: str
    inputs: tuple[Input, ...]
    anchor: str = ""


@functools.cache
def _requirement_inputs() -> tuple[Input, ...]:
    """One input per capture requirement, read from the model (its title is the label, its
    description the hint): a requirement removed there leaves the form by itself."""
    out = []
    for name, f in CaptureRequirements.model_fields.items():
        if f.title is None:  # not a lab's choice on the form (the QC overrides are API-only)
            continue
        ann = f.annotation
        if typing.get_origin(ann) is typing.Literal:
            opts = tuple((v, OPTION_WORDS.get(v, str(v).replace("_", " ").capitalize())) for v in typing.get_args(ann))
            out.append(Input(name, "requirements", f.title, f.description or "", "select", opts))
        elif ann is bool:
            out.append(Input(name, "requirements", f.title, f.description or "", "check"))
        else:
            attrs: dict[str, Any] = {"step": "1" if ann is int else "any"}
            for m in f.metadata:
                if isinstance(m, Ge):
                    attrs["min"] = m.ge
                if isinstance(m, Le):
                    attrs["max"] = m.le
            out.append(Input(name, "requirements", f.title, f.description or "", "number", attrs=attrs))
    return tuple(out)


@functools.cache
def _data_use_inputs() -> tuple[Input, ...]:
    """One checkbox per data use, from the model: a use added there appears here by itself."""
    return tuple(
        Input(f"use_{k}", "data_use", f.description or k.replace("_", " ").capitalize(), kind="check")
        for k, f in DataUse.model_fields.items()
    )


#: The settings groups' choices in words (the models' values are short codes)
CHOICES = {
    "blur": N_("Blur (strong, cannot be undone)"),
    "fill": N_("Fill with a solid block"),
    "drop": N_("Drop the sound"),
    "keep": N_("Keep the sound"),
    "mute_speech": N_("Keep the sound, mute speech"),
    "date": N_("Only the date"),
    "full": N_("Date and time of day"),
    "platform": N_("Platform reviewers"),
    "requester": N_("Your own team"),
    "both": N_("Either, whoever gets there first"),
}

#: A campaign's settings groups, each a model stored whole in the column of the same name, shown as
#: a form section whose inputs are named ``<group>_<field>``.
SETTINGS_GROUPS: dict[str, type[BaseModel]] = {
    "privacy": PrivacySettings,
    "review": ReviewSettings,
    "annotation": AnnotationSettings,
    "pay_policy": PaySettings,  # fair pay (#11, pay.rates): automatic top-ups
}


@functools.cache
def settings_inputs(group: str) -> tuple[Input, ...]:
    """One input per field of a settings group's model (title: label, description: hint): a choice
    is a select, a yes/no a checkbox, a number a number input bounded by the model's limits."""
    out = []
    for name, f in SETTINGS_GROUPS[group].model_fields.items():
        label, hint = f.title or name.replace("_", " ").capitalize(), f.description or ""
        ann, form_name = f.annotation, f"{group}_{name}"
        if typing.get_origin(ann) is typing.Literal:
            opts = tuple((v, CHOICES.get(v, v.replace("_", " ").capitalize())) for v in typing.get_args(ann))
            out.append(Input(form_name, group, label, hint, "select", opts))
        elif ann is bool:
            out.append(Input(form_name, group, label, hint, "check"))
        else:
            attrs: dict[str, Any] = {
                "step": "1" if ann is int else "any",
                "inputmode": "numeric" if ann is int else "decimal",
            }
            for m in f.metadata:
                if isinstance(m, Ge):
                    attrs["min"] = m.ge
                if isinstance(m, Le):
                    attrs["max"] = m.le
            out.append(Input(form_name, group, label, hint, "number", attrs=attrs))
    return tuple(out)


def _settings_data(form: dict[str, Any], group: str) -> dict[str, Any]:
    """A group's form fields → the dict its model validates (an empty number is left to its default;
    text that is not a number goes through, so the model says what a number looks like)."""
    out: dict[str, Any] = {}
    for i in settings_inputs(group):
        key = i.name.removeprefix(f"{group}_")
        if i.kind == "check":
            out[key] = form.get(i.name) == "on"
        elif (form.get(i.name) or "").strip():
            out[key] = form[i.name].strip()
    return out


def _settings_form(group: str, values: dict[str, Any] | None) -> dict[str, str]:
    """A group's stored values (defaults filled in) as the form shows them."""
    v = SETTINGS_GROUPS[group].model_validate(values or {}).model_dump()
    return {f"{group}_{k}": _shown(x) for k, x in v.items()}


def privacy_words(privacy: dict[str, Any] | None, data_use: dict[str, Any] | None) -> list[str]:
    """What workers and the people around them can expect, in plain words (the campaign page)."""
    p = PrivacySettings.model_validate(privacy or {})
    if p.face_mode == "blur":
        lines = [
            _(
                "Faces of other people in the clips are blurred so they cannot be recognised before anyone but an admin sees a clip."
            )
        ]
    else:
        lines = [
            _(
                "Faces of other people in the clips are covered with a solid block before anyone but an admin sees a clip."
            )
        ]
    if (data_use or {}).get("keep_face"):
        lines.append(_("The wearer's own face (e.g. in a mirror) is kept only if the worker agreed to it."))
    else:
        lines.append(_("The wearer's own face (e.g. in a mirror) is hidden the same way."))
    if p.blur_text:
        lines.append(_("Readable text (screens, letters, labels, addresses) is blurred."))
    else:
        lines.append(_("Readable text is not blurred: keep letters, screens and addresses out of view."))
    lines.append(
        {
            "drop": _("The sound is removed."),
            "keep": _("The sound is kept, voices included: say nothing private while recording."),
            "mute_speech": _("The sound is kept with speech muted."),
        }[p.audio]
    )
    if p.recording_time == "date":
        lines.append(
            _(
                "Location, device serial numbers and owner names are removed from the file; only the recording date is kept."
            )
        )
    else:
        lines.append(
            _(
                "Location, device serial numbers and owner names are removed from the file; the date and time of day are kept."
            )
        )
    return lines


def review_words(review: dict[str, Any] | None) -> str:
    """Who accepts the clips, in words (the campaign page)."""
    r = ReviewSettings.model_validate(review or {})
    who = {
        "platform": _("platform reviewers"),
        "requester": _("the lab's team"),
        "both": _("the lab's team or platform reviewers"),
    }[r.reviewers]
    days = r.auto_accept_days
    if r.sample_fraction >= 1:
        first = tr("A person ({who}) looks at every clip.", who=who)
    else:
        first = tr(
            "A person ({who}) looks at {share} of the clips; the others are accepted once they pass the checks.",
            who=who,
            share=i18n.percent(r.sample_fraction),
        )
    then = ngettext(
        "A clip nobody decided on within {count} day is accepted.",
        "A clip nobody decided on within {count} days is accepted.",
        days,
    ).format(count=days)
    return f"{first} {then}"


def annotation_words(annotation: dict[str, Any] | None) -> str:
    a = AnnotationSettings.model_validate(annotation or {})
    if not a.enabled:
        return ""
    return ngettext(
        "Each accepted clip is labelled by {count} annotator.",
        "Each accepted clip is labelled by {count} annotators.",
        a.per_clip,
    ).format(count=a.per_clip)


@functools.cache
def sections() -> tuple[Section, ...]:
    return (
        Section(
            N_("The task"),
            (
                Input(
                    "title",
                    "title",
                    N_("Title"),
                    N_("What workers see in the list, e.g. “Fold a T-shirt”."),
                    attrs={"maxlength": 200},
                ),
                Input(
                    "instructions",
                    "instructions",
                    N_("Instructions for workers"),
                    N_("Step by step, in plain words: what to do, where, and what to avoid."),
                    "textarea",
                    attrs={"maxlength": 20000},
                ),
            ),
            "task",
        ),
        Section(
            N_("Pay and time"),
            (
                Input(
                    "pay",
                    "pay_cents",
                    N_("Pay per accepted clip"),
                    N_("An amount such as 1.50."),
                    "number",
                    attrs={"step": "0.01", "min": "0.01", "inputmode": "decimal"},
                ),
                Input(
                    "currency",
                    "currency",
                    N_("Currency"),
                    N_("Three letters, such as USD, EUR or KES."),
                    attrs={"maxlength": 3, "autocapitalize": "characters"},
                ),
                Input(
                    "expected_minutes",
                    "expected_minutes",
                    N_("Minutes a worker spends per clip"),
                    N_("Be honest: with the pay, this gives the hourly rate workers see."),
                    "number",
                    attrs={"step": "0.5", "min": "0.5"},
                ),
            ),
            "pay",
        ),
        Section(N_("What the clip must look like"), _requirement_inputs(), "clip"),
        Section(
            N_("Labels"),
            (
                Input(
                    "verbs",
                    "taxonomy",
                    N_("Actions (verbs)"),
                    N_("Comma separated, lower-case words such as take, put, fold, open_lid."),
                    "textarea",
                ),
                Input(
                    "nouns",
                    "taxonomy",
                    N_("Objects (nouns)"),
                    N_("Comma separated, such as shirt, jar, lid, cup."),
                    "textarea",
                ),
            ),
            "labels",
        ),
        Section(
            N_("Data use and consent"),
            (
                *_data_use_inputs(),
                Input(
                    "buyer_name",
                    "buyer_name",
                    N_("Who gets the data"),
                    N_("Shown to workers before they take part."),
                    attrs={"maxlength": 200},
                ),
                Input(
                    "consent_version",
                    "consent_version",
                    N_("Consent workers sign"),
                    N_("A worker must have signed it to take a slot."),
                    "select",
                ),
            ),
            "data",
        ),
        Section(N_("Privacy"), settings_inputs("privacy"), "privacy"),
        Section(N_("Review"), settings_inputs("review"), "review"),
        Section(N_("Annotation"), settings_inputs("annotation"), "annotation"),
        Section(N_("Fair pay"), settings_inputs("pay_policy"), "fair-pay"),
        Section(
            N_("Robot evaluation"),
            (
                Input(
                    "eval_on",
                    "evaluation",
                    N_("Workers judge robot battles"),
                    N_("Blind A/B comparisons of your policies; add the policies on the campaign page."),
                    "check",
                ),
                Input(
                    "eval_tasks",
                    "evaluation",
                    N_("Tasks"),
                    N_(
                        "One a line; after a | what evaluators could say, e.g. clear the table | Ask it to clear the table."
                    ),
                    "textarea",
                ),
                Input(
                    "eval_environments", "evaluation", N_("Environments"), N_("Comma separated, e.g. kitchen, garage.")
                ),
                Input(
                    "eval_pay",
                    "evaluation",
                    N_("Pay per verdict"),
                    N_("In the campaign's currency."),
                    "number",
                    attrs={"step": "0.01", "min": "0"},
                ),
                Input(
                    "eval_session_pay",
                    "evaluation",
                    N_("Pay per hour of a field session"),
                    N_(
                        "In the campaign's currency, for each hour of a long session a worker logs with a robot at home "
                        "and we accept; 0: sessions are not paid."
                    ),
                    "number",
                    attrs={"step": "0.01", "min": "0"},
                ),
                Input(
                    "eval_session_hours",
                    "evaluation",
                    N_("Hours paid at most per session"),
                    N_("1 to 24: a longer session is paid for this many hours."),
                    "number",
                    attrs={"step": "1", "min": "1", "max": "24"},
                ),
                Input(
                    "eval_gold_rate",
                    "evaluation",
                    N_("Share of gold battles"),
                    N_("0 to 0.5."),
                    "number",
                    attrs={"step": "0.01", "min": "0", "max": "0.5"},
                ),
                Input(
                    "eval_lease_minutes",
                    "evaluation",
                    N_("Minutes to judge a battle"),
                    "",
                    "number",
                    attrs={"step": "1", "min": "5"},
                ),
                Input(
                    "eval_max_open",
                    "evaluation",
                    N_("Battles one evaluator may hold"),
                    "",
                    "number",
                    attrs={"step": "1", "min": "1", "max": "5"},
                ),
                Input(
                    "eval_alpha",
                    "evaluation",
                    N_("Error level of the ranking's test"),
                    N_("0.001 to 0.2."),
                    "number",
                    attrs={"step": "0.001", "min": "0.001", "max": "0.2"},
                ),
            ),
            "evaluation",
        ),
        Section(
            N_("Who can take part"),
            (
                Input(
                    "allowed_countries",
                    "allowed_countries",
                    N_("Countries"),
                    N_("Tick none to let workers from everywhere take part."),
                    "countries",
                ),
            ),
            "who",
        ),
        Section(
            N_("Limits and deadline"),
            (
                Input(
                    "target_clips",
                    "target_clips",
                    N_("Clips wanted"),
                    N_("The number of slots workers can take; 0 when the campaign only evaluates robots."),
                    "number",
                    attrs={"step": "1", "min": "0"},
                ),
                Input(
                    "max_clips_per_worker",
                    "max_clips_per_worker",
                    N_("Most clips per worker"),
                    N_("Leave empty for no limit. Once live it can only go up."),
                    "number",
                    attrs={"step": "1", "min": "1"},
                ),
                Input(
                    "required_qualification",
                    "required_qualification",
                    N_("Qualification needed"),
                    N_(
                        "A training qualification's short name (see Training); workers must pass its test to "
                        "claim. Leave empty for none."
                    ),
                    "text",
                ),
                Input(
                    "min_level",
                    "min_level",
                    N_("Lowest recording level"),
                    N_("1 to 5; 0 for none. Levels rise with accepted clips (see Training)."),
                    "number",
                    attrs={"step": "1", "min": "0", "max": "5"},
                ),
                Input(
                    "deadline_at",
                    "deadline_at",
                    N_("Deadline"),
                    N_(
                        "Leave empty for none. After it no one can take a slot and the campaign closes; "
                        "once live it can only move later."
                    ),
                    "datetime",
                ),
            ),
            "limits",
        ),
    )


#: How the campaign form speaks (see egocrowd.web.pages.forms).
WORDS = Words(
    names={
        "pay_cents": "pay",
        "privacy": "privacy_audio",  # campaign.sound_not_covered: the one privacy rule a patch can break
        **{f"{g}.{k}": f"{g}_{k}" for g, model in SETTINGS_GROUPS.items() for k in model.model_fields},
        **{f"translations.{code}.{k}": f"tr_{code}_{k}" for code in i18n.LANGUAGES for k in ("title", "instructions")},
    },
    units={
        "min_duration_s": "second",
        "max_duration_s": "second",
        "min_width": "pixel",
        "min_height": "pixel",
        "min_fps": ("frame per second", "frames per second"),
        "max_upload_mb": ("MB", "MB"),
        "expected_minutes": "minute",
        "target_clips": "clip",
        "max_clips_per_worker": "clip",
    },
    overrides={
        "pay": {
            "int_parsing": N_("Must be an amount, such as 1.50."),
            "greater_than_equal": N_("Must be at least 0.01."),
            "less_than_equal": N_("Must be at most 10,000.00."),
        },
        "allowed_countries": {
            "string_pattern_mismatch": N_("Use two-letter country codes such as KE or BR; “{input}” is not one.")
        },
        "verbs": {
            "string_pattern_mismatch": N_("Use lower-case words such as fold or open_lid; “{input}” is not one."),
            "too_short": N_("Give at least one action."),
        },
        "nouns": {
            "string_pattern_mismatch": N_("Use lower-case words such as shirt or lid; “{input}” is not one."),
            "too_short": N_("Give at least one object."),
        },
        "currency": {"string_pattern_mismatch": N_("Use a three-letter currency code such as USD, EUR or KES.")},
        "max_duration_s": {"value_error": N_("The longest clip must be at least as long as the shortest.")},
        "consent_version": {
            "string_too_short": N_("Choose the consent workers sign."),
            "missing": N_("Choose the consent workers sign."),
        },
    },
)


def _campaign_data(form: dict[str, Any]) -> dict[str, Any]:
    """Form fields → the nested shape CampaignIn validates. Empty numbers are left out (so the
    model says "Please fill this in"), and text that is not a number goes through as typed (so it
    says what a number looks like): every mistake is found in one pass."""

    def number(name: str) -> Any:
        return form.get(name, "").strip() or None

    pay = number("pay")
    pay_cents: Any = pay  # "abc", "nan", "inf", "1.005": the model answers in plain words
    with contextlib.suppress(InvalidOperation, ValueError, OverflowError):
        cents = Decimal(pay) * 100 if pay is not None else None  # exact: money is never a float
        if cents is None or cents == cents.to_integral_value():
            pay_cents = None if cents is None else int(cents)
    req: dict[str, Any] = {}
    for i in _requirement_inputs():
        if i.kind == "check":
            req[i.name] = form.get(i.name) == "on"
        elif form.get(i.name, "").strip():
            req[i.name] = form[i.name].strip()
    data: dict[str, Any] = {
        "title": form.get("title", ""),
        "instructions": form.get("instructions", ""),
        "translations": _translations_data(form),
        "requirements": req,
        "taxonomy": {"verbs": form.get("verbs", ""), "nouns": form.get("nouns", "")},
        "target_clips": number("target_clips"),
        "pay_cents": pay_cents,
        "currency": (form.get("currency") or "").strip().upper(),
        "expected_minutes": number("expected_minutes"),
        "allowed_countries": form.get("allowed_countries") or [],
        "data_use": {k: form.get(f"use_{k}") == "on" for k in DataUse.model_fields},
        **{g: _settings_data(form, g) for g in SETTINGS_GROUPS},
        "buyer_name": form.get("buyer_name", ""),
        "consent_version": form.get("consent_version", ""),
        "deadline_at": _in_viewers_zone(number("deadline_at")),
        "max_clips_per_worker": number("max_clips_per_worker"),
        "required_qualification": form.get("required_qualification", "").strip() or None,  # training (#15)
        "min_level": number("min_level"),
    }
    optional = {"deadline_at", "max_clips_per_worker", "required_qualification"}
    return {k: v for k, v in data.items() if v is not None or k in optional}


def _translations_data(form: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The languages the lab filled in (a title or instructions); an empty pair is no translation."""
    out = {}
    for code in translation_languages():
        title, text = ((form.get(f"tr_{code}_{k}") or "").strip() for k in ("title", "instructions"))
        if title or text:
            out[code] = {"title": title, "instructions": text}
    return out


def _in_viewers_zone(value: str | None) -> str | None:
    """The form's "2027-01-31T18:00" is the viewer's wall clock (the field says which zone): the
    moment it names, with its offset, for the model to store in UTC. Anything else goes to the
    model as typed, which says what a date looks like."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=i18n.tz())
    return moment.isoformat()


def _default_form() -> dict[str, Any]:
    d = CaptureRequirements()
    f: dict[str, Any] = {i.name: _shown(getattr(d, i.name)) for i in _requirement_inputs()}
    f.update({f"use_{k}": "on" if v else "" for k, v in DataUse().model_dump().items()})
    for g in SETTINGS_GROUPS:
        f.update(_settings_form(g, None))
    f.update(currency="USD", target_clips="100", expected_minutes="5", pay="1.50", allowed_countries=[])
    f.update(evaluation_form(None, None))
    return f


def _form_from(c: Campaign) -> dict[str, Any]:
    """A campaign's settings as the form shows them."""
    f: dict[str, Any] = {
        "title": c.title,
        "instructions": c.instructions,
        "target_clips": str(c.target_clips),
        "pay": f"{c.pay_cents // 100}.{c.pay_cents % 100:02d}",
        "currency": c.currency,
        "expected_minutes": _shown(c.expected_minutes),
        "allowed_countries": list(c.allowed_countries),
        "buyer_name": c.buyer_name,
        "consent_version": c.consent_version,
        "verbs": ", ".join(c.taxonomy.get("verbs", [])),
        "nouns": ", ".join(c.taxonomy.get("nouns", [])),
        "deadline_at": c.deadline_at.astimezone(i18n.tz()).strftime("%Y-%m-%dT%H:%M") if c.deadline_at else "",
        "max_clips_per_worker": str(c.max_clips_per_worker or ""),
        "required_qualification": c.required_qualification or "",
        "min_level": str(c.min_level or ""),
    }
    for code, t in (c.translations or {}).items():
        f.update({f"tr_{code}_title": t.get("title", ""), f"tr_{code}_instructions": t.get("instructions", "")})
    f.update({i.name: _shown(c.requirements.get(i.name)) for i in _requirement_inputs()})
    f.update({f"use_{k}": "on" if c.data_use.get(k) else "" for k in DataUse.model_fields})
    for g in SETTINGS_GROUPS:
        f.update(_settings_form(g, getattr(c, g)))
    return f


def _shown(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return "" if v is None else str(v)


def _locked(c: Campaign | None) -> set[str]:
    """Form fields a live campaign keeps as they are (the deal a worker already accepted)."""
    if c is None or c.status is CampaignStatus.draft:
        return set()
    return {
        i.name
        for s in sections()
        for i in s.inputs
        if i.setting not in campaigns.EDITABLE_WHEN_LIVE and i.setting != "evaluation"  # battles' own settings
    }


def _posted(raw) -> dict[str, Any]:
    """The form's text fields; the countries ticked as a list."""
    form: dict[str, Any] = {k: v for k, v in raw.items() if isinstance(v, str)}
    codes = [v for v in raw.getlist("allowed_countries") if isinstance(v, str) and v]
    form["allowed_countries"] = [t for v in codes for t in re.split(r"[\s,;]+", v) if t]
    return form


def _consent_choices(session, user, campaign) -> list:
    """The consent texts this lab's campaign may name (newest revision of each of the platform's
    families and the lab's own); an edited campaign's current choice stays listed."""
    org = campaign.organization_id if campaign is not None else user.organization_id
    docs = consent.usable_documents(session, org)
    if campaign is not None and campaign.consent_version not in {d.version for d in docs}:
        docs.insert(0, consent.get_document(session, campaign.consent_version))
    return docs


def _show_form(request: Request, user, session, *, form, campaign=None, errors=None, status: int = 200, code: str = ""):
    locked = _locked(campaign)
    if campaign is not None and locked:  # locked fields show the campaign, never what was posted
        saved = _form_from(campaign)
        form = {**form, **{k: saved[k] for k in locked}}
    errors = errors or {}
    return render(
        request,
        "campaign_form.html",
        user,
        status=status,
        form=form,
        campaign=campaign,
        sections=sections(),
        locked=locked,
        errors=errors,
        summary=summary(errors) if errors else None,
        code=code,  # the problem's code, for programs reading the page
        labels={**{i.name: _(i.label) for s in sections() for i in s.inputs}, **_translation_labels()},
        documents=_consent_choices(session, user, campaign),
        languages=[i18n.LANGUAGES[code] for code in translation_languages()],
        zone=i18n.zone(),
    )


def _translation_labels() -> dict[str, str]:
    """The error summary's link text for each translation field (already in the viewer's words)."""
    out = {}
    for code in translation_languages():
        name = i18n.LANGUAGES[code].name
        out[f"tr_{code}_title"] = tr("Title in {language}", language=name)
        out[f"tr_{code}_instructions"] = tr("Instructions in {language}", language=name)
    return out


# --- routes --------------------------------------------------------------------------------------
@router.get("/campaigns", response_class=HTMLResponse)
def campaign_list(request: Request):
    with unit(request) as ctx:
        user = ctx.require_user()
        only_open = CampaignStatus.open if policy.can(user, "work.take") else None  # a worker's home: what's claimable
        rows = campaigns.list_campaigns(ctx.session, user, status=only_open)
        return render(
            request,
            "campaigns.html",
            user,
            campaigns=rows,
            signed=consent.signed_versions(ctx.session, user),
            hourly=campaigns.hourly_rate_cents,
            status_words=STATUS_WORDS,
            localized=campaigns.localized,
        )


@router.get("/campaigns/new", response_class=HTMLResponse)
def campaign_new(request: Request):
    with unit(request) as ctx:
        user = policy.require(ctx.user, "campaign.create")
        return _show_form(request, user, ctx.session, form=_default_form())


@router.post("/campaigns/new")
def campaign_create(request: Request, raw: RawForm):
    form = _posted(raw)
    try:
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            user = policy.require(ctx.user, "campaign.create")
            cid = campaigns.create_campaign(ctx.session, user, CampaignIn.model_validate(_campaign_data(form))).id
            save_evaluation(ctx.session, user, cid, form)
    except (EgocrowdError, ValidationError) as exc:
        return _form_again(request, form, exc)
    return see_other(f"/campaigns/{cid}?m=saved")


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_detail(request: Request, campaign_id: Id):
    with unit(request) as ctx:
        return campaign_detail_page(request, ctx, campaign_id)


def campaign_detail_page(request: Request, ctx, campaign_id: int, *, status: int = 200, **values: Any):
    """The campaign page (``values``: e.g. the ``error`` of a form on it that was refused)."""
    user = ctx.require_user()
    c = campaigns.get_campaign(ctx.session, user, campaign_id)
    # the lab's whole team (viewers too) and admins see how it goes; only editors change it
    glance = _at_a_glance(ctx.session, c) if policy.can(user, "org.view", c.organization) else None
    has_consent = (
        policy.can(user, "consent.sign") and consent.active_consent(ctx.session, user, c.consent_version) is not None
    )
    values.pop("form", None)
    return render(
        request,
        "campaign.html",
        user,
        status=status,
        evaluation=campaign_section(ctx.session, user, c),  # robot battles (#19)
        **values,
        c=c,
        shown=_shown_text(c),
        status_words=STATUS_WORDS,
        transition_words=TRANSITION_WORDS,
        clip_words=CLIP_WORDS,
        mount_words=MOUNT_WORDS,
        manages=policy.can(user, "campaign.manage", c),
        glance=glance,
        has_consent=has_consent,
        hourly=campaigns.hourly_rate_cents(c),
        transitions=[s.value for s in CampaignStatus if s in campaigns.TRANSITIONS[c.status]],  # lifecycle order
        data_use_words={i.name.removeprefix("use_"): i.label for i in _data_use_inputs()},
        privacy_words=privacy_words(c.privacy, c.data_use),
        review_words=review_words(c.review),
        annotation_words=annotation_words(c.annotation),
        budget=budgets.budget(ctx.session, c) if glance else None,
        pay_report=rates.report(ctx.session, c) if glance else None,  # hourly rates, floors, top-ups
        deposit_key=secrets.token_hex(16),  # one deposit per form drawn: a double submit posts once
        training=training.requirements(ctx.session, user, c),  # what to practise first (#15)
        field_sessions=field_sessions.overview(ctx.session, user, c, request.app.state.blobs),  # #19
    )


def _shown_text(c: Campaign) -> dict[str, Any]:
    """The title and instructions in the viewer's language where the lab wrote them, and which
    language that is (``missing``: the viewer reads another language than English and the lab
    wrote nothing in it, so the page says the text is shown as written)."""
    title, instructions, language = campaigns.localized(c)
    viewer_language = i18n.current().split("-")[0]
    return {
        "title": title,
        "instructions": instructions,
        "language": language,
        "missing": language is None and viewer_language != i18n.DEFAULT,
    }


def _at_a_glance(session, c: Campaign) -> dict[str, Any]:
    """Progress, QC, spend and the last 30 days, for the lab that runs the campaign."""
    prog = assignments.progress(session, c)
    days = clips.daily_counts(session, c.id, 30)
    return {
        "progress": prog,
        "qc": clips.qc_statistics(session, c.id),
        "spent_cents": prog["accepted"] * c.pay_cents,
        "committed_cents": c.slots_taken * c.pay_cents,
        "days": days,
        "active_days": [d for d in reversed(days) if d["received"] or d["passed"]],  # the table: newest first
        "chart": chart(days),
    }


@router.get("/campaigns/{campaign_id}/edit", response_class=HTMLResponse)
def campaign_edit_form(request: Request, campaign_id: Id):
    with unit(request) as ctx:
        user = ctx.require_user()
        c = campaigns.get_managed_campaign(ctx.session, user, campaign_id)
        form = {**_form_from(c), **evaluation_form(ctx.session, c)}
        return _show_form(request, user, ctx.session, form=form, campaign=c)


@router.post("/campaigns/{campaign_id}/edit")
def campaign_edit(request: Request, campaign_id: Id, raw: RawForm):
    form = _posted(raw)
    try:
        with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
            user = ctx.require_user()
            c = campaigns.get_managed_campaign(ctx.session, user, campaign_id)
            data = _campaign_data(form)
            if c.status is CampaignStatus.draft:
                CampaignIn.model_validate(data)  # every mistake at once, as on the new-campaign form
            else:  # live: only what the lab changed among the fields it may still change
                saved = _campaign_data(_form_from(c))
                data = {k: v for k, v in data.items() if k in campaigns.EDITABLE_WHEN_LIVE and v != saved.get(k)}
            campaigns.update_campaign(ctx.session, user, campaign_id, CampaignPatch.model_validate(data))
            save_evaluation(ctx.session, user, campaign_id, form)
    except (EgocrowdError, ValidationError) as exc:
        return _form_again(request, form, exc, campaign_id)
    return see_other(f"/campaigns/{campaign_id}?m=saved")


@router.post("/campaigns/{campaign_id}/clone")
def campaign_clone(request: Request, campaign_id: Id, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        cid = campaigns.clone_campaign(ctx.session, ctx.require_user(), campaign_id).id
    return see_other(f"/campaigns/{cid}/edit?m=cloned")


@router.post("/campaigns/{campaign_id}/status")
def campaign_status(request: Request, campaign_id: Id, form: TextForm):
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        user = ctx.require_user()
        c = campaigns.get_managed_campaign(ctx.session, user, campaign_id)
        target = form.get("status", "")
        if target in ("paused", "closed"):
            ask = confirm_first(request, user, form, **_what_happens(ctx.session, c, target))
            if ask is not None:
                return ask
        campaigns.transition(ctx.session, user, campaign_id, target)
    return see_other(f"/campaigns/{campaign_id}?m=status")


def _what_happens(session, c: Campaign, target: str) -> dict[str, Any]:
    n = len(campaigns.active_workers(session, c.id))
    title = campaigns.localized(c)[0]
    if target == "closed":
        holders = ngettext(
            "{count} worker holds an open slot: their slots end now and they are told.",
            "{count} workers hold open slots: their slots end now and they are told.",
            n,
        ).format(count=n)
        return {
            "question": tr("Close “{campaign}” for good?", campaign=title),
            "consequences": [
                _("No one can take a slot any more, and this cannot be undone."),
                holders if n else _("No worker holds an open slot now."),
                _("Clips already sent are still checked and paid."),
            ],
            "yes": _("Close the campaign"),
            "back": f"/campaigns/{c.id}",
        }
    holders = ngettext(
        "{count} worker holds an open slot: they keep it, may still upload until their lease runs out, and are told.",
        "{count} workers hold open slots: they keep them, may still upload until their lease runs out, and are told.",
        n,
    ).format(count=n)
    return {
        "question": tr("Pause “{campaign}”?", campaign=title),
        "consequences": [
            _("No one can take a new slot until you open it again."),
            holders if n else _("No worker holds an open slot now."),
        ],
        "yes": _("Pause the campaign"),
        "back": f"/campaigns/{c.id}",
    }


@router.post("/campaigns/{campaign_id}/claim")
def campaign_claim(request: Request, campaign_id: Id, form: TextForm):
    settings = request.app.state.settings
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        assignments.claim(
            ctx.session,
            ctx.require_user(),
            campaign_id,
            lease=timedelta(hours=settings.lease_hours),
            max_open=settings.max_open_assignments,
        )
    return see_other("/assignments?m=claimed")


def _form_again(request: Request, form: dict, exc: Exception, campaign_id: int | None = None):
    """The form back with the viewer's input and every mistake next to its field, only for a
    mistake in the input and only to a viewer who may fill in this form. Anyone else gets the plain
    error: the form shows the campaign (a draft's title, its terms), so it must never answer a
    stranger (issue #16)."""
    if not isinstance(exc, (ValidationError, InvalidInput, Conflict)):
        raise exc
    with request.app.state.db.transaction(write=False) as s:
        user = viewer(request, s)
        try:
            if campaign_id is None:
                campaign = None
                policy.require(user, "campaign.create")
            else:
                campaign = campaigns.get_managed_campaign(s, user, campaign_id)
        except EgocrowdError:
            raise exc from None
        status = exc.status if isinstance(exc, EgocrowdError) else 422
        code = exc.code if isinstance(exc, EgocrowdError) else "validation.failed"
        return _show_form(
            request, user, s, form=form, campaign=campaign, errors=_sound_next_to_field(exc), status=status, code=code
        )


def _sound_next_to_field(exc: Exception) -> dict[str, str]:
    """Every error next to its field. CampaignIn's check of sound against data use is a rule of the
    whole model (no field of its own): it goes next to the Sound choice."""
    errors = field_errors(exc, WORDS)  # type: ignore[arg-type]
    if isinstance(exc, ValidationError) and GENERAL in errors:
        for e in exc.errors(include_url=False):
            if not e["loc"] and "sound" in str((e.get("ctx") or {}).get("error", "")):
                errors.setdefault("privacy_audio", errors.pop(GENERAL))
                break
    return errors


# --- the chart -----------------------------------------------------------------------------------
def chart(days: list[dict[str, Any]], *, width: int = 600, height: int = 160) -> dict[str, Any]:
    """Bars for clips received per day and a line for clips that passed QC, as SVG coordinates
    (the template draws them: no script, no library)."""
    top = max([0, *(d["received"] for d in days)])  # said in the caption: 0 when nothing came yet
    n = max(1, len(days))
    step = width / n
    scale = (height - 20) / max(1, top)

    def y(v: int) -> float:
        return round(height - v * scale, 1)

    bars = [
        {
            "x": round(i * step + step * 0.15, 1),
            "y": y(d["received"]),
            "w": round(step * 0.7, 1),
            "h": round(d["received"] * scale, 1),
            "day": d["day"],
            "received": d["received"],
        }
        for i, d in enumerate(days)
    ]
    line = " ".join(f"{round(i * step + step / 2, 1)},{y(d['passed'])}" for i, d in enumerate(days))
    return {"width": width, "height": height, "top": top, "bars": bars, "line": line}
