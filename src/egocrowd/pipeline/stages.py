"""The clip stage machine: probe → qc → deidentify → review (egocrowd.labels) → (later: annotate, …).

A stage is three functions, so that the heavy part can run anywhere:
- ``prepare(session, clip, ctx) -> dict``: gathers its inputs from the database (thresholds, the
  fingerprints of earlier clips, the blob store and hash) and from ``ctx`` (:class:`StageContext`: the blob
  store and the settings; ``compute`` gets what it needs of them as plain values);
- ``compute(inputs) -> dict``: pure and picklable (a module-level function), run by an executor
  (inline, a process pool, later a cluster). It must not touch the database;
- ``apply(session, clip, result) -> next stage name | None``: writes the result and the clip's new
  state in one transaction, with its audit events.
A file we cannot accept (``MediaError``) is a *result* (the clip is rejected with its reason code),
not a failure: only unexpected exceptions are retried. A stage may name ``give_up(session, clip,
code)``: what the clip shows when the runner stops retrying it (default: the clip's status ``error``),
and ``put_back(session, clip)``: what it shows when an operator runs the stage again (default:
``processing``).

Stages register in :data:`STAGES` with :func:`stage`; the stage's version is stored on its job.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.clock import utcnow
from egocrowd.db.models import (
    Assignment,
    AssignmentStatus,
    AuditEvent,
    Clip,
    ClipStatus,
    DeidStatus,
    Derivative,
    RedactionEdit,
    RedactionKind,
    User,
)
from egocrowd.errors import DeidError, MediaError
from egocrowd.i18n import N_
from egocrowd.notifications import notify
from egocrowd.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy import CursorResult

    from egocrowd.blobs import Blobs
    from egocrowd.settings import Settings


@dataclass(frozen=True)
class StageContext:
    """What ``prepare`` may use besides the database."""

    blobs: Blobs
    settings: Settings


@dataclass(frozen=True)
class Stage:
    prepare: Callable[[Session, Clip, StageContext], dict[str, Any]]
    compute: Callable[[dict[str, Any]], dict[str, Any]]
    apply: Callable[[Session, Clip, dict[str, Any]], str | None]
    #: what the clip shows when the runner gives up on this stage (None: status ``error``)
    give_up: Callable[[Session, Clip, str], None] | None = None
    #: what the clip shows when an operator runs the stage again (pipeline.jobs; None: ``processing``)
    put_back: Callable[[Session, Clip], None] | None = None


STAGES: Registry[Stage] = Registry("pipeline.stage", builtins="egocrowd.labels.stages")
FIRST_STAGE = "probe"


ComputeFn = Callable[[dict[str, Any]], dict[str, Any]]


def stage(
    name: str,
    version: str,
    *,
    prepare: Callable[[Session, Clip, StageContext], dict[str, Any]],
    apply: Callable[[Session, Clip, dict[str, Any]], str | None],
    give_up: Callable[[Session, Clip, str], None] | None = None,
    put_back: Callable[[Session, Clip], None] | None = None,
    description: str = "",
) -> Callable[[ComputeFn], ComputeFn]:
    """Register the decorated ``compute`` function as stage ``name``."""

    def deco(compute: ComputeFn) -> ComputeFn:
        STAGES.add(
            name,
            Stage(prepare, compute, apply, give_up, put_back),
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
    params = {"clip": clip.id, "title": clip.campaign.title, "reasons": "\n".join(payload.get("reasons") or ())}
    body: str | list[str]
    if status is ClipStatus.qc_passed:
        subject, body = N_("Clip {clip} passed its checks"), N_("Your clip for “{title}” passed the checks.")
    elif status is ClipStatus.qc_failed:
        subject = N_("Clip {clip} needs another take")
        # the checks' reasons are built by the QC stage (in English until QC speaks languages itself)
        body = "{reasons}" if params["reasons"] else N_("Your clip for “{title}” did not pass the checks.")
    else:
        subject = N_("Clip {clip} could not be used")
        params["message"] = payload.get("message") or ""
        body = "{message}" if params["message"] else N_("The file could not be read as a video.")
    notify(session, clip.worker_id, "qc.result", subject, body, link=f"/clips/{clip.id}", params=params)


PROBE_TIMEOUT_S = 120.0
QC_TIMEOUT_S = 900.0


# --- probe ----------------------------------------------------------------------------------------
def _sandbox(ctx: StageContext) -> dict[str, Any]:
    """The media limits of this deployment's settings, for the compute side (which has none)."""
    # The media stack (PyAV, OpenCV, NumPy: ~350 ms measured) is imported when the first stage runs,
    # not when the server or the worker starts; compute runs in the executor's processes anyway.
    from egocrowd.media.probe import ProbeLimits

    return {"limits": ProbeLimits.from_settings(ctx.settings), "memory_mb": ctx.settings.media_memory_mb}


def _media(ctx: StageContext, clip: Clip) -> dict[str, Any]:
    """Where compute finds the clip's bytes: the store (by its spec, so a process of its own can open
    it) and the hash. Fetching a local copy (an s3:// store) is compute's work, outside the
    transaction that prepares inputs."""
    return {"blobs": ctx.blobs.spec(), "sha256": clip.sha256}


def _media_path(inputs: dict[str, Any]) -> str:
    """The clip as a local file: the blob itself (file://) or a verified cached copy (s3://)."""
    from egocrowd.blobs import open_blob_store

    return str(open_blob_store(**inputs["blobs"]).local_path(inputs["sha256"]))


def _prepare_probe(session: Session, clip: Clip, ctx: StageContext) -> dict[str, Any]:
    return {**_media(ctx, clip), **_sandbox(ctx)}


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
                _media_path(inputs),
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
        **_media(ctx, clip),
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
    if status is ClipStatus.qc_passed:
        # A passed clip is de-identified before anyone but an admin sees it (its QC status stays).
        clip.deid_status, clip.deid_reason = DeidStatus.pending, None
        return "deidentify"
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
            _media_path(inputs),
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


# --- deidentify -----------------------------------------------------------------------------------
# Every clip that passes QC (and any clip clips.deid.request_deidentify names) gets a derived video:
# faces and text redacted, sound and metadata per the campaign's privacy settings (media.deid.render).
# compute renders into the blob store's tmp/ and moves the file into the store; apply links it with a
# new Derivative row (never overwritten) and sets deid_status: clean, review (unsure detectors, or
# asked) or failed (a DeidError's code; pipeline.deidentify_failed when the runner gives up).
# Derivative.regions is the applied RedactionPlan.to_dict() plus "auto_stats" (the detectors' stats)
# and, when reviewer edits changed it, "auto_plan" (the plan before edits, re-used by the next render);
# Derivative.params["edits"] lists the ids of the corrections the render applied.
DEID_STAGE_VERSION = "1"

#: A campaign's privacy settings when it says nothing: the strictest. The same defaults as
#: campaigns.schema.PrivacySettings (the pipeline sits beside campaigns and may not import it; a
#: test keeps the two equal).
PRIVACY_DEFAULTS: dict[str, Any] = {"face_mode": "blur", "blur_text": True, "audio": "drop", "recording_time": "date"}

#: Code of a clip someone asked a person to look at (it stays ``review`` after every render).
REVIEW_REQUESTED = "deid.review_requested"
LOW_CONFIDENCE = "deid.low_confidence"
#: Code of a clip whose reviewer corrections named tracks of an earlier detection (withdrawn: look again)
EDITS_STALE = "deid.edits_stale"


def deid_timeout_s(duration_s: float) -> float:
    """Deadline of one render: detection runs at a few frames per second on a busy 2-core box at
    720p, so allow ~1 s of work per frame of a 30 fps clip, and never less than 10 minutes."""
    return max(600.0, 30.0 * float(duration_s or 0.0) + 120.0)


def plan_config_for(privacy: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The detectors a campaign's clips go through, from its privacy settings and ours."""
    from egocrowd.media.deid.plan import production_config  # the media stack: see _sandbox

    config = production_config(
        text=bool(privacy["blur_text"]),
        text_every=settings.deid_text_every,
        face_input_width=settings.deid_face_input_width,
        face_model=str(settings.face_model) if settings.face_model else None,
        text_model=str(settings.text_model) if settings.text_model else None,
    )
    return {"detectors": config.detectors, "every": config.every}


def render_edit(e: RedactionEdit) -> dict[str, Any]:
    """A reviewer's correction as the renderer takes it (media.deid.render.apply_edits)."""
    return {
        "id": e.id,
        "kind": e.kind.value,
        "frame_start": e.frame_start,
        "frame_end": e.frame_end,
        "box": e.box,
        "track_id": e.track_id,
    }


def latest_derivative(session: Session, clip: Clip) -> Derivative | None:
    """The clip's newest de-identified render (what ``clip.derived_id`` points at once applied)."""
    return session.scalar(
        sa.select(Derivative)
        .where(Derivative.clip_id == clip.id, Derivative.kind == "deid")
        .order_by(Derivative.id.desc())
        .limit(1)
    )


def _reusable_plan(session: Session, clip: Clip, plan_config: dict[str, Any]) -> dict[str, Any] | None:
    """The automatic plan of the clip's last render, when detection would give the same again: same
    stage version, same raw bytes, same detectors and settings."""
    last = latest_derivative(session, clip)
    if (
        last is None
        or last.stage_version != DEID_STAGE_VERSION
        or last.source_sha256 != clip.sha256
        or (last.params or {}).get("plan_config") != plan_config
    ):
        return None
    regions = last.regions or {}
    auto = regions.get("auto_plan") or {k: v for k, v in regions.items() if k not in ("auto_plan", "auto_stats")}
    if not auto.get("tracks") and "frames" not in auto:
        return None
    return {"plan": auto, "params": (last.params or {}).get("detection", {}), "stats": regions.get("auto_stats", {})}


def _active_edits(session: Session, clip: Clip) -> list[RedactionEdit]:
    return list(
        session.scalars(
            sa.select(RedactionEdit)
            .where(RedactionEdit.clip_id == clip.id, RedactionEdit.withdrawn_at.is_(None))
            .order_by(RedactionEdit.id)
        )
    )


def _prepare_deidentify(session: Session, clip: Clip, ctx: StageContext) -> dict[str, Any]:
    privacy = {**PRIVACY_DEFAULTS, **(clip.campaign.privacy or {})}
    plan_config = plan_config_for(privacy, ctx.settings)
    reuse = _reusable_plan(session, clip, plan_config)
    # A "false" or "keep" correction names a track of the plan it was made on. Detecting again
    # (other settings, a new stage version) numbers the tracks anew, and the same id may then be
    # another face: such corrections are left out (apply withdraws them), never applied blindly.
    edits = [e for e in _active_edits(session, clip) if reuse is not None or e.kind is RedactionKind.add]
    return {
        **_media(ctx, clip),
        "privacy": privacy,
        "plan_config": plan_config,
        "edits": [render_edit(e) for e in edits],
        "reuse_plan": reuse,
        "timeout_s": deid_timeout_s((clip.probe or {}).get("duration_s", 0.0)),
        "review_fraction": ctx.settings.deid_review_fraction,
        "vad_model": str(ctx.settings.vad_model) if ctx.settings.vad_model else None,
        **_sandbox(ctx),
    }


def deid_verdict(uncertain_fraction: float, review_fraction: float, asked: str | None) -> tuple[DeidStatus, str | None]:
    """A finished render's status: ``review`` when the detectors were unsure on more than
    ``review_fraction`` of the frames, or when someone asked for a review (``asked``: the reason
    ``request_deidentify`` left on the pending clip); ``clean`` otherwise."""
    if uncertain_fraction > review_fraction:
        return DeidStatus.review, LOW_CONFIDENCE
    if asked:
        return DeidStatus.review, asked
    return DeidStatus.clean, None


#: deid_reason of a clip whose worker deleted their account: no copy of it is made or kept
ACCOUNT_DELETED = "account.deleted"


def _review_intent(session: Session, clip: Clip) -> str | None:
    """Why the clip's next render goes to review, if anyone asked (or the detectors were unsure):
    the reason a pending or reviewed clip carries, else the one its last render kept when it failed.
    A failed clip's deid_reason holds the failure's code, so its ``clip.deid_failed`` event carries
    the review reason ("review") until a render succeeds (no column for it: the audit trail is it)."""
    if clip.deid_reason and clip.deid_status in (DeidStatus.pending, DeidStatus.review):
        return clip.deid_reason
    last = session.scalar(
        sa.select(AuditEvent)
        .where(
            AuditEvent.entity_type == "clip",
            AuditEvent.entity_id == str(clip.id),
            AuditEvent.action.in_(("clip.deid_failed", "clip.deidentified")),
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    if last is not None and last.action == "clip.deid_failed":
        review = (last.payload or {}).get("review")
        return str(review) if review else None
    return None


def _apply_deidentify(session: Session, clip: Clip, result: dict[str, Any]) -> str | None:
    # The clip may have changed while it rendered: its worker deleted their account (privacy.
    # delete_account unlinks and deletes the copies it sees, not this one being made). Such a render
    # is never linked; its blob is an orphan the sweep removes.
    worker = session.get(User, clip.worker_id)
    if worker is None or worker.deleted_at is not None or clip.deid_status is not DeidStatus.pending:
        if worker is None or worker.deleted_at is not None:
            clip.derived_id, clip.deid_status, clip.deid_reason = None, DeidStatus.failed, ACCOUNT_DELETED
        audit.record(
            session,
            None,
            "clip.deid_discarded",
            clip,
            {"sha256": result.get("sha256"), "deid_status": clip.deid_status.value if clip.deid_status else None},
        )
        return None
    if result.get("failed"):
        review = _review_intent(session, clip)  # before deid_reason takes the failure's code
        clip.deid_status, clip.deid_reason = DeidStatus.failed, result["code"]
        clip.updated_at = utcnow()
        audit.record(
            session,
            None,
            "clip.deid_failed",
            clip,
            {"code": result["code"], "message": result["message"], "review": review},
        )
        return None
    from egocrowd.blobs import open_blob_store

    if not open_blob_store(**result["blobs"]).exists(
        result["sha256"]
    ):  # never a row pointing at missing bytes: retry instead
        raise RuntimeError(f"the derived blob {result['sha256']} is not in the store")
    applied = [int(i) for i in result.get("edits", [])]
    summary = result["summary"]
    params = {**result["params"], "plan_config": result["plan_config"], "edits": applied}
    regions = dict(result["plan"])
    # what a re-render re-uses instead of detecting again (the plan above has the reviewer's edits)
    if result["auto_plan"] != result["plan"]:
        regions["auto_plan"] = result["auto_plan"]
    regions["auto_stats"] = result.get("auto_stats", {})
    derivative = Derivative(
        clip_id=clip.id,
        kind="deid",
        sha256=result["sha256"],
        size=result["size"],
        source_sha256=clip.sha256,
        mime_type="video/mp4",
        format_version=1,
        stage_version=DEID_STAGE_VERSION,
        params=params,
        regions=regions,
        summary=summary,
        created_by=None,
    )
    session.add(derivative)
    session.flush()
    clip.derived_id = derivative.id
    stale = [e for e in _active_edits(session, clip) if e.id not in applied]
    for e in stale:  # made on tracks this render's detection no longer has (see _prepare_deidentify)
        e.withdrawn_at = utcnow()
        audit.record(
            session, None, "clip.redaction_edited", clip, {"action": "withdraw", "why": EDITS_STALE, **render_edit(e)}
        )
    clip.deid_status, clip.deid_reason = deid_verdict(
        summary["uncertain_fraction"],
        result["review_fraction"],
        EDITS_STALE if stale else _review_intent(session, clip),
    )
    clip.updated_at = utcnow()
    audit.record(
        session,
        None,
        "clip.deidentified",
        clip,
        {
            "derivative_id": derivative.id,
            "sha256": derivative.sha256,
            "status": clip.deid_status.value,
            "reason": clip.deid_reason,
            "tracks": summary.get("tracks", {}),
            "frames_redacted": summary.get("frames_redacted"),
            "uncertain_fraction": summary["uncertain_fraction"],
            "edits": summary.get("edits_applied", 0),
            "plan_reused": summary.get("plan_reused", False),
        },
    )
    # A clean copy goes on to acceptance (labels.review's ``review`` stage); one in review goes there
    # when a reviewer marks its redaction reviewed (clips.redaction.mark_reviewed).
    return "review" if clip.deid_status is DeidStatus.clean else None


def _give_up_deidentify(session: Session, clip: Clip, code: str) -> None:
    # The QC verdict stands (the worker was told); what failed is the de-identified copy. A review
    # someone asked for is kept in the event for the render after the fix (see _review_intent).
    review = _review_intent(session, clip)
    clip.deid_status, clip.deid_reason, clip.updated_at = DeidStatus.failed, code, utcnow()
    audit.record(session, None, "clip.deid_failed", clip, {"code": code, "review": review})


def _put_back_deidentify(session: Session, clip: Clip) -> None:
    # A retry or requeue (pipeline.jobs) renders again: the QC verdict stands (the stage never sets
    # the clip's status back, so "processing" would stick), the copy is pending, and a clip in review
    # keeps a reason so that the new render comes back to the review queue.
    in_review = clip.deid_status is DeidStatus.review
    clip.deid_reason = (clip.deid_reason or REVIEW_REQUESTED) if in_review else None
    clip.deid_status, clip.updated_at = DeidStatus.pending, utcnow()


@stage(
    "deidentify",
    DEID_STAGE_VERSION,
    prepare=_prepare_deidentify,
    apply=_apply_deidentify,
    give_up=_give_up_deidentify,
    put_back=_put_back_deidentify,
)
def compute_deidentify(inputs: dict[str, Any]) -> dict[str, Any]:
    """Render the de-identified copy and store it in the blob store (not yet referenced by anything:
    ``apply`` links it, under the job's lease; a dropped result leaves an orphan the sweep removes)."""
    from egocrowd.blobs import open_blob_store
    from egocrowd.media.bounded import call_bounded
    from egocrowd.media.deid.render import deidentify_clip

    store = open_blob_store(**inputs["blobs"])
    source = str(store.local_path(inputs["sha256"]))
    # In the store's scratch dir: clean_tmp empties it after a crash (and the orphan sweep drops old
    # renders); on file:// the move into place is a rename.
    tmp = store.scratch_dir / f"deid-{uuid.uuid4().hex}.mp4"
    privacy = inputs["privacy"]
    try:
        try:
            result = call_bounded(
                deidentify_clip,
                source,
                str(tmp),
                plan_config=inputs["plan_config"],
                face_mode=privacy["face_mode"],
                audio=privacy["audio"],
                recording_time=privacy["recording_time"],
                edits=inputs["edits"],
                reuse_plan=inputs.get("reuse_plan"),
                limits=inputs.get("limits"),
                vad_model=inputs.get("vad_model"),
                timeout_s=inputs["timeout_s"],
                max_memory_mb=inputs.get("memory_mb"),
            )
        except DeidError as exc:  # a model missing, a detector crash, a clip the encoder cannot write
            return {"failed": True, "code": exc.code, "message": exc.message}
        ref = store.put_file(tmp, move=True)
    finally:
        tmp.unlink(missing_ok=True)  # gone already when it was moved into the store
    store.touch(ref.sha256)  # an old orphan with the same bytes: restart its grace period before apply links it
    result["plan_config"] = inputs["plan_config"]
    result["edits"] = [e["id"] for e in inputs["edits"]]  # what this render applied
    return {
        **result,
        "sha256": ref.sha256,
        "size": ref.size,
        "blobs": inputs["blobs"],
        "review_fraction": inputs["review_fraction"],
    }
