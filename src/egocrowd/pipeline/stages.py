"""The clip stage machine: probe → qc → (later: de-identify, annotate, …).

A stage is three functions, so that the heavy part can run anywhere:
- ``prepare(session, clip, ctx) -> dict``: gathers its inputs from the database (thresholds, the
  fingerprints of earlier clips, the blob path) and from ``ctx`` (:class:`StageContext`: the blob
  store and the settings; ``compute`` gets what it needs of them as plain values);
- ``compute(inputs) -> dict``: pure and picklable (a module-level function), run by an executor
  (inline, a process pool, later a cluster). It must not touch the database;
- ``apply(session, clip, result) -> next stage name | None``: writes the result and the clip's new
  state in one transaction, with its audit events.
A file we cannot accept (``MediaError``) is a *result* (the clip is rejected with its reason code),
not a failure: only unexpected exceptions are retried.

Stages register in :data:`STAGES` with :func:`stage`; the stage's version is stored on its job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.clock import utcnow
from egocrowd.db.models import Assignment, AssignmentStatus, Clip, ClipStatus
from egocrowd.errors import MediaError
from egocrowd.notifications import notify
from egocrowd.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy import CursorResult

    from egocrowd.blobs import BlobStore
    from egocrowd.settings import Settings


@dataclass(frozen=True)
class StageContext:
    """What ``prepare`` may use besides the database."""

    blobs: BlobStore
    settings: Settings


@dataclass(frozen=True)
class Stage:
    prepare: Callable[[Session, Clip, StageContext], dict[str, Any]]
    compute: Callable[[dict[str, Any]], dict[str, Any]]
    apply: Callable[[Session, Clip, dict[str, Any]], str | None]


STAGES: Registry[Stage] = Registry("pipeline.stage")
FIRST_STAGE = "probe"


ComputeFn = Callable[[dict[str, Any]], dict[str, Any]]


def stage(
    name: str,
    version: str,
    *,
    prepare: Callable[[Session, Clip, StageContext], dict[str, Any]],
    apply: Callable[[Session, Clip, dict[str, Any]], str | None],
    description: str = "",
) -> Callable[[ComputeFn], ComputeFn]:
    """Register the decorated ``compute`` function as stage ``name``."""

    def deco(compute: ComputeFn) -> ComputeFn:
        STAGES.add(
            name,
            Stage(prepare, compute, apply),
            version=version,
            description=description or (compute.__doc__ or "").strip().split("\n")[0],
        )
        return compute

    return deco


def _media_rejection(exc: MediaError) -> dict[str, Any]:
    return {"rejected": True, "code": exc.code, "message": exc.message}


def _reopen_assignment(session: Session, clip: Clip, why: str) -> None:
    """A clip that cannot be used gives the worker another try while the lease runs."""
    if clip.assignment_id is None:
        return
    done = cast(
        "CursorResult[Any]",  # an UPDATE's result has a rowcount
        session.execute(
            sa.update(Assignment)
            .where(Assignment.id == clip.assignment_id, Assignment.status == AssignmentStatus.submitted)
            .values(status=AssignmentStatus.active, submitted_at=None)
            .execution_options(synchronize_session=False)
        ),
    )
    if done.rowcount:
        audit.record(
            session,
            None,
            "assignment.reopened",
            clip.assignment_id,
            {"clip_id": clip.id, "why": why},
            entity_type="assignment",
        )


def _finish(
    session: Session, clip: Clip, status: ClipStatus, action: str, payload: dict[str, Any], reason: str | None = None
) -> None:
    clip.status = status
    clip.reason_code = reason
    clip.updated_at = utcnow()
    audit.record(session, None, action, clip, payload)
    if status in (ClipStatus.qc_failed, ClipStatus.rejected):
        _reopen_assignment(session, clip, reason or status.value)
    _tell_worker(session, clip, status, payload)


def _tell_worker(session: Session, clip: Clip, status: ClipStatus, payload: dict[str, Any]) -> None:
    """The worker hears the verdict in the same transaction that stores it."""
    title = clip.campaign.title
    if status is ClipStatus.qc_passed:
        subject, body = f"Clip {clip.id} passed its checks", f"Your clip for “{title}” passed the checks."
    elif status is ClipStatus.qc_failed:
        subject = f"Clip {clip.id} needs another take"
        body = "\n".join(payload.get("reasons") or ()) or f"Your clip for “{title}” did not pass the checks."
    else:
        subject = f"Clip {clip.id} could not be used"
        body = payload.get("message") or "The file could not be read as a video."
    notify(session, clip.worker_id, "qc.result", subject, body, link=f"/clips/{clip.id}")


PROBE_TIMEOUT_S = 120.0
QC_TIMEOUT_S = 900.0


# --- probe ----------------------------------------------------------------------------------------
def _sandbox(ctx: StageContext) -> dict[str, Any]:
    """The media limits of this deployment's settings, for the compute side (which has none)."""
    # The media stack (PyAV, OpenCV, NumPy: ~350 ms measured) is imported when the first stage runs,
    # not when the server or the worker starts; compute runs in the executor's processes anyway.
    from egocrowd.media.probe import ProbeLimits

    return {"limits": ProbeLimits.from_settings(ctx.settings), "memory_mb": ctx.settings.media_memory_mb}


def _prepare_probe(session: Session, clip: Clip, ctx: StageContext) -> dict[str, Any]:
    return {"path": str(ctx.blobs.path(clip.sha256)), **_sandbox(ctx)}


def _apply_probe(session: Session, clip: Clip, result: dict[str, Any]) -> str | None:
    if result.get("rejected"):
        _finish(
            session,
            clip,
            ClipStatus.rejected,
            "clip.rejected",
            {"stage": "probe", "code": result["code"], "message": result["message"]},
            reason=result["code"],
        )
        return None
    clip.probe = result["probe"]
    clip.updated_at = utcnow()
    return "qc"


@stage("probe", "1", prepare=_prepare_probe, apply=_apply_probe)
def compute_probe(inputs: dict[str, Any]) -> dict[str, Any]:
    from egocrowd.media.bounded import call_bounded  # the media stack: see _sandbox
    from egocrowd.media.probe import probe

    try:  # in a child process with a memory cap and a deadline: a hostile file cannot hang us
        return {
            "probe": call_bounded(
                probe,
                inputs["path"],
                limits=inputs.get("limits"),
                timeout_s=PROBE_TIMEOUT_S,
                max_memory_mb=inputs.get("memory_mb"),
            ).to_dict()
        }
    except MediaError as exc:
        return _media_rejection(exc)


# --- qc -------------------------------------------------------------------------------------------
#: How many earlier clips of the same campaign a new clip is compared against for near-duplicates.
DUPLICATE_WINDOW = 5000


def qc_thresholds_for(requirements: dict[str, Any]) -> dict[str, Any]:
    """Campaign capture requirements → QC thresholds (explicit ``qc`` overrides win)."""
    th: dict[str, Any] = {}
    for key in ("min_duration_s", "max_duration_s", "min_fps", "orientation", "camera_placement"):
        if key in requirements:
            th[key] = requirements[key]
    if "min_width" in requirements and "min_height" in requirements:
        # width x height in either orientation (orientation is its own check): short and long side
        th["min_short_side"] = min(requirements["min_width"], requirements["min_height"])
        th["min_long_side"] = max(requirements["min_width"], requirements["min_height"])
        th["warn_short_side"] = max(th["min_short_side"], 720)
    if "min_fps" in requirements:
        th["warn_fps"] = max(float(requirements["min_fps"]), 29.0)
    if requirements.get("hands_in_view") is False:
        th["disabled"] = ["hands_visible"]
    th.update(requirements.get("qc") or {})
    return th


def _prepare_qc(session: Session, clip: Clip, ctx: StageContext) -> dict[str, Any]:
    known = session.execute(
        sa.select(Clip.id, Clip.fingerprint)
        .where(Clip.campaign_id == clip.campaign_id, Clip.id != clip.id, Clip.fingerprint.is_not(None))
        .order_by(Clip.id.desc())
        .limit(DUPLICATE_WINDOW)
    ).all()
    palm_model = ctx.settings.palm_model
    return {
        "path": str(ctx.blobs.path(clip.sha256)),
        "probe": clip.probe,
        "thresholds": qc_thresholds_for(clip.campaign.requirements),
        "known": [(cid, fp) for cid, fp in known],
        "palm_model": str(palm_model) if palm_model else None,
        "client_meta": dict(clip.client_meta or {}),
        **_sandbox(ctx),
    }


def _apply_qc(session: Session, clip: Clip, result: dict[str, Any]) -> str | None:
    if result.get("rejected"):
        _finish(
            session,
            clip,
            ClipStatus.rejected,
            "clip.rejected",
            {"stage": "qc", "code": result["code"], "message": result["message"]},
            reason=result["code"],
        )
        return None
    report = result["report"]
    clip.qc_report = report
    clip.fingerprint = report.get("fingerprint")
    failed = [c["name"] for c in report["checks"] if c["status"] == "fail"]
    status = ClipStatus.qc_passed if report["status"] == "qc_passed" else ClipStatus.qc_failed
    _finish(
        session,
        clip,
        status,
        f"clip.{status.value}",
        {"failed": failed, "reasons": report.get("reasons", [])},
        reason=f"qc.{failed[0]}" if failed else None,
    )
    return None


@stage("qc", "1", prepare=_prepare_qc, apply=_apply_qc)
def compute_qc(inputs: dict[str, Any]) -> dict[str, Any]:
    from egocrowd.media.bounded import call_bounded  # the media stack: see _sandbox
    from egocrowd.media.fingerprint import Fingerprint
    from egocrowd.media.probe import ProbeResult
    from egocrowd.media.qc.report import run_qc

    known = [(cid, Fingerprint.from_dict(fp)) for cid, fp in inputs["known"]]
    probe_result = ProbeResult.from_dict(inputs["probe"]) if inputs.get("probe") else None
    try:
        report = call_bounded(
            run_qc,
            inputs["path"],
            inputs["thresholds"],
            known,
            probe_result=probe_result,
            palm_model=inputs.get("palm_model"),
            client_meta=inputs.get("client_meta"),
            limits=inputs.get("limits"),
            timeout_s=QC_TIMEOUT_S,
            max_memory_mb=inputs.get("memory_mb"),
        )
    except MediaError as exc:
        return _media_rejection(exc)
    return {"report": report.to_dict()}
