"""Messages to one person: shown in the app, and emailed when mail is set up.

Capabilities call :func:`notify` inside the transaction that made the news (a QC result, a review
decision, a closed campaign, a new consent version), so a notice exists exactly when its cause does.
Email goes out later, from the outbox (``emailed_at`` still empty), never inside that transaction.

Notices speak their recipient's language (issue #15): callers pass English msgids (``N_``-marked
literals with ``{name}`` placeholders) and ``params``; :func:`notify` translates them in the
recipient's language and time zone, fills the placeholders, and stores the finished text (so the
notice reads the same on the page and in the email, whatever the language of whoever caused it).
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, object_session

from egocrowd import i18n
from egocrowd.clock import utcnow
from egocrowd.db import Database
from egocrowd.db.models import Notification, User
from egocrowd.errors import NotFound
from egocrowd.mail import Letter, Mailer, MailError, make_mailer
from egocrowd.settings import Settings

log = logging.getLogger("egocrowd.notifications")
_ONLY_PLACEHOLDER = re.compile(r"\{\w+\}")


#: a notice's body: a msgid, ``(msgid, params)``, or a list of them
Body = str | tuple[str, dict[str, Any]] | list[str] | list[str | tuple[str, dict[str, Any]]]


def notify(
    session: Session,
    user_id: int,
    kind: str,
    subject: str,
    body: Body = "",
    link: str | None = None,
    *,
    params: dict[str, Any] | None = None,
    separator: str = "\n\n",
) -> Notification:
    """Queue one notice for ``user_id``. ``subject`` and ``body``: English msgids (marked ``N_``),
    translated here into the recipient's language, their ``{name}`` placeholders filled from
    ``params`` afterwards (times, numbers and money among them written the recipient's way; a
    callable is called, in the recipient's language, for anything else). A body of several
    sentences is a list of msgids joined by ``separator`` (empty ones left out); an item may be
    ``(msgid, its own params)``. ``link`` is a path on this site (``/clips/12``)."""
    user = session.get(User, user_id)
    with i18n.using(user.language if user else None, user.time_zone if user else None):
        values = {k: _shown(v) for k, v in (params or {}).items()}
        subject_text = _text(subject, values, separator)
        body_text = _text(body, values, separator)
    note = Notification(
        user_id=user_id, kind=kind, subject=subject_text[:200], body=body_text, link=link, created_at=utcnow()
    )
    session.add(note)
    return note


def _text(msg: Any, values: dict[str, str], separator: str) -> str:
    if isinstance(msg, list):
        return separator.join(t for t in (_text(m, values, separator) for m in msg) if t)
    if isinstance(msg, tuple):
        text, own = msg
        return _text(text, {**values, **{k: _shown(v) for k, v in own.items()}}, separator)
    if not msg:
        return ""
    if _ONLY_PLACEHOLDER.fullmatch(msg):  # text that is all a param (a reason someone typed): no gettext
        return str(msg.format(**values))
    return i18n.gettext(msg).format(**values) if values else i18n.gettext(msg)


def _shown(value: Any) -> str:
    """A placeholder's value as the recipient's language writes it."""
    if callable(value):
        return str(value())
    if isinstance(value, datetime):
        return i18n.when(value)
    if isinstance(value, date):
        return i18n.day(value)  # type: ignore[arg-type]
    if isinstance(value, int):  # ids and counts: "clip 1234", never "clip 1,234"
        return str(value)
    if isinstance(value, float | Decimal):
        return i18n.number(value)
    if hasattr(value, "shown"):  # pay.money.Money (a room above: known by its manners, not imported)
        return str(value.shown())
    return str(value)


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
    """The email of a notice (already in its recipient's language) with its greeting and footer in it too."""
    link = f"\n\n{base_url}{note.link}" if note.link else ""
    notices = f"{base_url}/notifications"
    with i18n.using(user.language, user.time_zone):
        hello = i18n.tr("Hello {name},", name=user.display_name)
        all_notices = i18n.tr("All your notices: {link}", link=notices)
    return Letter(user.email, note.subject, f"{hello}\n\n{note.body or note.subject}{link}\n\n{all_notices}\n")


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
