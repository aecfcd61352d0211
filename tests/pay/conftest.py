"""A small set of books: a lab with a campaign, an admin, a reviewer and workers, as plain rows (the
ledger needs no HTTP). ``Books.new_campaign`` makes a fresh campaign and workers, so that Hypothesis
examples sharing one database never see each other's accounts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from egocrowd.db.models import Campaign, Clip, Organization, Role, User

_n = itertools.count()


@dataclass
class Books:
    db: object
    admin_id: int
    reviewer_id: int

    def user(self, s, role: Role = Role.worker) -> User:
        i = next(_n)
        u = User(email=f"p{i}@pay.example", display_name=f"p{i}", password_hash="-", role=role)
        s.add(u)
        s.flush()
        return u

    def new_campaign(self, s, *, currency: str = "USD", pay_cents: int = 150) -> Campaign:
        i = next(_n)
        org = Organization(name=f"Pay lab {i}")
        s.add(org)
        s.flush()
        c = Campaign(
            organization_id=org.id,
            created_by=self.admin_id,
            title=f"Fold shirts {i}",
            instructions="Fold.",
            target_clips=100,
            pay_cents=pay_cents,
            currency=currency,
            expected_minutes=3.0,
            buyer_name="A lab",
            consent_version="v1",
        )
        s.add(c)
        s.flush()
        return c

    def clip(self, s, campaign: Campaign, worker: User) -> Clip:
        i = next(_n)
        clip = Clip(
            campaign_id=campaign.id,
            worker_id=worker.id,
            source_ref=f"test:{i}",
            sha256=f"{i:064x}",
            size=1,
            original_name="c.mp4",
        )
        s.add(clip)
        s.flush()
        return clip

    def admin(self, s) -> User:
        return s.get(User, self.admin_id)

    def reviewer(self, s) -> User:
        return s.get(User, self.reviewer_id)


@pytest.fixture
def books(db) -> Books:
    with db.transaction() as s:
        admin = User(email="admin@pay.example", display_name="admin", password_hash="-", role=Role.admin)
        reviewer = User(email="rev@pay.example", display_name="rev", password_hash="-", role=Role.reviewer)
        s.add_all([admin, reviewer])
        s.flush()
        return Books(db, admin.id, reviewer.id)
