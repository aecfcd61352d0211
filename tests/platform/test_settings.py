"""Every setting lives on Settings (same EGOCROWD_* names as before) and is passed down explicitly."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient

from egocrowd.settings import Settings


def test_pipeline_settings_come_from_the_environment(monkeypatch, tmp_path):
    from egocrowd.pipeline.runner import RunnerConfig

    monkeypatch.setenv("EGOCROWD_STAGE_LEASE_S", "3")
    monkeypatch.setenv("EGOCROWD_STAGE_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("EGOCROWD_STAGE_BACKOFF_S", "0.5")
    monkeypatch.setenv("EGOCROWD_PALM_MODEL", str(tmp_path / "palm.tflite"))
    monkeypatch.setenv("EGOCROWD_VENDOR_DIR", str(tmp_path / "vendor"))
    s = Settings(data_dir=tmp_path)
    config = RunnerConfig.from_settings(s)
    assert (config.lease_s, config.max_attempts, config.backoff_base_s) == (3.0, 2, 0.5)
    assert s.palm_model == tmp_path / "palm.tflite" and s.vendor_dir == tmp_path / "vendor"


def test_the_runner_hands_the_palm_model_setting_to_qc(settings, db, tmp_path):
    """QC runs in a child process without Settings: the model path travels in the stage inputs."""
    from egocrowd.blobs import BlobStore
    from egocrowd.pipeline.executors import get_executor
    from egocrowd.pipeline.runner import Runner
    from egocrowd.pipeline.stages import STAGES

    custom = settings.model_copy(update={"palm_model": tmp_path / "palm.tflite"})
    runner = Runner(db, BlobStore(custom.blobs_path), get_executor("inline"), settings=custom)
    assert runner.stage_context.settings.palm_model == tmp_path / "palm.tflite"

    class _Campaign:
        requirements: dict = {}

    class _Clip:
        id, campaign_id, sha256, probe, client_meta, campaign = 1, 1, "0" * 64, None, {}, _Campaign()

    with db.transaction() as s:
        inputs = STAGES.get("qc").obj.prepare(s, _Clip(), runner.stage_context)
    assert inputs["palm_model"] == str(tmp_path / "palm.tflite")


def test_vendor_dir_is_a_setting(settings, db, tmp_path):
    from egocrowd.web import create_app

    vendor = tmp_path / "vendor"
    (vendor / "tus-js-client" / "dist").mkdir(parents=True)  # a file pages load (see web/security.py)
    (vendor / "tus-js-client" / "dist" / "tus.min.js").write_text("// x")
    app = create_app(settings.model_copy(update={"vendor_dir": vendor}), db)
    with TestClient(app) as client:
        assert client.get("/vendor/tus-js-client/dist/tus.min.js").text == "// x"


def test_worker_executor_choices_come_from_the_registry(scratch_registries):
    from egocrowd.cli import main
    from egocrowd.pipeline.executors import InlineExecutor, register_executor

    bad = CliRunner().invoke(main, ["worker", "--once", "--executor", "nope"])
    assert bad.exit_code == 2 and "pipeline.unknown_executor" in bad.output and "inline, process" in bad.output
    register_executor("test-local")(type("TestLocal", (InlineExecutor,), {}))
    helped = CliRunner().invoke(main, ["worker", "--help"])
    assert "test-local" in helped.output


def test_one_clock():
    from egocrowd import clock
    from egocrowd.db import models
    from egocrowd.uploads import store

    assert models.utcnow is clock.utcnow and store.utcnow is clock.utcnow
    assert clock.utcnow().utcoffset().total_seconds() == 0


def test_settings_are_documented():
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`EGOCROWD_{name.upper()}`" in doc, name
