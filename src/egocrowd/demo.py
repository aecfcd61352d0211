"""Seed data for `egocrowd demo`: one lab, realistic campaigns, one user per role."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import consent
from egocrowd.accounts import service as accounts
from egocrowd.blobs import Blobs
from egocrowd.campaigns import service as campaigns
from egocrowd.campaigns.schema import CampaignIn
from egocrowd.db.models import Campaign, Clip, ClipStatus, DeidStatus, Derivative, Role, User
from egocrowd.labels import tasks
from egocrowd.pay import budgets, payouts, rates

CONSENT_FAMILY = "egocrowd-worker"
CONSENT_VERSION = "egocrowd-worker-1"  # revision 1, its original (English) text; "egocrowd-worker-1-fr" in French
CONSENT_TEXT = """\
# Recording consent for egocrowd contributors

1. **What you record.** You film your own hands doing household tasks with a phone worn on your head. Keep other people out of the frame when you can. Faces of bystanders are blurred before anyone else sees a clip.

2. **Who receives it.** Each campaign names its buyer. Clips you submit to a campaign may be delivered to that buyer under the data-use terms shown on the campaign.

3. **Your choices.** The scopes you tick below are recorded with a fingerprint of this exact text.

4. **Withdrawal.** You may withdraw at any time. Withdrawal stops new use at once: clips you recorded are left out of every dataset release made after you withdraw, and buyers of earlier releases are told which clips to delete.

5. **Pay.** Accepted clips are paid at the rate shown on the campaign. Rejected clips come with reasons.
"""
SCOPES: list[dict[str, object]] = [
    {"id": "record_hands", "label": "Record my hands and surroundings for the campaigns I join", "required": True},
    {"id": "face_visible", "label": "My own face may appear unblurred (e.g. in a mirror)"},
    {"id": "audio_kept", "label": "Keep the audio track"},
    {"id": "commercial_use", "label": "Allow commercial use by buyers"},
    {"id": "redistribution", "label": "Allow buyers to share the clips further (e.g. in a public dataset)"},
]
CONSENT_TEXT_FR = """\
# Consentement à l'enregistrement pour les contributeurs d'egocrowd

1. **Ce que vous filmez.** Vous filmez vos propres mains pendant des tâches ménagères, avec un téléphone porté sur la tête. Laissez les autres personnes hors du cadre quand vous le pouvez. Les visages des passants sont floutés avant que quiconque ne voie une vidéo.

2. **Qui la reçoit.** Chaque campagne nomme son acheteur. Les vidéos que vous envoyez à une campagne peuvent être livrées à cet acheteur selon les conditions d'utilisation affichées sur la campagne.

3. **Vos choix.** Les autorisations que vous cochez ci-dessous sont enregistrées avec l'empreinte de ce texte exact.

4. **Retrait.** Vous pouvez retirer votre consentement à tout moment. Le retrait arrête aussitôt toute nouvelle utilisation : vos vidéos sont exclues de toute publication de données faite après votre retrait, et les acheteurs des publications antérieures apprennent quelles vidéos supprimer.

5. **Paiement.** Les vidéos acceptées sont payées au tarif affiché sur la campagne. Les vidéos refusées sont accompagnées de leurs raisons.
"""
SCOPES_FR: list[dict[str, object]] = [
    {
        "id": "record_hands",
        "label": "Filmer mes mains et ce qui m'entoure pour les campagnes que je rejoins",
        "required": True,
    },
    {"id": "face_visible", "label": "Mon propre visage peut apparaître sans flou (par exemple dans un miroir)"},
    {"id": "audio_kept", "label": "Garder la piste audio"},
    {"id": "commercial_use", "label": "Autoriser l'usage commercial par les acheteurs"},
    {
        "id": "redistribution",
        "label": "Autoriser les acheteurs à partager les vidéos (par exemple dans un jeu de données public)",
    },
]

USERS = [  # (email, password, role, organization)
    ("admin@demo.egocrowd", "demo-admin-password", Role.admin, None),
    ("lab@demo.egocrowd", "demo-lab-password", Role.requester, "Open Robotics Lab"),
    ("reviewer@demo.egocrowd", "demo-reviewer-password", Role.reviewer, None),
    ("worker@demo.egocrowd", "demo-worker-password", Role.worker, None),
]

KITCHEN_VERBS = ["take", "put", "open", "close", "pour", "fold", "unfold", "twist", "hold", "wipe"]
KITCHEN_NOUNS = ["shirt", "towel", "jar", "lid", "cup", "glass", "bottle", "water", "table", "drawer"]

CAMPAIGNS = [
    dict(
        title="Fold a T-shirt on a table",
        instructions="Lay a T-shirt flat on a table, then fold it in thirds and in half. Start with the "
        "shirt crumpled; keep both hands in view. One shirt per clip.",
        requirements={"min_duration_s": 20, "max_duration_s": 90},
        target_clips=200,
        pay_cents=150,
        expected_minutes=4,
        buyer_name="Open Robotics Lab — humanoid manipulation team",
        # platform reviewers earn 0.10 a decision (pay.reviews)
        review={"reviewers": "platform", "sample_fraction": 1.0, "auto_accept_days": 3, "pay_cents": 10},
    ),
    dict(
        title="Open a screw-top jar",
        instructions="Pick up a closed jar, twist the lid off, put the lid down, and put the jar back. "
        "Use a real jar from your kitchen; film from your forehead.",
        requirements={"min_duration_s": 10, "max_duration_s": 45},
        target_clips=300,
        pay_cents=100,
        expected_minutes=3,
        buyer_name="Open Robotics Lab — dexterous hands group",
        # action labels on its accepted clips (#10): three annotators each, gold mixed in
        annotation={"enabled": True, "per_clip": 3, "gold_rate": 0.1, "min_agreement": 0.6},
    ),
    dict(
        title="Pour water from a bottle into a glass",
        instructions="Take a bottle, open it, pour water into a glass until it is about half full, close "
        "the bottle and put it down. Do it over a sink or a towel.",
        requirements={"min_duration_s": 15, "max_duration_s": 60},
        target_clips=150,
        pay_cents=120,
        expected_minutes=3,
        buyer_name="Open Robotics Lab — household tasks benchmark",
    ),
]


#: qualified annotators (#10): with the reviewer they can label the demo's accepted clips at once
ANNOTATORS = [(f"annotator{i}@demo.egocrowd", f"demo-annotator{i}-password") for i in (1, 2, 3)]
#: accepted clips of the jar campaign, ready for annotation (a generated video: a moving lid)
DEMO_CLIPS = 3


def seed(session: Session, blobs: Blobs | None = None) -> list[tuple[str, str, str]]:
    """Idempotent: returns the demo logins (email, password, role). With ``blobs``, the jar
    campaign also gets accepted clips waiting for annotation."""
    if session.scalar(sa.select(User.id).where(User.email == USERS[0][0])) is None:
        admin = None
        for email, password, role, org_name in USERS:
            org = accounts.get_or_create_organization(session, org_name, admin) if org_name else None
            user = accounts.create_user(
                session,
                email=email,
                password=password,
                display_name=email.split("@")[0],
                role=role,
                organization=org,
                country="KE" if role is Role.worker else None,
                actor=admin,
                email_verified=True,
            )
            admin = admin or user
        for language, title, text, scopes, revision in (
            ("en", "Recording consent", CONSENT_TEXT, SCOPES, None),
            ("fr", "Consentement à l'enregistrement", CONSENT_TEXT_FR, SCOPES_FR, 1),
        ):
            doc = consent.create_draft(
                session,
                admin,
                family=CONSENT_FAMILY,
                title=title,
                body=text,
                scopes=scopes,
                language=language,
                revision=revision,
            )
            consent.publish(session, admin, doc.version)
        lab = session.scalars(sa.select(User).where(User.email == USERS[1][0])).one()  # seeded just above
        assert admin is not None  # the first of USERS
        for spec in CAMPAIGNS:
            data = CampaignIn(
                taxonomy={"verbs": KITCHEN_VERBS, "nouns": KITCHEN_NOUNS},
                consent_version=CONSENT_VERSION,
                data_use={"train": True, "commercial": True},
                **spec,
            )
            c = campaigns.create_campaign(session, lab, data)
            # a campaign opens only with its target funded: the admin records the lab's deposit
            budgets.record_deposit(
                session,
                c,
                budgets.budget(session, c).short,
                admin,
                reason="Demo deposit",
                idempotency_key=f"demo:deposit:{c.id}",
            )
            campaigns.transition(session, lab, c.id, "open")
        _seed_annotation(session, admin, blobs)
        _seed_release(session, blobs)
        # payouts (#11): the demo worker is paid through PayPal; /admin/payouts makes a batch of their balance
        worker = session.scalars(sa.select(User).where(User.email == USERS[3][0])).one()
        payouts.add_method(session, worker, provider="paypal", account_ref=worker.email, currency="USD")
        reviewer = session.scalars(sa.select(User).where(User.email == USERS[2][0])).one()  # paid per decision
        payouts.add_method(session, reviewer, provider="paypal", account_ref=reviewer.email, currency="USD")
        # fair pay (#11): the demo workers live in Kenya; an exchange rate shows their pay in shillings
        rates.set_rate(session, admin, "USD", "KES", "129.50", "Demo figure: set a real one on /admin/pay")
    return [(e, p, r.value) for e, p, r, _ in USERS] + [(e, p, "annotator") for e, p in ANNOTATORS]


def _seed_annotation(session: Session, admin: User | None, blobs: Blobs | None) -> None:
    """Three qualified annotators; with ``blobs``, accepted clips of the jar campaign open for them."""
    reviewer = session.scalars(sa.select(User).where(User.email == USERS[2][0])).one()
    for email, password in ANNOTATORS:
        person = accounts.create_user(
            session,
            email=email,
            password=password,
            display_name=email.split("@")[0],
            role=Role.worker,
            country="KE",
            actor=admin,
            email_verified=True,
        )
        tasks.grant(session, reviewer, person.id, note="demo")
    if blobs is None:
        return
    import tempfile  # the demo's clip is made once, here; nothing else needs these
    from pathlib import Path

    import numpy as np

    from egocrowd.media.probe import probe  # PyAV: only when seeding clips
    from egocrowd.media.testmedia import write_video

    worker = session.scalars(sa.select(User).where(User.email == USERS[3][0])).one()
    jar = session.scalars(sa.select(Campaign).where(Campaign.title == CAMPAIGNS[1]["title"])).one()
    seconds, fps, (w, h) = 8, 10, (320, 240)
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(DEMO_CLIPS):
            frames = []
            for i in range(seconds * fps):
                f = np.full((h, w, 3), 60 + 30 * n, np.uint8)
                x = int((w - 60) * i / (seconds * fps))  # a "lid" crossing the picture
                f[h // 3 : h // 3 + 60, x : x + 60] = (230, 200, 60)
                frames.append(f)
            ref = blobs.put_file(write_video(Path(tmp) / f"demo-{n}.mp4", frames, fps, faststart=True))
            clip = Clip(
                campaign_id=jar.id,
                worker_id=worker.id,
                source_ref=f"demo:{n}:{ref.sha256[:16]}",
                sha256=ref.sha256,
                size=ref.size,
                original_name=f"jar-{n + 1}.mp4",
                client_meta={},
                status=ClipStatus.accepted,
                # what the probe stage would store: the clip page shows its picture size and turn
                probe=probe(blobs.local_path(ref.sha256)).to_dict(),
                deid_status=DeidStatus.clean,
            )
            session.add(clip)
            session.flush()
            # nobody in it: the de-identified video is the same bytes
            derived = Derivative(
                clip_id=clip.id,
                kind="deid",
                sha256=ref.sha256,
                size=ref.size,
                source_sha256=ref.sha256,
                stage_version="demo",
                summary={"frames": seconds * fps, "seconds": seconds},
            )
            session.add(derived)
            session.flush()
            clip.derived_id = derived.id
            budgets.pay_accepted_clip(session, clip, admin)  # accepted clips are paid (the budget covers them)
            tasks.open_annotation(session, clip)


def _seed_release(session: Session, blobs: Blobs | None) -> None:
    """Releases (#12): the demo worker signed the consent the jar clips were recorded under (with
    commercial use, which the demo campaigns ask for), so those accepted clips are eligible; the lab
    cuts one small release of them. It is built by the server's worker in its first round (or by
    `egocrowd release build`): seeding stays fast."""
    if blobs is None:
        return
    from egocrowd.releases import service as releases  # only when seeding clips
    from egocrowd.releases.schema import ReleaseIn

    worker = session.scalars(sa.select(User).where(User.email == USERS[3][0])).one()
    record = consent.sign(session, worker, CONSENT_VERSION, ["record_hands", "commercial_use"])
    for clip in session.scalars(sa.select(Clip).where(Clip.worker_id == worker.id, Clip.consent_record_id.is_(None))):
        clip.consent_record_id = record.id
    lab = session.scalars(sa.select(User).where(User.email == USERS[1][0])).one()
    releases.create_release(
        session,
        lab,
        ReleaseIn(
            name="jar-opening",
            title="Opening screw-top jars (demo)",
            description="Accepted, de-identified clips of the demo's jar campaign.",
            licence={
                "name": "Demo research and commercial licence",
                "terms": "For trying egocrowd out: train and evaluate models, commercially too; do not redistribute.",
                "uses": ["training", "commercial"],
            },
        ),
    )
