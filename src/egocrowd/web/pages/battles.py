"""Pages: blind A/B robot battles (issue #19, docs/evaluations.md). The evaluator claims a battle
from the campaign page, gives one instruction, runs robot A then robot B (played in the simulator
against the lab's endpoint, or run by the lab's operator from a per-battle code) and says which did
better and why. The lab reads the live ranking on its campaign page (a fragment the page polls),
manages policies and gold pairs there, and resolves operator codes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from pydantic import BaseModel, ValidationError

from egocrowd import evaluations
from egocrowd.accounts import policy
from egocrowd.campaigns import service as campaigns_service
from egocrowd.db.models import Battle, Campaign, Evaluation, User
from egocrowd.errors import EgocrowdError, InvalidInput
from egocrowd.evaluations import serving
from egocrowd.i18n import N_
from egocrowd.web.auth import unit
from egocrowd.web.pages.render import (
    RawForm,
    TextForm,
    flash_messages,
    form_action,
    form_error,
    page_unit,
    redraw_with,
    render,
    see_other,
)
from egocrowd.web.routers.api import Id

router = APIRouter(include_in_schema=False)
M = TypeVar("M", bound=BaseModel)

flash_messages(
    {
        "battle_claimed": N_("Battle claimed: your lease is running."),
        "battle_ran": N_("The robot's run is below."),
        "battle_judged": N_("Thank you: your verdict was sent."),
        "battle_released": N_("Battle given back."),
        "policy_added": N_("Policy added."),
        "gold_pairs_saved": N_("Gold pairs saved."),
    }
)

#: why a simulated run stopped, in the evaluator's words
STOPPED_WORDS = {
    "done": N_("the session ended"),
    "step_cap": N_("the step limit was reached"),
    "time_limit": N_("the time limit was reached"),
}
#: a battle's state (BattleStatus) in its evaluator's words
BATTLE_WORDS = {
    "active": N_("in progress"),
    "judged": N_("verdict sent"),
    "released": N_("given back"),
    "expired": N_("time ran out"),
}
#: an adjacent pair's sequential test, in the lab's words
DECISION_WORDS = {"continue": N_("not yet"), "a": N_("settled"), "b": N_("settled: order reversed")}
#: rounds of the ranking's bootstrap on the page (the API's default is 1000; the page polls)
PAGE_ROUNDS = 400
#: how often the lab's page asks for the ranking again, in seconds
POLL_SECONDS = 15


# --- the campaign page's section ---------------------------------------------------------------
def campaign_section(session, user: User, c: Campaign) -> dict[str, Any] | None:
    """What campaign.html's evaluation partial shows: nothing when the campaign has no evaluation;
    the live ranking and the forms for those who manage it; the claim button and the battles held
    for a worker."""
    ev = evaluations.for_campaign(session, c)
    if ev is None:
        return None
    manages = policy.can(user, "campaign.manage", c)
    out: dict[str, Any] = {"ev": ev, "manages": manages, "poll": POLL_SECONDS}
    if manages:
        out.update(_lab_values(session, user, c.id, ev))
    if policy.can(user, "evaluation.take"):
        out["mine"] = evaluations.active_battles(session, user, ev)
    return out


def _lab_values(session, user: User, campaign_id: int, ev: Evaluation) -> dict[str, Any]:
    r = evaluations.results(session, user, campaign_id, rounds=PAGE_ROUNDS)
    chart = evaluations.ranking_svg(r)
    pols = evaluations.policies(session, ev)
    names = {p.id: p.name for p in pols}
    return {
        "results": r,
        "chart": Markup(chart),  # noqa: S704 - bench.svg escapes every label it draws
        "policies": pols,
        "gold_pairs": [(g["better"], g["worse"], names.get(g["better"]), names.get(g["worse"])) for g in ev.gold],
        "decision_words": DECISION_WORDS,
    }


@router.get("/campaigns/{campaign_id}/evaluation/ranking", response_class=HTMLResponse)
def ranking_fragment(request: Request, campaign_id: Id):
    """The lab's live ranking alone, which the campaign page fetches again every few seconds."""
    with unit(request) as ctx:
        user = ctx.require_user()
        ev = evaluations.of_campaign(ctx.session, user, campaign_id, manage=True)
        values = _lab_values(ctx.session, user, campaign_id, ev)
        return render(request, "_evaluation_ranking.html", user, c=ev.campaign, **values)


def _valid(model: type[M], data: dict[str, Any]) -> M:
    """A form's fields as an input model; a refusal is a problem the page shows above the form."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        said = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise InvalidInput(said, code="validation.failed") from None


def _to_campaign(campaign_id: int, key: str) -> Response:
    return see_other(f"/campaigns/{campaign_id}?m={key}#evaluation")


def _campaign_again(request: Request, ctx, campaign_id: int, **values: Any) -> Response:
    from egocrowd.web.pages.campaigns import campaign_detail_page  # the campaign page redrawn with the error

    return campaign_detail_page(request, ctx, campaign_id, **values)


@router.post("/campaigns/{campaign_id}/evaluation/policies/new")
def policy_add(request: Request, campaign_id: Id, form: TextForm):
    def work(ctx) -> Response:
        data = _valid(
            evaluations.PolicyIn,
            {"name": form.get("name", ""), "kind": form.get("kind", ""), "endpoint": form.get("endpoint") or None},
        )
        evaluations.add_policy(ctx.session, ctx.require_user(), campaign_id, data)
        return _to_campaign(campaign_id, "policy_added")

    return form_action(request, form, work, redraw_with(request, _campaign_again, campaign_id))


@router.post("/campaigns/{campaign_id}/evaluation/gold")
def gold_set(request: Request, campaign_id: Id, raw: RawForm):
    """The gold pairs: those ticked to keep, and a new one when both of its policies are chosen."""
    form = {k: v for k, v in raw.items() if isinstance(v, str)}

    def work(ctx) -> Response:
        pairs = []
        for kept in raw.getlist("keep"):
            better, _, worse = str(kept).partition("-")
            pairs.append({"better": better, "worse": worse})
        if form.get("better") and form.get("worse"):
            pairs.append({"better": form["better"], "worse": form["worse"]})
        evaluations.set_gold(
            ctx.session, ctx.require_user(), campaign_id, [_valid(evaluations.GoldPairIn, p) for p in pairs]
        )
        return _to_campaign(campaign_id, "gold_pairs_saved")

    return form_action(request, form, work, redraw_with(request, _campaign_again, campaign_id))


# --- the evaluation's settings in the campaign form ----------------------------------------------
#: the campaign form's fields (campaigns.py's "Robot evaluation" section) and EvaluationIn's
EVAL_FIELDS = {
    "tasks": "eval_tasks",
    "environments": "eval_environments",
    "pay_cents": "eval_pay",
    "session_hour_cents": "eval_session_pay",
    "session_max_hours": "eval_session_hours",
    "gold_rate": "eval_gold_rate",
    "lease_minutes": "eval_lease_minutes",
    "max_open": "eval_max_open",
    "alpha": "eval_alpha",
}


def evaluation_form(session, c: Campaign | None) -> dict[str, str]:
    """The form's evaluation fields: the campaign's evaluation, else EvaluationIn's defaults."""
    ev = evaluations.for_campaign(session, c) if c is not None else None
    src: Any = ev if ev is not None else evaluations.EvaluationIn()
    tasks = [t.model_dump() if hasattr(t, "model_dump") else t for t in src.tasks]
    return {
        "eval_on": "on" if ev is not None else "",
        "eval_tasks": "\n".join(f"{t['task']} | {t['prompt']}" if t.get("prompt") else t["task"] for t in tasks),
        "eval_environments": ", ".join(src.environments),
        "eval_pay": f"{src.pay_cents // 100}.{src.pay_cents % 100:02d}",
        "eval_session_pay": f"{src.session_hour_cents // 100}.{src.session_hour_cents % 100:02d}",
        "eval_session_hours": str(src.session_max_hours),
        "eval_gold_rate": f"{src.gold_rate:g}",
        "eval_lease_minutes": str(src.lease_minutes),
        "eval_max_open": str(src.max_open),
        "eval_alpha": f"{src.alpha:g}",
    }


def _cents(typed: Any) -> Any:
    """An amount typed in the currency's units as minor units; what is not one goes on to the model
    as typed, which answers in plain words ("abc", "1.005")."""
    text = str(typed or "").strip() or "0"
    try:
        cents = Decimal(text) * 100  # exact: money is never a float
        return int(cents) if cents == cents.to_integral_value() else text
    except (InvalidOperation, ValueError, OverflowError):
        return text


def _evaluation_in(form: dict[str, Any]) -> evaluations.EvaluationIn:
    """The form's evaluation fields as EvaluationIn; a mistake names its field."""
    tasks = []
    for line in str(form.get("eval_tasks", "")).splitlines():
        task, _, prompt = line.partition("|")
        if task.strip():
            tasks.append({"task": task.strip(), "prompt": prompt.strip()})
    data = {
        "tasks": tasks,
        "environments": [e.strip() for e in str(form.get("eval_environments", "")).split(",") if e.strip()],
        "pay_cents": _cents(form.get("eval_pay")),
        "session_hour_cents": _cents(form.get("eval_session_pay")),
        **{
            k: str(form.get(EVAL_FIELDS[k], "")).strip() or None
            for k in ("session_max_hours", "gold_rate", "lease_minutes", "max_open", "alpha")
        },
    }
    data = {k: v for k, v in data.items() if v is not None}
    try:
        return evaluations.EvaluationIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = EVAL_FIELDS.get(str(first["loc"][0]) if first["loc"] else "", "eval_tasks")
        raise InvalidInput(first["msg"].removeprefix("Value error, "), code="validation.failed", field=field) from None


def save_evaluation(session, user: User, campaign_id: int, form: dict[str, Any]) -> None:
    """The campaign form's evaluation section: made when ticked, changed when it exists (unticking
    keeps an evaluation that has battles: its verdicts are part of the ranking)."""
    if form.get("eval_on") != "on":
        return
    data = _evaluation_in(form)
    if evaluations.for_campaign(session, campaigns_service.get_campaign(session, user, campaign_id)) is None:
        evaluations.create(session, user, campaign_id, data)
    else:
        evaluations.update(session, user, campaign_id, data)


# --- the evaluator's side ----------------------------------------------------------------------
@router.post("/campaigns/{campaign_id}/battles/claim")
def battle_claim(request: Request, campaign_id: Id, form: TextForm):
    def work(ctx) -> Response:
        battle = evaluations.claim(ctx.session, ctx.require_user(), campaign_id)
        return see_other(f"/battles/{battle.id}?m=battle_claimed")

    return form_action(request, form, work, redraw_with(request, _campaign_again, campaign_id))


def _battle_page(request: Request, ctx, battle_id: int, *, status: int = 200, **values: Any) -> Response:
    user = ctx.require_user()
    battle: Battle = evaluations.get_battle(ctx.session, user, battle_id)
    ev = ctx.session.get_one(Evaluation, battle.evaluation_id)
    prompt = next((t.get("prompt") or None for t in ev.tasks if t.get("task") == battle.task), None)
    done = battle.rollouts or {}
    return render(
        request,
        "battle.html",
        user,
        status=status,
        battle=battle,
        ev=ev,
        c=ev.campaign,
        prompt=prompt,
        kinds=serving.slot_kinds(ctx.session, battle),
        done=done,
        active=battle.status.value == "active",
        stopped_words=STOPPED_WORDS,
        battle_words=BATTLE_WORDS,
        form=values.pop("form", None) or {},
        **values,
    )


@router.get("/battles/{battle_id}", response_class=HTMLResponse)
def battle_page(request: Request, battle_id: Id):
    with page_unit(request) as ctx:
        return _battle_page(request, ctx, battle_id)


@router.post("/battles/{battle_id}/run/{slot}")
def battle_run(request: Request, battle_id: Id, slot: str, form: TextForm):
    """Run one blind slot: played in the simulator now (bounded; the lab's endpoint is called
    outside any transaction), or marked as run by the lab's operator for a physical robot."""
    settings = request.app.state.settings
    request.state.form_csrf = form.get("csrf_token", "")
    instruction = form.get("instruction", "")
    try:
        with unit(request, form_csrf=request.state.form_csrf) as ctx:
            user = ctx.require_user()
            plan = serving.plan_run(ctx.session, user, battle_id, slot, instruction)
            if plan.kind == "physical":
                serving.mark_physical(ctx.session, user, battle_id, slot, instruction)
        if plan.kind != "physical":
            rollout = serving.play(
                plan, steps=settings.evaluation_rollout_steps, seconds=settings.evaluation_rollout_seconds
            )
            with unit(request, form_csrf=request.state.form_csrf) as ctx:
                serving.record_run(ctx.session, ctx.require_user(), battle_id, slot, plan.instruction, rollout)
    except EgocrowdError as exc:
        if exc.status in (401, 403):
            raise
        with page_unit(request) as ctx:
            return _battle_page(request, ctx, battle_id, status=exc.status, error=form_error(exc), form=form)
    return see_other(f"/battles/{battle_id}?m=battle_ran#slot-{slot}")


@router.post("/battles/{battle_id}/verdict")
def battle_verdict(request: Request, battle_id: Id, form: TextForm):
    def work(ctx) -> Response:
        user = ctx.require_user()
        battle = evaluations.get_battle(ctx.session, user, battle_id)
        data = _valid(
            evaluations.VerdictIn,
            {
                "verdict": form.get("verdict", ""),
                "reason": form.get("reason", "").strip(),
                "instruction": (battle.rollouts or {}).get("instruction") or form.get("instruction", ""),
                "person": form.get("person", "").strip() or None,
                "environment": form.get("environment") or None,
            },
        )
        evaluations.judge(ctx.session, user, battle_id, data)
        return see_other(f"/battles/{battle_id}?m=battle_judged")

    return form_action(request, form, work, redraw_with(request, _battle_page, battle_id))


@router.post("/battles/{battle_id}/release")
def battle_release(request: Request, battle_id: Id, form: TextForm):
    def work(ctx) -> Response:
        battle = evaluations.release(ctx.session, ctx.require_user(), battle_id)
        campaign_id = ctx.session.get_one(Evaluation, battle.evaluation_id).campaign_id
        return _to_campaign(campaign_id, "battle_released")

    return form_action(request, form, work, redraw_with(request, _battle_page, battle_id))


# --- the lab's robot operator ------------------------------------------------------------------
@router.get("/campaigns/{campaign_id}/evaluation/operator", response_class=HTMLResponse)
def operator_page(request: Request, campaign_id: Id, code: str = ""):
    """Which policy to load for the slot code an evaluator reads out (the lab only)."""
    with unit(request) as ctx:
        user = ctx.require_user()
        ev = evaluations.of_campaign(ctx.session, user, campaign_id, manage=True)
        found = error = None
        if code.strip():
            try:
                battle, slot, p = serving.resolve_code(ctx.session, user, campaign_id, code[:40])
                found = {"battle": battle, "slot": slot.upper(), "policy": p}
            except InvalidInput as exc:
                error = form_error(exc)
            except EgocrowdError as exc:
                if exc.status in (401, 403):
                    raise
                error = form_error(exc)
        return render(request, "battle_operator.html", user, c=ev.campaign, code=code[:40], found=found, error=error)
