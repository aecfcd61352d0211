"""Pages: labels (#10). ``/campaigns/{id}/labels``: a campaign's label quality for its lab and
reviewers (agreement, the clips agreeing least, the confusion matrix as a server-drawn SVG heat map,
the audits' flags, exports); ``/labels/me``: an annotator's own label quality, mistakes explained."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from egocrowd.i18n import N_
from egocrowd.labels import audits, quality
from egocrowd.web.pages.render import TextForm, flash_messages, form_action, page_unit, render, see_other
from egocrowd.web.routers.api import Id, QueryId

router = APIRouter(include_in_schema=False)

flash_messages(
    {
        "audited": N_("Label audit done."),
        "flag_resolved": N_("Flag marked resolved."),
    }
)

#: The heat map's geometry (pixels): a cell, and the room left for the labels along the axes.
CELL, MARGIN = 28, 130


def heat_map(matrix: dict[str, Any] | None) -> dict[str, Any] | None:
    """A confusion matrix laid out for the SVG: each cell's place, count, share of its row (the
    expected label) and fill. Rows: expected; columns: given; "none": missed or extra."""
    if not matrix or not matrix.get("labels"):
        return None
    labels, counts = matrix["labels"], matrix["counts"]
    cells = []
    for r, row in enumerate(counts):
        total = sum(row)
        for c, n in enumerate(row):
            share = n / total if total else 0.0
            if r == c:  # agreement in green, confusion in red: one glance tells which is which
                fill = _blend((255, 255, 255), (26, 127, 55), share)
            else:
                fill = _blend((255, 255, 255), (198, 40, 40), min(1.0, share * 2))
            cells.append(
                {
                    "x": MARGIN + c * CELL,
                    "y": MARGIN + r * CELL,
                    "n": n,
                    "share": share,
                    "fill": fill,
                    "dark": share > 0.5,
                    "expected": labels[r],
                    "given": labels[c],
                }
            )
    side = MARGIN + len(labels) * CELL + 4
    return {"labels": labels, "cells": cells, "cell": CELL, "margin": MARGIN, "width": side, "height": side}


def _blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def _campaign_page(request: Request, campaign_id: int, **extra):
    with page_unit(request) as ctx:
        user = ctx.require_user()
        report = audits.campaign_report(ctx.session, user, campaign_id)
        audit = report["audit"] or {}
        maps = {basis: heat_map((audit.get("matrices") or {}).get(basis)) for basis in audits.BASES}
        return render(request, "labels_campaign.html", user, r=report, c=report["campaign"], maps=maps, **extra)


@router.get("/campaigns/{campaign_id}/labels", response_class=HTMLResponse)
def campaign_labels(request: Request, campaign_id: Id):
    return _campaign_page(request, campaign_id)


@router.post("/campaigns/{campaign_id}/labels/audit")
def run_audit(request: Request, campaign_id: Id, form: TextForm):
    def work(ctx):
        audits.audit_campaign(ctx.session, campaign_id, ctx.require_user())
        return see_other(f"/campaigns/{campaign_id}/labels?m=audited")

    def redraw(*, error, status, form):
        return _campaign_page(request, campaign_id, error=error, status=status)

    return form_action(request, form, work, redraw)


@router.post("/campaigns/{campaign_id}/labels/flags/{flag_id}/resolve")
def resolve_flag(request: Request, campaign_id: Id, flag_id: Id, form: TextForm):
    def work(ctx):
        audits.resolve_flag(ctx.session, ctx.require_user(), flag_id, form.get("note", ""))
        return see_other(f"/campaigns/{campaign_id}/labels?m=flag_resolved#flags")

    def redraw(*, error, status, form):
        return _campaign_page(request, campaign_id, error=error, status=status)

    return form_action(request, form, work, redraw)


@router.get("/campaigns/{campaign_id}/labels/annotators/{annotator_id}", response_class=HTMLResponse)
def annotator_labels(request: Request, campaign_id: Id, annotator_id: Id):
    with page_unit(request) as ctx:
        user = ctx.require_user()
        view = quality.annotator_in_campaign(ctx.session, user, campaign_id, annotator_id)
        maps = {basis: heat_map(m) for basis, m in view["matrices"].items()}
        return render(request, "labels_annotator.html", user, v=view, maps=maps)


@router.get("/labels/me", response_class=HTMLResponse)
def my_labels(request: Request, campaign_id: QueryId = None):
    with page_unit(request) as ctx:
        user = ctx.require_user()
        report = quality.annotator_report(ctx.session, user.id, campaign_id)
        return render(request, "labels_me.html", user, q=report, map=heat_map(report.matrix))
