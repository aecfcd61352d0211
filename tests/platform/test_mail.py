"""The mailers: the outbox writes whole, readable .eml files; SMTP talks to a real server."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from click.testing import CliRunner

from egocrowd.cli import main
from egocrowd.mail import Letter, MailError, OutboxMailer, SmtpMailer, mailer_from_url
from tests.support.smtp import _free_port, smtp_server

LETTER = Letter("amina@example.org", "Choose a new password", "Open this link: https://x/reset-password?token=a\n")


def test_the_outbox_writes_one_readable_eml_per_message(tmp_path):
    box = tmp_path / "outbox"
    mailer = OutboxMailer(box, "egocrowd <noreply@example.org>")
    first, second = mailer.send(LETTER), mailer.send(Letter("b@example.org", "Zwei Wörter", "Grüße ✓\n"))
    assert sorted(p.name for p in box.iterdir()) == sorted([first.name, second.name])  # no temporary files left
    assert first.suffix == ".eml" and first.name < second.name  # oldest first by name
    msg = message_from_bytes(first.read_bytes(), policy=policy.default)
    assert (msg["From"], msg["To"], msg["Subject"]) == ("egocrowd <noreply@example.org>", LETTER.to, LETTER.subject)
    assert msg["Message-ID"].endswith("@example.org>") and msg["Date"]
    assert msg.get_content() == LETTER.body
    assert b"https://x/reset-password?token=a\n" in first.read_bytes()  # readable as is: links never wrapped
    other = message_from_bytes(second.read_bytes(), policy=policy.default)
    assert other["Subject"] == "Zwei Wörter" and other.get_content() == "Grüße ✓\n"


def test_an_unwritable_outbox_is_a_mail_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MailError) as failed:
        OutboxMailer(blocker / "outbox", "x@example.org").send(LETTER)
    assert failed.value.code == "mail.failed"


def test_smtp_delivers_to_a_real_server(tmp_path):
    with smtp_server() as inbox:
        mailer_from_url(inbox.url, "egocrowd <noreply@example.org>", tmp_path).send(LETTER)
    (msg,) = inbox.messages
    assert (msg["To"], msg["Subject"]) == (LETTER.to, LETTER.subject)
    assert msg.get_content().replace("\r\n", "\n") == LETTER.body  # SMTP carries CRLF line ends


def test_an_unreachable_server_is_a_mail_error(tmp_path):
    mailer = mailer_from_url(f"smtp://127.0.0.1:{_free_port()}", "x@example.org", tmp_path)
    with pytest.raises(MailError):
        mailer.send(LETTER)


def test_mail_urls(tmp_path):
    assert isinstance(mailer_from_url("outbox", "x@example.org", tmp_path), OutboxMailer)
    m = mailer_from_url("smtps://me%40lab.org:p%2Fss@mail.lab.org", "x@example.org", tmp_path)
    assert isinstance(m, SmtpMailer)
    assert (m.host, m.port, m.username, m.password, m.tls, m.starttls) == (
        "mail.lab.org",
        465,
        "me@lab.org",
        "p/ss",
        True,
        False,
    )
    m = mailer_from_url("smtp://mail.lab.org:587?starttls=true", "x@example.org", tmp_path)
    assert (m.port, m.username, m.tls, m.starttls) == (587, None, False, True)
    for bad in ("http://mail.lab.org", "smtp://", "sendmail"):
        with pytest.raises(ValueError):
            mailer_from_url(bad, "x@example.org", tmp_path)


def test_the_cli_sends_a_test_email(tmp_path, monkeypatch):
    monkeypatch.setenv("EGOCROWD_DATA_DIR", str(tmp_path))
    done = CliRunner().invoke(main, ["mail", "test", "ops@example.org"])
    assert done.exit_code == 0, done.output
    assert f"written to {tmp_path.resolve() / 'outbox'}" in done.output
    (eml,) = (tmp_path / "outbox").iterdir()
    assert b"ops@example.org" in eml.read_bytes()
    with smtp_server() as inbox:
        monkeypatch.setenv("EGOCROWD_MAIL_URL", inbox.url)
        done = CliRunner().invoke(main, ["mail", "test", "ops@example.org"])
    assert done.exit_code == 0 and "sent" in done.output
    assert inbox.messages[0]["Subject"] == "egocrowd test email"
    monkeypatch.setenv("EGOCROWD_MAIL_URL", f"smtp://127.0.0.1:{_free_port()}")
    done = CliRunner().invoke(main, ["mail", "test", "ops@example.org"])
    assert done.exit_code == 1 and "refused or failed" in done.output
