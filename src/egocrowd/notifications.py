"""Messages to one person: shown in the app, and emailed when mail is set up.

Capabilities call :func:`notify` inside the transaction that made the news (a QC result, a review
decision, a closed campaign, a new consent version), so a notice exists exactly when its cause does.
Email goes out later, from the outbox (``emailed_at`` still empty), never inside that transaction.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, object_session

from egocrowd.clock import utcnow
from egocrowd.db import Database
from egocrowd.db.models import Notification, User
from egocrowd.errors import NotFound
from egocrowd.mail import Letter, Mailer, MailError, make_mailer
from egocrowd.settings import Settings

log = logging.getLogger("egocrowd.notifications")


def notify(
    session: Session, user_id: int, kind: str, subject: str, body: str = "", link: str | None = None
) -> Notification:
    """Queue one notice for ``user_id``. ``link`` is a path on this site (``/clips/12``)."""
    note = Notification(user_id=user_id, kind=kind, subject=subject[:200], body=body, link=link, created_at=utcnow())
    session.add(note)
    return note


def list_for(session: Session, user: User, *, unread_only: bool = False, limit: int = 50) -> list[Notification]:
    """``user``'s notices, newest first."""
    q = sa.select(Notification).where(Notification.user_id == user.id)
    if unread_only:
        q = q.where(Notification.read_at.is_(None))
    return list(session.scalars(q.order_by(Notification.id.desc()).limit(limit)))


def unread_count(session: Session, user: User) -> int:
    """One COUNT on the (user_id, read_at) index: cheap enough for every page's menu."""
    return (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Notification)
            .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        )
        or 0
    )


def unread_for(user: User | None) -> int:
    """:func:`unread_count` for a user row still in its session (the page menu); 0 otherwise."""
    session = object_session(user) if user is not None else None
    return unread_count(session, user) if session is not None and user is not None else 0


def mark_read(session: Session, user: User, note_id: int) -> Notification:
    note = session.get(Notification, note_id)
    if note is None or note.user_id != user.id:
        raise NotFound("No such notice.", code="notification.not_found")
    if note.read_at is None:
        note.read_at = utcnow()
    return note


def mark_all_read(session: Session, user: User) -> int:
    done = cast(
        "sa.CursorResult[Any]",  # an UPDATE's result has a rowcount
        session.execute(
            sa.update(Notification)
            .where(Notification.user_id == user.id, Notification.read_at.is_(None))
            .values(read_at=utcnow())
            .execution_options(synchronize_session="fetch")
        ),
    )
    return done.rowcount


def letter_for(note: Notification, user: User, base_url: str) -> Letter:
    link = f"\n\n{base_url}{note.link}" if note.link else ""
    return Letter(
        user.email,
        note.subject,
        f"Hello {user.display_name},\n\n{note.body or note.subject}{link}\n\n"
        f"All your notices: {base_url}/notifications\n",
    )


def deliver_notifications(db: Database, settings: Settings, *, limit: int = 100, mailer: Mailer | None = None) -> int:
    """Email the notices not emailed yet (housekeeping; one process at a time). Only to confirmed
    addresses of live accounts, and only with the ``notice_emails`` setting on: the others are
    marked as handled, so they are never looked at again. The mail goes out with no transaction
    open; a notice whose sending failed stays owed and is tried next round. Returns how many were sent."""
    mailer = mailer or make_mailer(settings)
    with db.transaction() as s:
        rows = s.execute(
            sa.select(Notification, User)
            .join(User, User.id == Notification.user_id)
            .where(Notification.emailed_at.is_(None))
            .order_by(Notification.id)
            .limit(limit)
        ).all()
        owed = [
            (note.id, letter_for(note, user, settings.base_url))
            for note, user in rows
            if settings.notice_emails and user.is_active and user.deleted_at is None and user.email_verified_at
        ]
        skip = {note.id for note, _ in rows} - {note_id for note_id, _ in owed}
        if skip:
            s.execute(sa.update(Notification).where(Notification.id.in_(skip)).values(emailed_at=utcnow()))
    sent = []
    for note_id, letter in owed:
        try:
            mailer.send(letter)
        except MailError:
            log.warning("notice %s: mail failed; it is tried again next round", note_id, exc_info=True)
            continue
        sent.append(note_id)
    if sent:
        with db.transaction() as s:
            s.execute(sa.update(Notification).where(Notification.id.in_(sent)).values(emailed_at=utcnow()))
    return len(sent)
