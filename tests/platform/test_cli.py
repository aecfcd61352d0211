"""The `egocrowd` command: help everywhere, the demo seed (idempotent), migrations, user creation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import Session

from egocrowd.cli import main
from egocrowd.db.models import AuditEvent, Campaign, Clip, ConsentDocument, User
from egocrowd.pay import budgets
from tests.platform.test_migrations import _diff, fresh_url  # noqa: F401  (a fixture)


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


ALL = [()] + list(_commands(main))


@pytest.mark.parametrize("args", ALL, ids=lambda a: " ".join(a) or "egocrowd")
def test_help(args):
    r = CliRunner().invoke(main, [*args, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage:" in r.output


def test_the_installed_entry_point_runs():
    exe = Path(sys.executable).with_name("egocrowd")
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "demo" in r.stdout and "serve" in r.stdout
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "egocrowd" in r.stdout


def _env(tmp_path, url=None) -> dict:
    env = {"EGOCROWD_DATA_DIR": str(tmp_path / "data"), "EGOCROWD_CONFIG": None, "EGOCROWD_DATABASE_URL": url}
    return env


def _count(url, model) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return c.scalar(sa.select(sa.func.count()).select_from(model))
    finally:
        engine.dispose()


def test_demo_seeds_idempotently(tmp_path):
    runner = CliRunner()
    first = runner.invoke(main, ["demo", "--no-serve"], env=_env(tmp_path))
    assert first.exit_code == 0, first.output
    for role in ("admin", "requester", "reviewer", "worker"):
        assert role in first.output
    assert "worker@demo.egocrowd" in first.output and "demo-worker-password" in first.output
    url = f"sqlite:///{tmp_path / 'data' / 'egocrowd.db'}"
    counts = [_count(url, m) for m in (User, Campaign, ConsentDocument, AuditEvent)]
    assert counts[:3] == [7, 3, 2]  # one user per role and three annotators; the consent in English and French
    assert "annotator1@demo.egocrowd" in first.output
    engine = sa.create_engine(url)
    with Session(engine) as s:  # the clip page shows the picture as the probe stage stores it
        probes = s.scalars(sa.select(Clip.probe)).all()
        owed = [c.id for campaign_id in s.scalars(sa.select(Campaign.id)) for c in budgets.owed_clips(s, campaign_id)]
    engine.dispose()
    assert probes and all(p["display_width"] == 320 and p["display_height"] == 240 for p in probes)
    assert owed == []  # the accepted clips are paid: the worker's earnings say earned, not "pays soon"
    second = runner.invoke(main, ["demo", "--no-serve"], env=_env(tmp_path))
    assert second.exit_code == 0, second.output
    assert second.output == first.output
    assert [_count(url, m) for m in (User, Campaign, ConsentDocument, AuditEvent)] == counts


def test_db_upgrade(tmp_path, fresh_url):  # noqa: F811
    runner = CliRunner()
    for _ in range(2):  # safe to run again
        r = runner.invoke(main, ["db", "upgrade"], env=_env(tmp_path, fresh_url))
        assert r.exit_code == 0, r.output
        assert "is at head" in r.output
    assert _diff(fresh_url) == []


def test_user_create(tmp_path):
    runner = CliRunner()
    env = _env(tmp_path)
    r = runner.invoke(
        main,
        [
            "user",
            "create",
            "--email",
            "Boss@Example.org",
            "--role",
            "admin",
            "--password",
            "a long password",
            "--token",
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    assert "created admin boss@example.org" in r.output
    token = r.output.split("API token (shown once): ")[1].strip()
    assert token.startswith("egc_")

    r = runner.invoke(
        main,
        ["user", "create", "--email", "boss@example.org", "--role", "worker", "--password", "a long password"],
        env=env,
    )
    assert r.exit_code == 1 and "user.email_taken" in r.output
    r = runner.invoke(
        main,
        ["user", "create", "--email", "lab@example.org", "--role", "requester", "--password", "a long password"],
        env=env,
    )
    assert r.exit_code == 1 and "user.organization_required" in r.output
    r = runner.invoke(
        main,
        [
            "user",
            "create",
            "--email",
            "lab@example.org",
            "--role",
            "requester",
            "--organization",
            "Lab A",
            "--password",
            "a long password",
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        main,
        [
            "user",
            "create",
            "--email",
            "w@example.org",
            "--role",
            "worker",
            "--country",
            "Kenya",
            "--password",
            "a long password",
        ],
        env=env,
    )
    assert r.exit_code == 1 and "user.bad_country" in r.output
    r = runner.invoke(
        main, ["user", "create", "--email", "w@example.org", "--role", "worker"], input="short\nshort\n", env=env
    )
    assert r.exit_code == 1 and "user.weak_password" in r.output
    r = runner.invoke(
        main,
        ["user", "create", "--email", "w@example.org", "--role", "pirate", "--password", "a long password"],
        env=env,
    )
    assert r.exit_code == 2

    # the token works against the app built on the same settings
    from fastapi.testclient import TestClient

    from egocrowd.settings import Settings
    from egocrowd.web import create_app

    app = create_app(Settings(data_dir=tmp_path / "data"))
    with TestClient(app) as c:
        me = c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["email"] == "boss@example.org" and me["role"] == "admin"
    app.state.db.dispose()
