"""JSON API: labels (#10): a campaign's spans exported (JSONL, CSV, Label Studio) and imported, label
audits and their flags, an annotator's own label quality (docs/labels-quality.md, docs/api.md)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from egocrowd.db.models import SpanKind
from egocrowd.errors import InvalidInput
from egocrowd.inputs import InputModel
from egocrowd.labels import audits, interop, quality
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id, QueryId

router = APIRouter(prefix="/api/v1", tags=["labels"])

KindQuery = Query(
    None,
    description="Only these kinds of spans (answer, consensus, gold, review), comma-separated; all by default",
    max_length=60,
    pattern=r"^[a-z, ]*$",  # words and commas: anything else (a NUL...) is refused as input, not looked up
)


def _kinds(kinds: str | None) -> list[SpanKind] | None:
    if not kinds:
        return None
    try:
        return [SpanKind(k.strip()) for k in kinds.split(",") if k.strip()]
    except ValueError:
        raise InvalidInput(
            "kinds names answer, consensus, gold or review, comma-separated.", code="labels.bad_kind"
        ) from None


def _download(text: str, media_type: str, name: str) -> Response:
    return Response(
        text,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "private, no-store"},
    )


@router.get("/campaigns/{campaign_id}/labels.jsonl", response_class=PlainTextResponse)
def export_jsonl(request: Request, campaign_id: Id, kinds: str | None = KindQuery):
    """One span a line: clip_sha256, clip_id, start_s, end_s, verb, noun, annotator (a user id or
    "consensus"), kind, confidence."""
    with unit(request) as ctx:
        rows = interop.export_rows(ctx.session, ctx.require_user(), campaign_id, _kinds(kinds))
    return _download(interop.to_jsonl(rows), "application/x-ndjson", f"campaign-{campaign_id}-spans.jsonl")


@router.get("/campaigns/{campaign_id}/labels.csv", response_class=PlainTextResponse)
def export_csv(request: Request, campaign_id: Id, kinds: str | None = KindQuery):
    """The same lines as labels.jsonl, as CSV with a header."""
    with unit(request) as ctx:
        rows = interop.export_rows(ctx.session, ctx.require_user(), campaign_id, _kinds(kinds))
    return _download(interop.to_csv(rows), "text/csv; charset=utf-8", f"campaign-{campaign_id}-spans.csv")


@router.get("/campaigns/{campaign_id}/labels/label-studio")
def export_label_studio(request: Request, campaign_id: Id) -> JSONResponse:
    """Label Studio tasks (video timeline, TimelineLabels): people's spans as annotations, the
    consensus as a prediction with its score; ranges in 1-based frames of ``data.fps``."""
    base = str(request.base_url).rstrip("/")
    with unit(request) as ctx:
        tasks = interop.label_studio_tasks(ctx.session, ctx.require_user(), campaign_id, video_base=base)
    return JSONResponse(
        tasks,
        headers={
            "Content-Disposition": f'attachment; filename="campaign-{campaign_id}-label-studio.json"',
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/campaigns/{campaign_id}/labels/label-studio/config", response_class=PlainTextResponse)
def label_studio_config(request: Request, campaign_id: Id):
    """The labeling config (XML) for the campaign's taxonomy, to paste into a Label Studio project."""
    with unit(request) as ctx:
        c = interop.labels_campaign(ctx.session, ctx.require_user(), campaign_id)
        xml = interop.label_studio_config(c.taxonomy)
    return _download(xml, "application/xml", f"campaign-{campaign_id}-label-studio.xml")


@router.post("/campaigns/{campaign_id}/labels/import")
async def import_labels(
    request: Request,
    campaign_id: Id,
    format: Literal["jsonl", "csv", "label-studio"] = Query(..., description="The body's format"),
    kind: Literal["review", "gold"] = Query("review", description="Store the spans as a reviewer's fix or as gold"),
) -> dict[str, Any]:
    """The body (the file itself, any content type) becomes ``kind`` spans: every line is checked
    first; one bad line imports nothing (422 ``labels.import_*`` naming the lines)."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("The file is not UTF-8 text.", code="labels.import_malformed") from None

    def work() -> dict[str, Any]:
        # the database work runs in the thread pool, never on the event loop
        with unit(request) as ctx:
            r = interop.import_labels(ctx.session, ctx.require_user(), campaign_id, text, format, kind=kind)
            return {"spans": r.spans, "clips": r.clips, "superseded": r.superseded, "kind": r.kind}

    return await run_in_threadpool(work)


class AuditIn(InputModel):
    min_rate: float = Field(audits.MIN_RATE, ge=0.05, le=1.0, description="Least share of an expected label's spans")
    min_count: int = Field(audits.MIN_COUNT, ge=1, le=10_000, description="Least number of cases")


@router.post("/campaigns/{campaign_id}/labels/audit")
def run_audit(request: Request, campaign_id: Id, body: AuditIn | None = None) -> dict[str, Any]:
    """Audit the campaign's labels now: its flags raised or updated, and the spans sent back."""
    body = body or AuditIn()
    with unit(request) as ctx:
        flags = audits.audit_campaign(
            ctx.session, campaign_id, ctx.require_user(), min_rate=body.min_rate, min_count=body.min_count
        )
        ctx.session.flush()
        return {"flags": [quality.flag_dict(f) for f in flags]}


@router.get("/campaigns/{campaign_id}/labels/flags")
def list_flags(request: Request, campaign_id: Id, open_only: bool = False) -> list[dict[str, Any]]:
    with unit(request) as ctx:
        return [
            quality.flag_dict(f)
            for f in audits.list_flags(ctx.session, ctx.require_user(), campaign_id, open_only=open_only)
        ]


class ResolveIn(InputModel):
    note: str = Field("", max_length=500, description="What was done about it")


@router.post("/labels/flags/{flag_id}/resolve")
def resolve_flag(request: Request, flag_id: Id, body: ResolveIn | None = None) -> dict[str, Any]:
    with unit(request) as ctx:
        return quality.flag_dict(
            audits.resolve_flag(ctx.session, ctx.require_user(), flag_id, (body or ResolveIn()).note)
        )


@router.get("/campaigns/{campaign_id}/labels/report")
def campaign_report(request: Request, campaign_id: Id) -> dict[str, Any]:
    """Agreement (mean Krippendorff's alpha and temporal IoU over the clips), the clips agreeing
    least, label states, the latest audit's summary and the flags."""
    with unit(request) as ctx:
        r = audits.campaign_report(ctx.session, ctx.require_user(), campaign_id)
        return {
            "campaign_id": campaign_id,
            "alpha": r["alpha"],
            "mean_iou": r["mean_iou"],
            "clips_measured": r["clips_measured"],
            "min_agreement": r["min_agreement"],
            "label_status": r["label_status"],
            "lowest_agreement": [
                {"clip_id": c.id, "alpha": c.agreement.get("alpha"), "mean_iou": c.agreement.get("mean_iou")}
                for c in r["worst"]
            ],
            "audit": r["audit"],
            "audited_at": r["audited_at"],
            "flags": [quality.flag_dict(f) for f in r["flags"]],
        }


@router.get("/campaigns/{campaign_id}/labels/annotators/{annotator_id}")
def annotator_in_campaign(request: Request, campaign_id: Id, annotator_id: Id) -> dict[str, Any]:
    """One annotator's reliability and confusion matrices (per basis) in the campaign."""
    with unit(request) as ctx:
        return quality.annotator_in_campaign(ctx.session, ctx.require_user(), campaign_id, annotator_id)


@router.get("/labels/me")
def my_quality(request: Request, campaign_id: QueryId = None) -> dict[str, Any]:
    """The caller's label quality: reliability score, gold accuracy, agreement with the consensus,
    mistakes in plain words, the audits' flags about them."""
    with unit(request) as ctx:
        return quality.annotator_report(ctx.session, ctx.require_user().id, campaign_id).as_dict()
