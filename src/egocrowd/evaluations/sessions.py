"""Long sessions logged on the phone (issue #19, docs/evaluations.md): during a session of minutes to
hours a worker logs each instruction (by which household member, a pseudonymous label such as "P1"),
intervention, misinterpretation, recovery and the chain of subtasks, written by the page straight
into the egocrowd.bench log schema (one session per log) and uploaded with tus when the network
allows.

A finished upload is read with the very readers ``egocrowd bench score`` uses
(:func:`egocrowd.bench.score.read_digests`). A log they accept, whose policy and environment belong to
the evaluation, is stored ``accepted`` and scored with the campaign's other sessions by the same
:func:`~egocrowd.bench.score.score_digests`. A log they refuse is stored ``rejected`` with its raw
bytes and the reader's words, line number included, and the upload is refused with that problem:
nothing is lost, the phone keeps its copy to send again, an admin can read the bytes.

Pay: an evaluation that pays per hour of session (``session_hour_cents``, capped at
``session_max_hours`` a session) pays each accepted session once, in the transaction that accepts it
(egocrowd.pay.sessions: owed when the budget is short, settled by the next deposit).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.campaigns.service import get_campaign
from egocrowd.consent import require_cover
from egocrowd.db import Database
from egocrowd.db.models import MAX_ID, Campaign, CampaignStatus, EvalPolicy, Evaluation, FieldSession, Role, User
from egocrowd.errors import Conflict, EgocrowdError, InvalidInput, NotFound
from egocrowd.evaluations import Recent, of_campaign, policies
from egocrowd.pay import sessions as session_pay
from egocrowd.uploads.protocol import Grant
from egocrowd.uploads.store import UploadInfo

__all__ = [
    "KIND",
    "MAX_LOG_BYTES",
    "field_session_from_upload",
    "grant_field_upload",
    "list_sessions",
    "overview",
    "scores",
    "sent_log",
]

#: Upload-Metadata ``kind`` of a session log (a clip upload names an ``assignment`` instead)
KIND = "field_session"
#: a day-long session with an event every second is ~15 MB of JSON lines
MAX_LOG_BYTES = 32 * 1024 * 1024
#: the log's file name in the reader's words ("session.jsonl:12: ..."), never the server's path
LOG_NAME = "session.jsonl"


def grant_field_upload(session: Session, worker: User, metadata: dict[str, str]) -> Grant:
    """May ``worker`` upload a session log for the evaluation campaign its metadata names?"""
    try:
        campaign_id = int(metadata.get("campaign", ""))
        if not 0 <= campaign_id <= MAX_ID:  # nobody's id; the database driver would fail on it
            raise ValueError(campaign_id)
    except ValueError:
        raise InvalidInput(
            "Upload-Metadata of a session log must name the campaign (key 'campaign').", code="upload.bad_metadata"
        ) from None
    policy.require(worker, "evaluation.take")
    ev = of_campaign(session, worker, campaign_id)
    if ev.campaign.status is not CampaignStatus.open:
        raise Conflict("This campaign is not open for evaluations.", code="evaluation.not_open")
    require_cover(session, worker, ev.campaign)
    return Grant(
        owner=str(worker.id),
        max_length=MAX_LOG_BYTES,
        context={"kind": KIND, "evaluation_id": ev.id, "campaign_id": ev.campaign_id, "worker_id": worker.id},
    )


def _read(path: Path, ev: Evaluation, known: dict[str, EvalPolicy]) -> dict[str, Any]:
    """What the log says, checked by the bench readers and against the evaluation; InvalidInput
    (with ``line`` where the readers give one) when it is refused."""
    from egocrowd.bench.score import read_digests  # SciPy via bench.stats: not at the server's start

    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / LOG_NAME
        os.symlink(path, named)
        try:
            digests = read_digests([named])
        except InvalidInput as exc:
            message = exc.message.replace(str(named), LOG_NAME)
            raise InvalidInput(message, code="field_session.bad_log", line=exc.extra.get("line")) from None
    if len(digests) != 1:
        raise InvalidInput(
            f"{LOG_NAME}: a session log holds exactly one session; this one holds {len(digests)}.",
            code="field_session.bad_log",
            line=None,
        )
    d = digests[0]
    if d.policy not in known:
        raise InvalidInput(
            f"{LOG_NAME}:1: policy {d.policy!r} is not one of this evaluation's.",
            code="field_session.bad_log",
            line=1,
        )
    if ev.environments and d.environment not in ev.environments:
        raise InvalidInput(
            f"{LOG_NAME}:1: environment {d.environment!r} is not one of this evaluation's.",
            code="field_session.bad_log",
            line=1,
        )
    return {"digest": d, "policy_id": known[d.policy].id}


def _header(path: Path) -> dict[str, Any]:
    """The first line's fields where it is a readable header (for a rejected log's record)."""
    import json

    try:
        with path.open("rb") as fh:
            first = json.loads(fh.readline(64 * 1024).decode("utf-8"))
        return first if isinstance(first, dict) else {}
    except (ValueError, OSError):
        return {}


def field_session_from_upload(db: Database, blobs, info: UploadInfo, data_path: Path) -> dict[str, str]:
    """Finish a received session log (idempotent by upload id); headers for the client. A refused
    log is stored ``rejected`` (bytes kept) and then raised as ``field_session.bad_log``."""
    c = info.context
    with db.transaction() as s:
        done = s.scalar(sa.select(FieldSession).where(FieldSession.upload_id == info.id))
        if done is not None:
            return _answer(done)
        ev = s.get_one(Evaluation, int(c["evaluation_id"]))
        known = {p.name: p for p in policies(s, ev)}
    refused: InvalidInput | None = None
    try:
        got = _read(data_path, ev, known)
    except InvalidInput as exc:
        refused, got = exc, {}
    head = _header(data_path)
    lines = _count_lines(data_path)
    # kept even when refused: the worker sends it again, an admin reads it (info.sha256: tus hashed it)
    ref = blobs.put_file(data_path, sha256=info.sha256, move=True, verify=info.sha256 is None)
    d = got.get("digest")
    with db.transaction() as s:
        worker = s.get_one(User, int(c["worker_id"]))
        row = FieldSession(
            evaluation_id=ev.id,
            worker_id=worker.id,
            upload_id=info.id,
            session_id=str(d.session_id if d else head.get("session_id") or "")[:200] or None,
            status="rejected" if refused else "accepted",
            policy_id=got.get("policy_id"),
            environment=d.environment[:100] if d else None,
            people=_people(head),
            events=lines - 1 if d else 0,
            duration_s=float(d.duration) if d else None,
            blob_sha256=ref.sha256,
            size_bytes=ref.size,
            error=refused.message if refused else None,
            error_line=refused.extra.get("line") if refused else None,
            started_at=_when(head.get("started_at")),
        )
        if refused is None:
            # fixed now, at the evaluation's rate and cap as they stand (pay.sessions)
            now = s.get_one(Evaluation, ev.id)
            row.pay_cents = session_pay.session_pay_cents(row.duration_s, now.session_hour_cents, now.session_max_hours)
        s.add(row)
        s.flush()
        audit.record(
            s,
            worker,
            "field_session.rejected" if refused else "field_session.accepted",
            row,
            {
                "evaluation_id": ev.id,
                "upload_id": info.id,
                "session_id": row.session_id,
                "error": row.error,
                "pay_cents": row.pay_cents,
            },
        )
        session_pay.pay_for_session(s, row, worker)
        row_id = row.id
    if refused is not None:
        raise refused
    return {"Egocrowd-Field-Session-Id": str(row_id)}


def _answer(row: FieldSession) -> dict[str, str]:
    if row.status == "rejected":
        raise InvalidInput(row.error or "The log was refused.", code="field_session.bad_log", line=row.error_line)
    return {"Egocrowd-Field-Session-Id": str(row.id)}


def _people(head: dict[str, Any]) -> list[str]:
    people = head.get("people")
    if not isinstance(people, list):
        return []
    return [str(p.get("id"))[:50] for p in people[:50] if isinstance(p, dict) and p.get("id")]


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def _when(value: Any):
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


# --- the lab's side -----------------------------------------------------------------------------
def list_sessions(session: Session, user: User, campaign_id: int) -> Sequence[FieldSession]:
    """The campaign's session logs, newest first: every one for those who manage the campaign, a
    worker's own for a worker."""
    campaign = get_campaign(session, user, campaign_id)
    manages = policy.can(user, "campaign.manage", campaign)
    if not manages:
        policy.require(user, "evaluation.take")
    ev = session.scalar(sa.select(Evaluation).where(Evaluation.campaign_id == campaign.id))
    if ev is None:
        raise NotFound(f"Campaign {campaign_id} has no evaluation.", code="evaluation.not_found")
    q = sa.select(FieldSession).where(FieldSession.evaluation_id == ev.id)
    if not manages:
        q = q.where(FieldSession.worker_id == user.id)
    return list(session.scalars(q.order_by(FieldSession.id.desc())))


def sent_log(session: Session, user: User, campaign_id: int, field_session_id: int) -> FieldSession:
    """A session log as it was received, accepted or refused: for the worker who sent it and for
    admins (it may hold words said at home; the lab reads the scores)."""
    row = session.get(FieldSession, field_session_id)
    ev = session.get(Evaluation, row.evaluation_id) if row is not None else None
    if (
        row is None
        or ev is None
        or ev.campaign_id != campaign_id
        or (row.worker_id != user.id and user.role is not Role.admin)
    ):
        raise NotFound(f"No session log {field_session_id} of yours here.", code="field_session.not_found")
    return row


def scores(session: Session, user: User, campaign_id: int, blobs, *, rounds: int = 1000) -> dict[str, Any] | None:
    """The accepted sessions scored by egocrowd.bench exactly as ``egocrowd bench score`` scores
    the same logs (None before the first accepted session)."""
    ev = of_campaign(session, user, campaign_id, manage=True)
    rows = list(
        session.scalars(
            sa.select(FieldSession)
            .where(FieldSession.evaluation_id == ev.id, FieldSession.status == "accepted")
            .order_by(FieldSession.id)
        )
    )
    if not rows:
        return None
    # a log's bytes never change (its blob is named by their hash)
    key = (tuple((row.id, row.blob_sha256) for row in rows), rounds)
    return _SCORES.get(key, lambda: _score_logs(rows, blobs, rounds))


_SCORES = Recent()


def _score_logs(rows: Sequence[FieldSession], blobs, rounds: int) -> dict[str, Any]:
    from egocrowd.bench.metrics import ScoreConfig
    from egocrowd.bench.score import read_digests, score_digests

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for row in rows:
            p = Path(tmp) / f"{row.id}.jsonl"
            with blobs.open(row.blob_sha256) as src, p.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            paths.append(p)
        try:
            doc = score_digests(read_digests(paths), ScoreConfig(rounds=rounds), inputs=[p.name for p in paths])
        except EgocrowdError as exc:  # e.g. more policies or people than the bench's caps
            raise Conflict(exc.message, code=exc.code) from None
    return doc


def overview(session: Session, user: User, campaign: Campaign, blobs) -> dict[str, Any] | None:
    """The campaign page's part: for those who manage it, the sessions and their scores (``problem``
    when they cannot be scored together); for a worker, whether they may log sessions. None: the
    campaign is no evaluation."""
    if session.scalar(sa.select(Evaluation.id).where(Evaluation.campaign_id == campaign.id)) is None:
        return None
    if not policy.can(user, "campaign.manage", campaign):
        return {"worker": policy.can(user, "evaluation.take")}
    rows = list_sessions(session, user, campaign.id)
    problem = None
    try:
        doc = scores(session, user, campaign.id, blobs, rounds=500)
    except EgocrowdError as exc:
        doc, problem = None, exc.message
    return {"worker": False, "rows": rows, "scores": doc, "problem": problem}
