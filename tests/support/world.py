"""A small platform world built through the real API: the consent published, a requester of
"Lab A" and a worker who signed it. Tests open campaigns and claim slots on top of it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from egocrowd import clips
from tests.platform.helpers import Actor, claim, make_user, open_campaign, publish_consent, sign


@dataclass
class World:
    client: object
    db: object
    lab: Actor
    worker: Actor

    @classmethod
    def build(cls, client, db) -> World:
        publish_consent(db)
        world = cls(client, db, make_user(db, "requester", org="Lab A"), make_user(db, "worker"))
        sign(client, world.worker)
        return world

    def open_campaign(self, **over) -> dict:
        return open_campaign(self.client, self.lab, db=self.db, **over)

    def signed_worker(self) -> Actor:
        worker = make_user(self.db, "worker")
        sign(self.client, worker)
        return worker

    def upload_clip(self, blobs, campaign_id: int, path: Path, ref: str | None = None, *, worker: Actor | None = None):
        """A clip as a finished upload leaves it (stored, its pipeline queued), without the tus
        round trip: the Clip row (``.id``) for a file already on disk."""
        return clips.finish_upload(
            self.db,
            blobs,
            source_ref=ref or f"test:{path.name}",
            path=path,
            worker_id=(worker or self.worker).id,
            assignment_id=None,
            campaign_id=campaign_id,
            original_name=path.name,
        )

    def claim(self, campaign_id: int, worker: Actor | None = None) -> dict:
        """The assignment ``worker`` (default: the world's worker) got for a slot of that campaign."""
        r = claim(self.client, worker or self.worker, campaign_id)
        assert r.status_code == 201, r.text
        return r.json()


@contextlib.contextmanager
def table_away(db, table: str) -> Iterator[None]:
    """Make the database really fail for a moment (a missing table), like an outage would."""
    with db.engine.begin() as c:
        c.execute(sa.text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        with db.engine.begin() as c:
            c.execute(sa.text(f"ALTER TABLE {table}_away RENAME TO {table}"))


def take_budget_back(session, campaign, *, leave):
    """The lab takes its campaign's money back down to ``leave`` (a Money): the next payment finds
    the budget short and is owed (an admin's adjustment through the real ledger)."""
    from egocrowd.db.models import Role, User
    from egocrowd.pay import budgets, ledger

    admin = session.scalar(sa.select(User).where(User.role == Role.admin).limit(1))
    taken = budgets.budget(session, campaign).left - leave
    ledger.post(
        session,
        "adjustment",
        [
            ledger.Leg(ledger.campaign_account(session, campaign), -taken),
            ledger.Leg(ledger.funding_account(session, campaign.organization, taken.currency), taken),
        ],
        idempotency_key=f"take-back:{campaign.id}",
        reason="test: the lab took its money back",
        actor=admin,
    )
