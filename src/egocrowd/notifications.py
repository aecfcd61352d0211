"""Messages to one person: shown in the app, and emailed when mail is set up.

Capabilities call :func:`notify` inside the transaction that made the news (a QC result, a review
decision, a closed campaign, a new consent version), so a notice exists exactly when its cause does.
Email goes out later, from the outbox (``emailed_at`` still empty), never inside that transaction.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from egocrowd.clock import utcnow
from egocrowd.db.models import Notification


def notify(
    session: Session, user_id: int, kind: str, subject: str, body: str = "", link: str | None = None
) -> Notification:
    """Queue one notice for ``user_id``. ``link`` is a path on this site (``/clips/12``)."""
    note = Notification(user_id=user_id, kind=kind, subject=subject[:200], body=body, link=link, created_at=utcnow())
    session.add(note)
    return note
