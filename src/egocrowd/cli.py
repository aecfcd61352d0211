"""The `egocrowd` command. Thin: every subcommand calls into a capability package.

Each subcommand imports the capability it calls inside its function, so that `egocrowd --help`,
`egocrowd bench …` and `egocrowd worker` load only what they use (costs measured with
``python -X importtime`` on top of this module, on the 2-core dev machine).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from egocrowd import __version__
from egocrowd.bench.cli import bench
from egocrowd.blobs import from_settings as blobs_from_settings
from egocrowd.cli_types import CommandGroup, RegistryChoice


def _settings():
    from egocrowd.settings import Settings  # pydantic-settings, ~200 ms: not for --help or bench

    return Settings()


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="egocrowd")
def main() -> None:
    """egocrowd: crowdsourced egocentric demonstrations for robot learning, and egocrowd.bench.

    Configuration comes from EGOCROWD_* environment variables (e.g. EGOCROWD_DATABASE_URL,
    EGOCROWD_DATA_DIR) or a config.toml in the data directory. With none set, everything lives in
    ./.egocrowd/ (SQLite + local files).
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (PostgreSQL only; the embedded SQLite default uses one).",
)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the web app and the API (docs at /api/docs)."""
    import uvicorn  # ~60 ms, and the web stack below ~1.2 s: only `serve` needs them

    settings = _settings()
    if settings.is_embedded:
        workers = 1  # one SQLite file, one process (the app migrates it on start)
    click.echo(f"egocrowd {__version__} on http://{host}:{port}/  (database: {_redact(settings.db_url)})")
    from egocrowd.telemetry import logging_config, reset_multiprocess_dir
    from egocrowd.web.limits import uvicorn_options  # FastAPI, ~1.2 s

    reset_multiprocess_dir()  # before any server process writes its samples there

    uvicorn.run(
        "egocrowd.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logging_config(settings.log_format, "INFO"),  # each worker process applies it
        access_log=False,  # egocrowd.access logs each request once, with its id (web.observability)
        proxy_headers=True,
        # uvicorn's supervisor kills a process that does not answer its ping within 5 s; a busy one
        # under a launch's load (#17) missed it, was killed with its requests in flight and restarted
        # cold, over and over. A minute still catches a process that truly hangs.
        timeout_worker_healthcheck=60,
        **uvicorn_options(settings),
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-serve", is_flag=True, help="Only seed the data and print the logins.")
def demo(host: str, port: int, no_serve: bool) -> None:
    """Seed a demo lab with campaigns (fold a shirt, open a jar, pour water) and one user per
    role, print their logins, then serve."""
    from egocrowd.db import Database
    from egocrowd.demo import seed  # accounts (Argon2), campaigns, db: ~0.8 s

    settings = _settings()
    db = Database(settings.db_url)
    db.upgrade()
    from egocrowd.blobs import from_settings as blobs_from_settings

    with db.transaction() as s:
        logins = seed(s, blobs_from_settings(settings))  # the demo's clips to annotate need media
    db.dispose()
    click.secho("Demo logins:", bold=True)
    for email, password, role in logins:
        click.echo(f"  {role:<10} {email:<26} {password}")
    if not no_serve:
        click.get_current_context().invoke(serve, host=host, port=port, workers=1)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to.")
def db_upgrade(revision: str) -> None:
    """Apply the database migrations (safe to run again)."""
    from egocrowd.db import upgrade  # SQLAlchemy, ~0.4 s

    settings = _settings()
    url, app_role = settings.db_url, None
    if settings.migration_database_url:  # migrate as the owner; the app's role gets only what it needs
        import sqlalchemy as sa  # ~0.2 s

        url, app_role = settings.migration_database_url, sa.engine.make_url(settings.db_url).username
    upgrade(url, revision, app_role=app_role)
    click.echo(f"database at {_redact(url)} is at {revision}")


@main.group()
def user() -> None:
    """Manage accounts."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["worker", "reviewer", "requester", "admin"]))
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="At least 10 characters (prompted when omitted).",
)
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--organization", default=None, help="Organization (required for requesters; created if new).")
@click.option("--country", default=None, help="ISO 3166 alpha-2 country code (workers).")
@click.option("--token", "with_token", is_flag=True, help="Also issue an API token and print it once.")
def user_create(email, role, password, display_name, organization, country, with_token) -> None:
    """Create a user of any role."""
    from egocrowd.accounts import service as accounts  # Argon2 + SQLAlchemy, ~0.65 s

    def work(s) -> None:
        org = accounts.get_or_create_organization(s, organization) if organization else None
        u = accounts.create_user(
            s,
            email=email,
            password=password,
            display_name=display_name,
            role=role,
            organization=org,
            country=country,
            email_verified=True,  # the operator vouches for the address
        )
        token = accounts.issue_token(s, u, "cli")[1] if with_token else None
        click.echo(f"created {u.role.value} {u.email} (id {u.id})")
        if token:
            click.echo(f"API token (shown once): {token}")

    _in_transaction(work)


@main.group()
def mail() -> None:
    """Email set-up (EGOCROWD_MAIL_URL: outbox or smtp[s]://user:pass@host:port)."""


@mail.command("test")
@click.argument("address")
def mail_test(address: str) -> None:
    """Send a test email to ADDRESS with the configured mailer."""
    from egocrowd.mail import Letter, MailError, OutboxMailer, make_mailer

    settings = _settings()
    mailer = make_mailer(settings)
    try:
        mailer.send(
            Letter(address, "egocrowd test email", "This is a test email from egocrowd: mail is set up correctly.\n")
        )
    except MailError as exc:
        raise click.ClickException(exc.message) from None
    where = f"written to {settings.outbox_path}" if isinstance(mailer, OutboxMailer) else "sent"
    click.echo(f"test email to {address} {where}")


@main.command()
@click.option("--once", is_flag=True, help="Run what is ready now, then exit (instead of running forever).")
@click.option(
    "--executor",
    type=RegistryChoice("egocrowd.pipeline.executors:EXECUTORS"),
    default=None,
    help="Where stages run (default: setting pipeline_executor, 'process').",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Processes (default: setting pipeline_workers, one per core).",
)
@click.option(
    "--cluster-url",
    default=None,
    help="With --executor dask: tcp://host:8786 (a Dask scheduler) or dask+local://N "
    "(default: setting pipeline_cluster_url; none: a local cluster of --workers processes).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every job.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve this worker's Prometheus metrics on this port.",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address the metrics port listens on.")
def worker(
    once: bool,
    executor: str | None,
    workers: int | None,
    cluster_url: str | None,
    verbose: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run pending pipeline stages (probe, QC, ...) of uploaded clips.

    Stages are taken under a lease: a worker killed mid-stage loses nothing, the stage runs again
    once the lease expires. Failures retry with backoff and end in a visible error state.
    """
    from egocrowd.telemetry import configure_logging
    from egocrowd.worker import run_worker  # the pipeline and SQLAlchemy, ~1 s

    settings = _settings()
    if cluster_url and (executor or settings.pipeline_executor) != "dask":
        raise click.UsageError("--cluster-url needs --executor dask (or the setting pipeline_executor=dask)")
    configure_logging(settings.log_format, logging.INFO if verbose else logging.WARNING)
    if metrics_port:
        from prometheus_client import start_http_server  # this process's registry

        start_http_server(metrics_port, addr=metrics_host)
    n = run_worker(settings, once=once, executor_name=executor, workers=workers, cluster_url=cluster_url)
    if once:
        click.echo(f"ran {n} stage(s)")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, dir_okay=True))
@click.option("--campaign", "campaign_id", required=True, type=int, help="Campaign the clips belong to.")
@click.option("--worker", "worker_id", required=True, type=int, help="User id of the person who recorded them.")
def ingest(directory: str, campaign_id: int, worker_id: int) -> None:
    """Bulk-ingest a directory of existing recordings (.mp4, .mov, .webm, ...) into a campaign.

    Rerunning skips files already ingested (matched by their sha256). Each new clip goes through
    the same pipeline (probe, QC) as an upload; run `egocrowd worker` to process them.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # ~40 ms

    from egocrowd.clips import ingest_dir, video_files  # the pipeline and SQLAlchemy, ~0.55 s
    from egocrowd.db import open_database

    settings = _settings()
    db = open_database(settings)
    files = video_files(directory)
    try:
        with Progress(
            TextColumn("ingesting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[name]}"),
        ) as bar:
            task = bar.add_task("ingest", total=len(files), name="")
            counts = ingest_dir(
                db,
                blobs_from_settings(settings),
                Path(directory),
                campaign_id=campaign_id,
                worker_id=worker_id,
                progress=lambda p: bar.update(task, advance=1, name=p.name),
            )
    finally:
        db.dispose()
    click.echo(
        f"{counts.get('ingested', 0)} ingested, {counts.get('skipped', 0)} already there "
        f"(of {counts.get('found', 0)} video files)"
    )


# --- the pipeline queue, for operators -------------------------------------------------------------
def _job_filter_options(f):
    for option in reversed(
        [
            click.option("--stage", default=None, help="Only this stage (probe, qc, ...)."),
            click.option(
                "--campaign",
                "campaign_id",
                type=click.IntRange(1, 2**31 - 1),
                default=None,
                help="Only the clips of this campaign.",
            ),
            click.option("--stage-version", default=None, help="Only jobs finished by this version of the stage."),
            click.option(
                "--stale",
                "stale_only",
                is_flag=True,
                help="Only jobs finished by another version than the stage's current one.",
            ),
        ]
    ):
        f = option(f)
    return f


def _in_transaction(work):
    """Run ``work(session)`` in one transaction of the configured database, then close its
    connections (a pool left open warns, and on PostgreSQL holds a connection until collected)."""
    from egocrowd.db import open_database  # SQLAlchemy, ~0.4 s

    database = open_database(_settings())
    try:
        with database.transaction() as s:
            return work(s)
    finally:
        database.dispose()


@main.group()
def jobs() -> None:
    """Inspect the pipeline queue; retry failed jobs; re-run a stage."""


@jobs.command("list")
@_job_filter_options
@click.option("--status", type=click.Choice(["pending", "running", "done", "error"]), default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def jobs_list(stage, campaign_id, stage_version, stale_only, status, limit) -> None:
    """The newest jobs (with --status error: what failed and why), then the queue depths."""
    from rich.console import Console  # rich, ~30 ms
    from rich.table import Table

    from egocrowd.db.models import JobStatus
    from egocrowd.pipeline import jobs as queue  # SQLAlchemy, ~0.4 s

    where = queue.JobFilter(
        stage=stage,
        status=JobStatus(status) if status else None,
        campaign_id=campaign_id,
        stage_version=stage_version,
        stale_only=stale_only,
    )

    def work(s):
        table = Table("job", "clip", "stage", "version", "status", "attempts", "run after", "last error")
        for j in queue.list_jobs(s, where, limit=limit):
            error = (j.last_error or "").strip().splitlines()[-1:] or [""]
            table.add_row(
                str(j.id),
                str(j.clip_id),
                j.stage,
                j.stage_version or "",
                j.status.value,
                str(j.attempts),
                j.run_after.strftime("%Y-%m-%d %H:%M:%S"),
                error[0][:80],
            )
        depths = Table("stage", "status", "jobs", title="queue depths")
        for (stage_name, state), n in sorted(queue.queue_depths(s).items()):
            depths.add_row(stage_name, state, str(n))
        console = Console()
        console.print(table)
        console.print(depths)

    _in_transaction(work)


@jobs.command("retry")
@_job_filter_options
def jobs_retry(stage, campaign_id, stage_version, stale_only) -> None:
    """Give failed jobs (status error) a fresh set of attempts, once their cause is fixed."""
    from egocrowd.pipeline import jobs as queue  # SQLAlchemy, ~0.4 s

    where = queue.JobFilter(stage=stage, campaign_id=campaign_id, stage_version=stage_version, stale_only=stale_only)
    ids = _in_transaction(lambda s: queue.retry(s, where))
    click.echo(f"{len(ids)} failed job(s) queued again")


@jobs.command("requeue")
@_job_filter_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def jobs_requeue(stage, campaign_id, stage_version, stale_only, yes) -> None:
    """Run a stage again for clips it already finished (e.g. --stage qc --stale after a new QC
    version). Their clips show 'processing' until it has run."""
    from egocrowd.pipeline import jobs as queue  # SQLAlchemy, ~0.4 s

    where = queue.JobFilter(stage=stage, campaign_id=campaign_id, stage_version=stage_version, stale_only=stale_only)
    if not yes:
        n = _in_transaction(lambda s: len(queue.list_jobs(s, where, limit=10**9)))
        click.confirm(f"Run stage {stage or '?'} again for up to {n} job(s)?", abort=True)
    ids = _in_transaction(lambda s: queue.requeue(s, where))
    click.echo(f"{len(ids)} job(s) queued again")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url  # ~0.2 s

    return make_url(url).render_as_string(hide_password=True)


@main.group("deid")
def deid_group() -> None:
    """De-identification: blur faces and text, drop or mute sound (docs/deid.md)."""


@deid_group.command("eval")
@click.option("--category", type=click.Choice(["face", "text"]), help="Only faces or only text (default: both).")
@click.option(
    "--write",
    "write_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the clips (mp4) and truth.json here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--seed", type=int, default=9, show_default=True)
def deid_eval(category: str | None, write_dir: Path | None, as_json: bool, seed: int) -> None:
    """Recall and precision of face and text redaction on the labelled evaluation set, per condition
    (production detectors, tracker and settings; see docs/deid.md)."""
    import json

    from egocrowd.media.deid.evalset import EVAL_FPS, MIN_FACE, build_evalset
    from egocrowd.media.deid.evaluate import COVER, Score, check_models, default_config, evaluate

    categories = (category,) if category else ("face", "text")
    settings = _settings()
    config = default_config(
        categories,
        fps=EVAL_FPS,
        text_every=settings.deid_text_every,
        models={"centerface": settings.face_model, "ppocr-det": settings.text_model},
    )
    check_models(config)  # a missing model ends here, in one line, before the set is built
    evalset = build_evalset(categories, seed=seed, fps=EVAL_FPS)
    if write_dir is not None:
        written = evalset.write(write_dir)
        click.echo(f"wrote {len(written)} files to {write_dir}", err=True)
    report = evaluate(evalset, config, progress=lambda clip: click.echo(f"… {clip.name}", err=True))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"De-identification recall per frame (covered = ≥{COVER:.0%} of a region's area)")
    for col in ("category", "condition", "regions", "recall", "IoU≥0.5", "precision", "frames missed"):
        table.add_column(col, justify="left" if col in ("category", "condition") else "right")

    def row(s: Score, style: str | None = None) -> None:
        table.add_row(
            s.category,
            s.condition,
            str(s.regions),
            f"{s.recall:.3f}",
            f"{s.iou_recall:.3f}",
            f"{s.precision:.3f}",
            f"{s.missed_frames}/{s.frames}",
            style=style,
        )

    for cat in categories:
        for s in report.rows:
            if s.category == cat:
                row(s)
        row(report.total(cat), "bold")
    for s in report.tiny:
        table.add_row(
            "face",
            f"{s.condition} (<{MIN_FACE} px)",
            str(s.regions),
            f"{s.recall:.3f}",
            f"{s.iou_recall:.3f}",
            "",
            "",
            style="dim",
        )
    console = Console()
    console.print(table)
    for name, d in report.detectors.items():
        console.print(f"{name}: {json.dumps(d, sort_keys=True)}")


@deid_group.command("run")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--faces", "face_mode", type=click.Choice(["blur", "fill"]), default="blur", show_default=True)
@click.option("--text/--no-text", "blur_text", default=True, show_default=True, help="Blur readable text too")
@click.option(
    "--audio",
    type=click.Choice(["drop", "keep", "mute_speech"]),
    default="drop",
    show_default=True,
    help="Sound policy",
)
@click.option("--recording-time", type=click.Choice(["date", "full"]), default="date", show_default=True)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write what was done (plan, params, summary) to this JSON file",
)
def deid_run(
    source: Path, output: Path, face_mode: str, blur_text: bool, audio: str, recording_time: str, json_out: Path | None
) -> None:
    """De-identify a video file as the pipeline does with a campaign's clips (same detectors, same
    settings), writing an H.264 MP4 to OUTPUT."""
    import json
    import os

    from egocrowd.media.bounded import call_bounded
    from egocrowd.media.deid.render import deidentify_clip
    from egocrowd.pipeline.stages import deid_timeout_s, plan_config_for

    settings = _settings()
    privacy = {"face_mode": face_mode, "blur_text": blur_text, "audio": audio, "recording_time": recording_time}
    tmp = output.with_name(f".{output.name}.part.mp4")  # renamed into place only when complete
    try:
        result = call_bounded(
            deidentify_clip,
            str(source),
            str(tmp),
            plan_config=plan_config_for(privacy, settings),
            face_mode=face_mode,
            audio=audio,
            recording_time=recording_time,
            vad_model=str(settings.vad_model) if settings.vad_model else None,
            timeout_s=deid_timeout_s(4 * 3600),
            max_memory_mb=settings.media_memory_mb,
        )
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    summary = result["summary"]
    if json_out:
        json_out.write_text(json.dumps(result, indent=1))
    tracks = ", ".join(f"{n} {c}" for c, n in sorted(summary["tracks"].items())) or "nothing"
    click.echo(
        f"{output}: {summary['frames']} frames, redacted {tracks} on {summary['frames_redacted']} frames; "
        f"detection {summary['fps_pass1']} fps, render {summary['fps_pass2']} fps; "
        f"{summary['uncertain_fraction']:.1%} frames uncertain"
    )


# egocrowd.bench has its own group; it lives in this package, so a failing import is a bug to see.
@main.group("consent")
def consent_group() -> None:
    """Consent documents (also written and published in the app, at /consent-documents)."""


def _scope_option(value: str) -> dict:
    """``id:label`` or ``id:label:required``."""
    sid, _, rest = value.partition(":")
    label, required = (rest[: -len(":required")], True) if rest.endswith(":required") else (rest, False)
    if not sid or not label:
        raise click.BadParameter(f"{value!r}: write id:label or id:label:required")
    return {"id": sid, "label": label, "required": required}


@consent_group.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--family", required=True, help="The document's name, e.g. egocrowd-worker (new: revision 1).")
@click.option("--title", required=True)
@click.option("--scope", "scopes", multiple=True, required=True, help="id:label[:required]; repeat for each choice.")
@click.option("--language", default="en", show_default=True, help="BCP 47 tag of the text.")
@click.option("--revision", type=click.IntRange(1), default=None, help="Add this language to an existing revision.")
def consent_publish(file: Path, family: str, title: str, scopes: tuple[str, ...], language: str, revision) -> None:
    """Publish FILE.md (Markdown) as the next revision of a consent document, for scripted installs.

    A new revision becomes the one campaigns of the family require; workers holding slots are asked
    to sign it again before their next upload.
    """
    from egocrowd import consent  # SQLAlchemy and the consent room, ~0.5 s

    choices = [_scope_option(s) for s in scopes]

    def work(s) -> None:
        doc = consent.create_draft(
            s,
            None,  # the operator at the command line
            family=family,
            title=title,
            body=file.read_text(encoding="utf-8"),
            scopes=choices,
            language=language,
            revision=revision,
        )
        consent.publish(s, None, doc.version)
        click.echo(f"published {doc.version} (sha256 {doc.sha256})")

    _in_transaction(work)


@main.group("labels")
def labels_group() -> None:
    """A campaign's action labels: export, import, audit (also in the app, at /campaigns/ID/labels)."""


@labels_group.command("export")
@click.option("--campaign", "campaign_id", required=True, type=click.IntRange(1), help="The campaign's id.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "label-studio", "label-studio-config"]),
    default="jsonl",
    show_default=True,
    help="Plain spans (JSONL, CSV), Label Studio tasks, or the Label Studio labeling config (XML).",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["answer", "consensus", "gold", "review"]),
    help="Only these kinds of spans (repeat; jsonl and csv only). Default: all.",
)
@click.option("--video-base", default="", help="Label Studio: the site's address, put before each video's path.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to FILE instead of standard output.",
)
def labels_export(campaign_id: int, fmt: str, kinds: tuple[str, ...], video_base: str, output: Path | None) -> None:
    """Export a campaign's current spans (superseded ones left out), one span a line: clip_sha256,
    clip_id, start_s, end_s, verb, noun, annotator (user id or "consensus"), kind, confidence."""
    import json

    from egocrowd.db.models import SpanKind
    from egocrowd.labels import interop  # SQLAlchemy and the labels room, ~0.5 s

    def work(s) -> str:
        if fmt == "label-studio-config":
            c = interop.labels_campaign(s, None, campaign_id, operator=True)
            return interop.label_studio_config(c.taxonomy)
        if fmt == "label-studio":
            tasks = interop.label_studio_tasks(s, None, campaign_id, video_base.rstrip("/"), operator=True)
            return json.dumps(tasks, indent=1, default=str) + "\n"
        rows = interop.export_rows(s, None, campaign_id, [SpanKind(k) for k in kinds] or None, operator=True)
        return interop.to_jsonl(rows) if fmt == "jsonl" else interop.to_csv(rows)

    text = _in_transaction(work)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@labels_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--campaign", "campaign_id", required=True, type=click.IntRange(1), help="The campaign's id.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "label-studio"]), required=True)
@click.option(
    "--as",
    "kind",
    type=click.Choice(["review", "gold"]),
    default="review",
    show_default=True,
    help="review: a fix of the consensus made elsewhere; gold: reference spans (the clips become gold clips).",
)
def labels_import(file: Path, campaign_id: int, fmt: str, kind: str) -> None:
    """Import spans from FILE into a campaign: all of them or, if any line is wrong (unknown clip
    hash, unknown label, a span outside its clip, bad JSON, a frame rate that is not the clip's),
    none, with every bad line listed. A clip's earlier spans of that kind are superseded."""
    from egocrowd.errors import InvalidInput
    from egocrowd.labels import interop  # SQLAlchemy and the labels room, ~0.5 s

    text = file.read_text(encoding="utf-8-sig")

    def work(s):
        return interop.import_labels(s, None, campaign_id, text, fmt, kind=kind, operator=True)  # type: ignore[arg-type]

    try:
        result = _in_transaction(work)
    except InvalidInput as exc:
        for problem in exc.extra.get("errors", []):
            click.echo(f"line {problem['line']}: {problem['message']} [{problem['code']}]", err=True)
        raise
    click.echo(f"imported {result.spans} {kind} spans on {len(result.clips)} clips ({result.superseded} superseded)")


@labels_group.command("audit")
@click.option("--campaign", "campaign_id", required=True, type=click.IntRange(1), help="The campaign's id.")
@click.option(
    "--min-rate",
    type=click.FloatRange(0.05, 1.0),
    default=0.2,
    show_default=True,
    help="Least share of an expected label's spans given the other label.",
)
@click.option("--min-count", type=click.IntRange(1), default=3, show_default=True, help="Least number of such cases.")
def labels_audit(campaign_id: int, min_rate: float, min_count: int) -> None:
    """Compare every answer with gold and with the consensus; raise flags for systematic
    confusions, tell the annotators and the lab, and send the spans concerned back for
    re-annotation. Running it again raises nothing twice."""
    from egocrowd.labels import audits  # SQLAlchemy, the labels room, ~0.5 s

    def work(s) -> list[str]:
        flags = audits.audit_campaign(s, campaign_id, None, min_rate=min_rate, min_count=min_count)
        return [
            f'flag {f.id}: {f.basis}: "{f.expected}" labelled "{f.given}" {f.count}/{f.total} ({f.rate:.0%}) '
            f"by {'annotator ' + str(f.annotator_id) if f.annotator_id is not None else 'the campaign'}; "
            f"{f.spans_reopened} spans sent back"
            for f in flags
        ]

    lines = _in_transaction(work)
    for line in lines:
        click.echo(line)
    click.echo(
        f"{len(lines)} systematic confusion{'s' if len(lines) != 1 else ''} in campaign {campaign_id} (new flags first)"
    )


# --- the audit log's chain, checkpoints and export (docs/provenance.md) -----------------------------
@main.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log: signing key, checkpoints, verification, auditors' export."""


@audit_group.command("keygen")
def audit_keygen() -> None:
    """Make the Ed25519 key that signs audit checkpoints (EGOCROWD_AUDIT_SIGNING_KEY). Once: an
    existing key is never replaced, the checkpoints it signed depend on it."""
    from egocrowd.audit import checkpoints  # cryptography, ~40 ms

    settings = _settings()
    key = checkpoints.generate_key(checkpoints.key_path(settings))
    click.echo(f"wrote {checkpoints.key_path(settings)} (mode 0600); keep a copy somewhere safe")
    click.echo(f"public key {key.public_raw.hex()}")
    click.echo(f"key id     {key.key_id}")


@audit_group.command("checkpoint")
@click.option("--reason", default="manual", show_default=True, help="Why (stored and signed with it).")
def audit_checkpoint(reason: str) -> None:
    """Sign a checkpoint of the log's head now."""
    from egocrowd.audit import checkpoints  # SQLAlchemy and cryptography, ~0.5 s

    settings = _settings()
    key = checkpoints.signing_key(settings)

    def work(s) -> None:
        cp = checkpoints.write_checkpoint(s, key, reason)
        click.echo("the log is empty: nothing to sign" if cp is None else f"signed event {cp.seq} ({cp.hash})")

    _in_transaction(work)


def _trusted_keys(public_key: str | None, settings) -> dict[str, bytes] | None:
    from egocrowd.audit import checkpoints
    from egocrowd.audit.encoding import key_id

    if public_key:
        try:
            raw = bytes.fromhex(public_key)
        except ValueError:
            raise click.BadParameter("64 hex digits (the raw Ed25519 public key)", param_hint="--public-key") from None
        return {key_id(raw): raw}
    if settings is None:
        return None
    try:
        raw = checkpoints.signing_key(settings).public_raw
    except checkpoints.SigningKeyMissing as e:  # the links can still be checked; no checkpoint can
        click.echo(f"warning: {e.message}", err=True)
        return {}
    return {key_id(raw): raw}


@audit_group.command("verify")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Verify an export file instead of the database (needs nothing else).",
)
@click.option(
    "--public-key",
    default=None,
    help="Trust only this Ed25519 public key (hex, as GET /api/v1/audit/public-key gives). Default: the "
    "database's own key, or for --file the keys the file names (their ids are printed: compare them).",
)
def audit_verify(path: Path | None, public_key: str | None) -> None:
    """Check every link of the audit chain and every signed checkpoint, streaming the log; report
    the first broken link (edited, deleted, inserted, reordered, rewritten). Exit status 1 if any."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # ~40 ms

    from egocrowd.audit import verify  # SQLAlchemy and cryptography, ~0.5 s

    with Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        if path is not None:
            task = bar.add_task("verify", total=None)
            report = verify.verify_file(
                path, _trusted_keys(public_key, None), progress=lambda n: bar.update(task, completed=n)
            )
        else:
            from egocrowd.db import open_database  # SQLAlchemy, ~0.4 s

            settings = _settings()
            keys = _trusted_keys(public_key, settings)
            db = open_database(settings)
            try:
                with db.transaction(write=False) as s:
                    verify.consistent_snapshot(s)
                    total = verify.count_events(s)
                    task = bar.add_task("verify", total=total)
                    report = verify.verify_database(s, keys or {}, progress=lambda n: bar.update(task, completed=n))
            finally:
                db.dispose()
    click.echo(
        f"{report.events} events, {report.checkpoints} checkpoints; trusted keys: {', '.join(report.key_ids) or 'none'}"
    )
    if report.problem is not None:
        click.echo(f"BROKEN: {report.problem}", err=True)
        sys.exit(1)
    click.echo(
        f"ok: chain intact up to event {report.head_seq} ({report.head_hash}); signed up to event "
        f"{report.signed_seq}, {report.unsigned_events} newer events not yet covered by a checkpoint"
    )


@audit_group.command("export")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def audit_export(out: Path) -> None:
    """Write the whole log, its checkpoints and the public key to OUT as JSON lines, for auditors
    (`egocrowd audit verify --file OUT` checks it with nothing else)."""
    from egocrowd.audit import checkpoints, export, verify  # SQLAlchemy and cryptography, ~0.5 s
    from egocrowd.db import open_database

    settings = _settings()
    key = checkpoints.public_key(settings)
    db = open_database(settings)
    try:
        with db.transaction(write=False) as s, open(out, "wb") as f:
            verify.consistent_snapshot(s)
            n = export.export_jsonl(s, f, [key])
    finally:
        db.dispose()
    click.echo(f"wrote {n} events to {out}; public key id {key['key_id']}")


@main.group("c2pa")
def c2pa_group() -> None:
    """Content Credentials (C2PA) on released video: the signing authority, and checking a file."""


@c2pa_group.command("init")
@click.option("--organization", default="egocrowd", show_default=True, help="Name in the certificates.")
def c2pa_init(organization: str) -> None:
    """Make the local signing authority (a root certificate and the signing certificate it issues) in
    EGOCROWD_CONTENT_CREDENTIALS_DIR. Once: files it signed need it. Publish the root (served at
    /api/v1/content-credentials/ca.pem) so buyers can trust it."""
    from egocrowd.releases import credentials

    settings = _settings()
    directory = credentials.authority_dir(settings)
    authority = credentials.init_authority(directory, organization=organization)
    click.echo(f"wrote {directory} (the key is mode 0600); keep a copy somewhere safe")
    click.echo(f"root certificate sha256 {authority.fingerprint}")


@c2pa_group.command("verify")
@click.argument("video", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--trust",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A root certificate (PEM) to trust; default: this platform's own, when it has one.",
)
def c2pa_verify(video: Path, trust: Path | None) -> None:
    """Read a video's Content Credentials and validate them: exit status 1 unless the file is intact
    (Trusted, or Valid with a root you do not trust), 2 when it carries none."""
    from egocrowd.releases import credentials

    if trust is not None:
        trust_pem: bytes | None = trust.read_bytes()
    else:
        try:
            trust_pem = credentials.load_authority(credentials.authority_dir(_settings())).ca_pem
        except credentials.NoAuthority:
            trust_pem = None
    verdict = credentials.read_credentials(video, trust_pem=trust_pem)
    if verdict.state is None:
        click.echo(f"{video}: no Content Credentials")
        sys.exit(2)
    click.echo(f"{video}: {verdict.state}")
    for action in (verdict.assertion("c2pa.actions") or {}).get("actions", []):
        click.echo(f"  {action.get('action')}: {action.get('description', '')}")
    for failure in verdict.failures:
        click.echo(f"  failed: {failure.get('code')}: {failure.get('explanation', '')}", err=True)
    sys.exit(0 if verdict.state in ("Trusted", "Valid") else 1)


# --- buyers (#12): the catalog of published releases, its requests, its sample frames (docs/buyers.md) -
@main.group("catalog")
def catalog_group() -> None:
    """The catalog buyers browse: published releases, access requests waiting, sample frames."""


@catalog_group.command("list")
@click.option("--label", default=None, help="Only releases with this label ('verb noun').")
@click.option("--country", default=None, help="Only releases with clips from this country (ISO code).")
@click.option("--min-hours", type=click.FloatRange(0), default=None, help="Only releases with this much video.")
@click.option("--search", "q", default=None, help="Words in the title, name, description or lab.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def catalog_list(label, country, min_hours, q, limit) -> None:
    """Published releases of every lab, newest first, with their slices."""
    from rich.console import Console  # rich, ~30 ms
    from rich.table import Table

    from egocrowd.releases import buyers  # SQLAlchemy and the releases room, ~0.5 s

    def work(s):
        table = Table("id", "release", "lab", "clips", "hours", "countries", "licence", "published")
        rows = buyers.operator_catalog(s, label=label, country=country, min_hours=min_hours, q=q, limit=limit)
        for e in rows:
            r = e.release
            table.add_row(
                str(r.id),
                f"{r.title} v{r.version}",
                e.organization,
                str(e.slices["clips"]),
                f"{e.slices['hours']:.1f}",
                ", ".join(e.slices["countries"]) or "-",
                e.licence["name"] or "none",
                r.published_at.strftime("%Y-%m-%d") if r.published_at else "",
            )
        Console().print(table)
        return len(rows)

    n = _in_transaction(work)
    click.echo(f"{n} release{'s' if n != 1 else ''}")


@catalog_group.command("requests")
def catalog_requests() -> None:
    """Access requests waiting for a decision, oldest first (every lab's)."""
    from egocrowd.releases import buyers  # SQLAlchemy and the releases room, ~0.5 s

    def work(s) -> list[str]:
        return [
            f"request {a.id}: {org} asks for release {r.id} ({r.title} v{r.version}) since "
            f"{a.requested_at:%Y-%m-%d %H:%M}: {a.message}"
            for a, r, org in buyers.pending_requests(s, None, operator=True)
        ]

    lines = _in_transaction(work)
    for line in lines:
        click.echo(line)
    click.echo(f"{len(lines)} waiting")


@catalog_group.command("samples")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
def catalog_samples(limit: int) -> None:
    """Make the sample frames of published releases that have none yet (the worker does it too)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # ~40 ms

    from egocrowd.db import open_database  # SQLAlchemy, ~0.4 s
    from egocrowd.releases import buyers

    settings = _settings()
    db = open_database(settings)
    try:
        with Progress(TextColumn("sample frames"), BarColumn(), MofNCompleteColumn()) as bar:
            task = bar.add_task("samples", total=None)
            n = buyers.make_missing_samples(
                db,
                blobs_from_settings(settings),
                limit=limit,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    finally:
        db.dispose()
    click.echo(f"sample frames made for {n} release{'s' if n != 1 else ''}")


# --- withdrawals (#12; docs/withdrawals.md) -------------------------------------------------------------
@main.group("withdrawals")
def withdrawals_group() -> None:
    """Withdrawn clips: list them with the time their buyers waited, remove one for cause, run the
    sweep (record, notify, purge) now instead of at the next housekeeping round."""


@withdrawals_group.command("list")
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Newest first, at most this many."
)
def withdrawals_list(limit: int) -> None:
    """Every withdrawal, its notices (sent, acknowledged), its purge, and the median and longest time
    from withdrawal to notice over the last 30 days."""
    from rich.console import Console  # rich, ~30 ms
    from rich.table import Table

    from egocrowd.releases import withdrawals  # SQLAlchemy and the releases room, ~0.5 s

    def work(s):
        o = withdrawals.operator_overview(s, limit=limit)
        table = Table("clip", "reason", "withdrawn at", "notices", "acknowledged", "media")
        for r in o.rows:
            w = r.withdrawal
            media = (
                f"deleted {w.purged_at:%Y-%m-%d %H:%M}" if w.purged_at else f"kept until {w.purge_after:%Y-%m-%d %H:%M}"
            )
            table.add_row(
                str(w.clip_id),
                w.reason,
                f"{w.withdrawn_at:%Y-%m-%d %H:%M}",
                str(len(r.notices)),
                str(r.acknowledged),
                media,
            )
        return o, table

    o, table = _in_transaction(work)
    Console().print(table)
    med = f"{o.median_delay.total_seconds():.0f} s" if o.median_delay is not None else "-"
    top = f"{o.max_delay.total_seconds():.0f} s" if o.max_delay is not None else "-"
    click.echo(
        f"{o.total} withdrawals; last 30 days: {o.recent_notices} notices, median {med}, longest {top} to notice"
    )


@withdrawals_group.command("remove")
@click.argument("clip_id", type=click.IntRange(1))
@click.option(
    "--reason", required=True, help="Why (at least 10 characters): the worker reads it; kept in the audit log."
)
def withdrawals_remove(clip_id: int, reason: str) -> None:
    """Remove clip CLIP_ID for cause: out of every later release, its buyers told, its media deleted
    after the grace period (EGOCROWD_WITHDRAWAL_GRACE_DAYS)."""
    from egocrowd.releases import withdrawals  # SQLAlchemy and the releases room, ~0.5 s

    grace = _settings().withdrawal_grace_days
    wid = _in_transaction(lambda s: withdrawals.remove(s, clip_id, reason, grace_days=grace, by=None).id)
    click.echo(f"clip {clip_id} withdrawn (withdrawal {wid}); its media is deleted after the grace period")


@withdrawals_group.command("sweep")
def withdrawals_sweep() -> None:
    """Record withdrawals no door recorded, send the notices owed, purge media past its grace period."""
    from egocrowd.db import open_database  # SQLAlchemy, ~0.4 s
    from egocrowd.releases import withdrawals

    settings = _settings()
    db = open_database(settings)
    try:
        done = withdrawals.sweep(db, blobs_from_settings(settings), grace_days=settings.withdrawal_grace_days)
    finally:
        db.dispose()
    click.echo(f"{done['recorded']} withdrawals recorded, {done['notices']} notices sent, {done['purged']} purged")


# --- releases (#12): cut, list, show, export (docs/releases.md) -------------------------------------
@main.group("release")
def release_group() -> None:
    """Dataset releases: cut one (and build it), list, show, export a published one to a folder."""


def _build_with_bar(db, blobs, settings, release_id: int):
    """Build ``release_id`` now with a progress bar (the same build the worker runs)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # ~40 ms

    from egocrowd.releases import builder

    with Progress(TextColumn("{task.fields[stage]}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task("build", total=None, stage="starting")
        r = builder.build_next(
            db,
            blobs,
            settings,
            release_id=release_id,
            progress=lambda stage, done, total: bar.update(task, completed=done, total=total or None, stage=stage),
        )
    return r


def _report_build(r) -> None:
    if r is None:
        raise click.ClickException("nothing to build: the release is not building, or another builder holds it")
    if r.status.value == "published":
        click.echo(f"release {r.id} ({r.name} v{r.version}) published; root hash {r.root_hash}")
    elif r.status.value == "failed":
        raise click.ClickException(
            f"release {r.id} failed: {(r.error or {}).get('message')} [{(r.error or {}).get('code')}]"
        )
    else:
        raise click.ClickException(f"release {r.id} is still building (attempt {r.attempts}); the worker tries again")


@release_group.command("create")
@click.option(
    "--lab", "organization_id", required=True, type=click.IntRange(1, 2**31 - 1), help="The lab's (organization's) id."
)
@click.option("--name", required=True, help='The series, a slug ("jar-opening"); each cut is its next version.')
@click.option("--title", required=True)
@click.option("--description", default="")
@click.option("--licence", "licence_name", required=True, help="The licence's name.")
@click.option(
    "--terms",
    "terms_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file with the licence text.",
)
@click.option(
    "--use",
    "uses",
    multiple=True,
    type=click.Choice(["training", "research", "commercial", "redistribution"]),
    default=("training",),
    show_default=True,
    help="What buyers may do (repeat); commercial and redistribution need the workers' matching consent.",
)
@click.option("--expires", type=click.DateTime(), default=None, help="When the licence ends (UTC).")
@click.option(
    "--campaign",
    "campaign_ids",
    multiple=True,
    type=click.IntRange(1, 2**31 - 1),
    help="Only these campaigns (repeat).",
)
@click.option(
    "--label", "labels", multiple=True, help='Only clips with this consensus label, "verb noun" (repeat: any).'
)
@click.option("--country", "countries", multiple=True, help="Only workers from this country, ISO alpha-2 (repeat).")
@click.option(
    "--from",
    "recorded_from",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Clips that arrived on or after this day.",
)
@click.option(
    "--to",
    "recorded_to",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Clips that arrived on or before this day.",
)
@click.option("--min-duration", type=click.FloatRange(0), default=None, help="Seconds.")
@click.option("--max-duration", type=click.FloatRange(0), default=None, help="Seconds.")
@click.option("--min-alpha", type=click.FloatRange(-1, 1), default=None, help="Minimum annotation agreement.")
@click.option(
    "--clip", "clip_ids", multiple=True, type=click.IntRange(1, 2**31 - 1), help="Exactly these clips (repeat)."
)
@click.option(
    "--format", "formats", multiple=True, help="Only these exporters/describers (repeat). Default: all registered."
)
@click.option("--no-build", is_flag=True, help="Only cut it; the worker builds it.")
def release_create(
    organization_id, name, title, description, licence_name, terms_file, uses, expires, campaign_ids, labels,
    countries, recorded_from, recorded_to, min_duration, max_duration, min_alpha, clip_ids, formats, no_build,
) -> None:  # fmt: skip
    """Cut the next version of a lab's release from its eligible accepted clips, then build it here
    with a progress bar (exporters, manifest, root hash). Prints the root hash."""
    from datetime import UTC

    from pydantic import ValidationError

    from egocrowd.db import open_database  # SQLAlchemy and the releases room, ~0.6 s
    from egocrowd.releases import service
    from egocrowd.releases.schema import ReleaseIn

    sel = {
        "campaign_ids": list(campaign_ids),
        "labels": list(labels),
        "countries": list(countries),
        "recorded_from": recorded_from.date() if recorded_from else None,
        "recorded_to": recorded_to.date() if recorded_to else None,
        "min_duration_s": min_duration,
        "max_duration_s": max_duration,
        "min_alpha": min_alpha,
        "clip_ids": list(clip_ids),
    }
    try:
        body = ReleaseIn(
            organization_id=organization_id,
            name=name,
            title=title,
            description=description,
            selection={k: v for k, v in sel.items() if v not in (None, [])},
            licence={
                "name": licence_name,
                "terms": terms_file.read_text(encoding="utf-8") if terms_file else "",
                "uses": list(uses),
                "expires_at": expires.replace(tzinfo=UTC) if expires else None,
            },
            formats={f: {} for f in formats} if formats else None,
        )
    except ValidationError as exc:
        raise click.ClickException(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None
    settings = _settings()
    db = open_database(settings)
    try:
        with db.transaction() as s:
            r = service.create_release(s, None, body)
            rid, version, n = r.id, r.version, service.release_clip_count(s, r)
        click.echo(f"release {rid}: {name} v{version}, {n} clips")
        if not no_build:
            _report_build(_build_with_bar(db, blobs_from_settings(settings), settings, rid))
    finally:
        db.dispose()


@release_group.command("build")
@click.argument("release_id", type=click.IntRange(1, 2**31 - 1), required=False)
def release_build(release_id: int | None) -> None:
    """Build a release that is waiting (RELEASE_ID, or the oldest) now, with a progress bar."""
    from egocrowd.db import open_database  # SQLAlchemy, ~0.4 s

    settings = _settings()
    db = open_database(settings)
    try:
        if release_id is None:
            from egocrowd.releases import builder

            with db.transaction() as s:
                release_id = builder.next_buildable(s)
            if release_id is None:
                click.echo("no release is waiting to be built")
                return
        _report_build(_build_with_bar(db, blobs_from_settings(settings), settings, release_id))
    finally:
        db.dispose()


@release_group.command("list")
@click.option("--lab", "organization_id", type=click.IntRange(1, 2**31 - 1), default=None, help="Only this lab's.")
def release_list(organization_id: int | None) -> None:
    """Every release, newest first: id, lab, name, version, status, clips, root hash."""
    from egocrowd.releases import service  # SQLAlchemy and the releases room, ~0.6 s

    def work(s) -> list[str]:
        return [
            f"{r.id}\t{r.organization.name}\t{r.name}\tv{r.version}\t{r.status.value}\t"
            f"{service.release_clip_count(s, r)} clips\t{r.root_hash or '-'}"
            for r in service.list_releases(s, None, organization_id=organization_id, limit=10_000)
        ]

    lines = _in_transaction(work)
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo("no releases yet", err=True)


@release_group.command("show")
@click.argument("release_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--json", "as_json", is_flag=True, help="The whole release as JSON.")
def release_show(release_id: int, as_json: bool) -> None:
    """One release: status, progress, licence, composition, what changed, its files."""
    import json

    from egocrowd.releases import service  # SQLAlchemy and the releases room, ~0.6 s

    def work(s) -> dict:
        r = service.get_release(s, None, release_id)
        return {
            "id": r.id,
            "lab": r.organization.name,
            "name": r.name,
            "version": r.version,
            "title": r.title,
            "status": r.status.value,
            "progress": r.progress,
            "error": r.error,
            "previous_id": r.previous_id,
            "licence": r.licence,
            "formats": r.formats,
            "changes": {k: len(v) for k, v in r.changes.items()},
            "stats": r.stats,
            "root_hash": r.root_hash,
            "clips": service.release_clip_count(s, r),
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in service.release_files(s, r)],
        }

    d = _in_transaction(work)
    if as_json:
        click.echo(json.dumps(d, indent=1, default=str))
        return
    click.echo(f"release {d['id']}: {d['lab']} / {d['name']} v{d['version']} — {d['title']}")
    click.echo(f"status: {d['status']} {d['progress']}" + (f" error: {d['error']}" if d["error"] else ""))
    click.echo(f"licence: {d['licence'].get('name')} (uses: {', '.join(d['licence'].get('uses', []))})")
    click.echo(f"clips: {d['clips']}, hours: {d['stats'].get('hours', 0)}; changes: {d['changes']}")
    click.echo(f"root hash: {d['root_hash'] or '-'}")
    for f in d["files"]:
        click.echo(f"  {f['sha256']}  {f['size']:>12}  {f['path']}")


@release_group.command("export")
@click.argument("release_id", type=click.IntRange(1, 2**31 - 1))
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def release_export(release_id: int, folder: Path) -> None:
    """Write a published release's files and manifest.json into FOLDER from the blob store,
    checking every file's sha256 and the manifest's against the root hash."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn  # ~40 ms

    from egocrowd.db import open_database  # SQLAlchemy and the releases room, ~0.6 s
    from egocrowd.releases import builder, service

    settings = _settings()
    db = open_database(settings)
    blobs = blobs_from_settings(settings)
    try:
        with (
            db.transaction(write=False) as s,
            Progress(TextColumn("exporting"), BarColumn(), DownloadColumn(), TimeRemainingColumn()) as bar,
        ):
            r = service.get_release(s, None, release_id)
            task = bar.add_task("export", total=None)
            out = service.export_release(
                s, blobs, r, folder, progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
        builder.verify_folder(folder, out["root_hash"])  # read back from the folder: what the buyer gets
    finally:
        db.dispose()
    click.echo(f"wrote {out['files']} files ({out['bytes']} bytes) to {folder}; root hash {out['root_hash']} verified")


# --- pay: payout batches (#11; egocrowd.pay.payouts, docs/pay.md "Payout batches") ---------------------


@main.group("pay")
def pay_group() -> None:
    """Money out: payout batches (make, export the provider's file, mark sent, cancel, list)."""


@pay_group.group("batch")
def pay_batch() -> None:
    """Payout batches. The command line acts as the platform's operator (recorded with no actor)."""


def _batch_line(b, n: int, total) -> str:
    return f"batch {b.id}: {b.provider} {b.currency}, {b.status.value}, {n} payout(s), {total}" + (
        f", reference {b.provider_reference}" if b.provider_reference else ""
    )


@pay_batch.command("create")
@click.option(
    "--provider",
    required=True,
    type=RegistryChoice("egocrowd.pay.providers:PAYOUT_PROVIDERS"),
    help="A payout provider: paypal, wise, mpesa, or a plugin's.",
)
@click.option("--currency", required=True, help="ISO 4217 code, e.g. USD or KES.")
@click.option("--minimum", default=None, help="Least balance paid, exact text (5.00); default: payout_minimum_minor.")
def pay_batch_create(provider: str, currency: str, minimum: str | None) -> None:
    """Make a batch: every worker due a payout with PROVIDER in CURRENCY (their whole balance moves
    to "in transit")."""
    from egocrowd.pay import payouts  # SQLAlchemy, ~0.4 s
    from egocrowd.pay.money import Money

    settings = _settings()
    cur = currency.strip().upper()

    def work(s):
        b = payouts.create_batch(
            s,
            None,
            provider=provider,
            currency=cur,
            minimum=Money.parse(minimum, cur) if minimum else None,
            default_minimum_minor=settings.payout_minimum_minor,
        )
        batch, lines = payouts.get_batch(s, None, b.id)
        return _batch_line(batch, len(lines), Money(sum(x.payout.amount for x in lines), cur))

    click.echo(_in_transaction(work))


@pay_batch.command("export")
@click.argument("batch_id", type=click.IntRange(1))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the file here (default: the provider's file name in the current folder).",
)
def pay_batch_export(batch_id: int, out: Path | None) -> None:
    """Write the provider's bulk-payout file for an open batch (kept, so exporting is once: an
    exported batch's file is written again, the same bytes)."""
    from egocrowd.db.models import PayoutBatchStatus
    from egocrowd.pay import payouts  # SQLAlchemy, ~0.4 s

    blobs = blobs_from_settings(_settings())

    def work(s):
        batch, _ = payouts.get_batch(s, None, batch_id)
        if batch.status is PayoutBatchStatus.open:
            payouts.export_batch(s, None, batch_id, blobs)
        return payouts.export_file(s, None, batch_id, blobs)

    f = _in_transaction(work)
    path = out or Path(f.filename)
    path.write_bytes(f.data)
    click.echo(f"wrote {path} ({len(f.data)} bytes)")


@pay_batch.command("sent")
@click.argument("batch_id", type=click.IntRange(1))
@click.option("--reference", required=True, help="The provider's reference for the batch.")
def pay_batch_sent(batch_id: int, reference: str) -> None:
    """Record that the provider took an exported batch: every payout is paid out, each worker told."""
    from egocrowd.pay import payouts  # SQLAlchemy, ~0.4 s
    from egocrowd.pay.money import Money

    def work(s):
        b = payouts.mark_sent(s, None, batch_id, reference)
        _, lines = payouts.get_batch(s, None, b.id)
        return _batch_line(b, len(lines), Money(sum(x.payout.amount for x in lines), b.currency))

    click.echo(_in_transaction(work))


@pay_batch.command("cancel")
@click.argument("batch_id", type=click.IntRange(1))
@click.option("--reason", default="", help="Why (recorded).")
def pay_batch_cancel(batch_id: int, reason: str) -> None:
    """Give up a batch before it is sent: the money goes back to each worker's balance."""
    from egocrowd.pay import payouts  # SQLAlchemy, ~0.4 s

    b = _in_transaction(lambda s: payouts.cancel_batch(s, None, batch_id, reason).id)
    click.echo(f"batch {b} cancelled: every payout is back in its worker's balance")


@pay_batch.command("list")
@click.option("--status", type=click.Choice(["open", "exported", "sent", "cancelled"]), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def pay_batch_list(status: str | None, limit: int) -> None:
    """Batches, newest first."""
    from rich.console import Console  # rich, ~30 ms
    from rich.table import Table

    from egocrowd.db.models import PayoutBatchStatus
    from egocrowd.pay import payouts  # SQLAlchemy, ~0.4 s

    def work(s):
        table = Table("batch", "provider", "currency", "status", "payouts", "total", "reference")
        for x in payouts.list_batches(s, None, status=PayoutBatchStatus(status) if status else None, limit=limit):
            b = x.batch
            table.add_row(
                str(b.id),
                b.provider,
                b.currency,
                b.status.value,
                str(x.payouts),
                x.total.format(),
                b.provider_reference or "",
            )
        Console().print(table)

    _in_transaction(work)


@main.group("i18n")
def i18n_group() -> None:
    """Translations: check the shipped catalogs (docs/translating.md)."""


@i18n_group.command("check")
def i18n_check() -> None:
    """Every shipped language translates every string of locales/messages.pot (make i18n-extract
    refreshes it), with the same placeholders. Exits 1 and lists what is missing otherwise."""
    from egocrowd import i18n

    problems = i18n.check_catalogs()
    for line in problems[:200]:
        click.echo(line)
    if problems:
        raise click.ClickException(f"{len(problems)} problems in the catalogs")
    click.echo(f"{len(i18n.LANGUAGES) - 1} catalogs complete")


main.add_command(bench)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
