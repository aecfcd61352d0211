"""JSON API: robot evaluations in blind A/B battles (issue #19; egocrowd.evaluations,
docs/evaluations.md). The lab sets the evaluation up under a campaign and reads the live ranking; the
campaign's workers claim battles, judge them and are paid per verdict."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from egocrowd import evaluations
from egocrowd.db.models import Battle, EvalPolicy, Evaluation, FieldSession
from egocrowd.evaluations import sessions as field_sessions
from egocrowd.inputs import InputModel
from egocrowd.web.auth import unit
from egocrowd.web.blob_response import blob_response
from egocrowd.web.routers.api import Id

router = APIRouter(prefix="/api/v1", tags=["evaluations"])


class PolicyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    kind: str
    endpoint: str | None
    retired_at: datetime | None


class EvaluationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    campaign_id: int
    tasks: list[dict[str, str]]
    environments: list[str]
    pay_cents: int
    session_hour_cents: int
    session_max_hours: int
    gold_rate: float
    gold: list[dict[str, int]]
    lease_minutes: int
    max_open: int
    alpha: float
    created_at: datetime
    policies: list[PolicyOut] = []


class BattleOut(BaseModel):
    """What the evaluator sees: two robots called A and B, never their names."""

    id: int
    campaign_id: int
    status: str
    task: str | None
    prompt: str | None = Field(description="The lab's suggestion of what to ask, for this task")
    environments: list[str]
    claimed_at: datetime
    lease_expires_at: datetime
    judged_at: datetime | None
    verdict: str | None
    reason: str | None
    instruction: str | None
    person: str | None
    environment: str | None


class ResultsOut(BaseModel):
    ranking: dict[str, Any]
    settled: bool
    adjacent: list[dict[str, Any]]
    by_person: dict[str, dict[str, float]]
    by_environment: dict[str, dict[str, float]]
    evaluators: list[dict[str, Any]]
    gold_accuracy: float | None
    agreement: float | None
    judged: int
    gold_judged: int


class GoldIn(InputModel):
    pairs: list[evaluations.GoldPairIn] = Field(max_length=evaluations.MAX_POLICIES**2)


def _evaluation_out(session, ev: Evaluation) -> EvaluationOut:
    out = EvaluationOut.model_validate(ev)
    out.policies = [PolicyOut.model_validate(p) for p in evaluations.policies(session, ev)]
    return out


def _battle_out(session, battle: Battle) -> BattleOut:
    ev = session.get_one(Evaluation, battle.evaluation_id)
    prompt = next((t.get("prompt") or None for t in ev.tasks if t.get("task") == battle.task), None)
    return BattleOut(
        id=battle.id,
        campaign_id=ev.campaign_id,
        status=battle.status.value,
        task=battle.task,
        prompt=prompt,
        environments=list(ev.environments),
        claimed_at=battle.claimed_at,
        lease_expires_at=battle.lease_expires_at,
        judged_at=battle.judged_at,
        verdict=battle.verdict,
        reason=battle.reason,
        instruction=battle.instruction,
        person=battle.person,
        environment=battle.environment,
    )


@router.post("/campaigns/{campaign_id}/evaluation", status_code=201, response_model=EvaluationOut)
def create_evaluation(request: Request, campaign_id: Id, body: evaluations.EvaluationIn):
    """Make the campaign an evaluation of robot policies (those who manage the campaign)."""
    with unit(request) as ctx:
        return _evaluation_out(ctx.session, evaluations.create(ctx.session, ctx.require_user(), campaign_id, body))


@router.get("/campaigns/{campaign_id}/evaluation", response_model=EvaluationOut)
def get_evaluation(request: Request, campaign_id: Id):
    with unit(request) as ctx:
        ev = evaluations.of_campaign(ctx.session, ctx.require_user(), campaign_id, manage=True)
        return _evaluation_out(ctx.session, ev)


@router.post("/campaigns/{campaign_id}/evaluation/policies", status_code=201, response_model=PolicyOut)
def add_policy(request: Request, campaign_id: Id, body: evaluations.PolicyIn):
    """Register a policy: a remote endpoint (http, websocket) or a physical robot by name."""
    with unit(request) as ctx:
        p: EvalPolicy = evaluations.add_policy(ctx.session, ctx.require_user(), campaign_id, body)
        return PolicyOut.model_validate(p)


@router.put("/campaigns/{campaign_id}/evaluation/gold", response_model=EvaluationOut)
def set_gold(request: Request, campaign_id: Id, body: GoldIn):
    """The pairs whose better policy you know; gold battles are drawn from them, unmarked."""
    with unit(request) as ctx:
        ev = evaluations.set_gold(ctx.session, ctx.require_user(), campaign_id, body.pairs)
        return _evaluation_out(ctx.session, ev)


@router.get("/campaigns/{campaign_id}/evaluation/results", response_model=ResultsOut)
def results(request: Request, campaign_id: Id, rounds: int = Query(1000, ge=0, le=5000)):
    """The live ranking with bootstrap intervals, whether it is settled, per person and environment,
    and the evaluators' gold accuracy and agreement."""
    with unit(request) as ctx:
        r = evaluations.results(ctx.session, ctx.require_user(), campaign_id, rounds=rounds)
        return ResultsOut(**r.__dict__)


@router.post("/campaigns/{campaign_id}/battles", status_code=201, response_model=BattleOut)
def claim_battle(request: Request, campaign_id: Id):
    """Take the next battle of the campaign's evaluation (a worker; 409 ``evaluation.worker_cap``
    while you hold as many as it allows)."""
    with unit(request) as ctx:
        return _battle_out(ctx.session, evaluations.claim(ctx.session, ctx.require_user(), campaign_id))


@router.get("/battles", response_model=list[BattleOut])
def my_battles(request: Request):
    """Your battles, newest first."""
    with unit(request) as ctx:
        return [_battle_out(ctx.session, b) for b in evaluations.my_battles(ctx.session, ctx.require_user())]


@router.get("/battles/{battle_id}", response_model=BattleOut)
def get_battle(request: Request, battle_id: Id):
    with unit(request) as ctx:
        return _battle_out(ctx.session, evaluations.get_battle(ctx.session, ctx.require_user(), battle_id))


@router.post("/battles/{battle_id}/verdict", response_model=BattleOut)
def judge(request: Request, battle_id: Id, body: evaluations.VerdictIn):
    """Say which robot did better (``a``, ``b``) or that they tied, and why, once, while the lease
    runs (410 ``battle.lease_expired`` after it)."""
    with unit(request) as ctx:
        return _battle_out(ctx.session, evaluations.judge(ctx.session, ctx.require_user(), battle_id, body))


@router.post("/battles/{battle_id}/release", response_model=BattleOut)
def release(request: Request, battle_id: Id):
    with unit(request) as ctx:
        return _battle_out(ctx.session, evaluations.release(ctx.session, ctx.require_user(), battle_id))


class FieldSessionOut(BaseModel):
    """A long session's log as received: ``accepted`` (scored) or ``rejected`` with the bench
    reader's words and line."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    session_id: str | None
    worker_id: int
    status: str = Field(description="accepted | rejected")
    policy_id: int | None
    environment: str | None
    people: list[str]
    events: int
    duration_s: float | None
    size_bytes: int
    error: str | None
    error_line: int | None
    started_at: datetime | None
    created_at: datetime


@router.get("/campaigns/{campaign_id}/sessions", response_model=list[FieldSessionOut])
def list_field_sessions(request: Request, campaign_id: Id):
    """The long sessions logged on phones for the campaign's evaluation, newest first: all of them
    for the lab, your own for a worker. Upload a log with tus (``/api/v1/uploads``, metadata
    ``kind: field_session`` and ``campaign``)."""
    with unit(request) as ctx:
        rows: list[FieldSession] = list(field_sessions.list_sessions(ctx.session, ctx.require_user(), campaign_id))
        return [FieldSessionOut.model_validate(r) for r in rows]


@router.get("/campaigns/{campaign_id}/sessions/scores", response_model=dict[str, Any] | None)
def field_session_scores(request: Request, campaign_id: Id, rounds: int = Query(1000, ge=1, le=5000)):
    """The accepted sessions scored by egocrowd.bench: the same document as ``egocrowd bench score
    --format json`` on the same logs (null before the first accepted session)."""
    with unit(request) as ctx:
        return field_sessions.scores(
            ctx.session, ctx.require_user(), campaign_id, request.app.state.blobs, rounds=rounds
        )


@router.get("/campaigns/{campaign_id}/sessions/{field_session_id}/log")
def field_session_log(request: Request, campaign_id: Id, field_session_id: Id):
    """The log as received, accepted or refused (JSON Lines): for the worker who sent it and admins."""
    with unit(request) as ctx:
        row = field_sessions.sent_log(ctx.session, ctx.require_user(), campaign_id, field_session_id)
        sha, name = row.blob_sha256, f"session-{row.id}.jsonl"
    return blob_response(request, request.app.state.blobs, sha, media_type="application/x-ndjson", filename=name)
