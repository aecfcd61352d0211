"""Robot evaluations by the crowd (issue #19, docs/evaluations.md): a lab registers policies under a
campaign; its workers judge **blind A/B battles** (one instruction given to two anonymised policies:
which did better, or a tie, and why), claimed under a lease and paid per verdict like other work.

Scheduling is informative rather than uniform: the next pair is drawn with probability proportional
to the Fisher information of one more comparison under the current Bradley–Terry fit, p(1 − p),
shared among the battles the pair already has (÷ (1 + n)). Close, little-compared pairs come first;
a pair whose order is already plain comes rarely. **Gold battles** (pairs whose better policy the lab
knows) are mixed in unmarked at ``gold_rate`` and measure each evaluator. The ranking is
egocrowd.bench's (Bradley–Terry with bootstrap intervals, ties sharing a rank); each adjacent pair's
head-to-head battles run through the anytime-valid sequential test, and the ranking is **settled**
when every adjacent pair is.
"""

from __future__ import annotations

import copy
import hashlib
import random
import secrets
import threading
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from pydantic import Field, model_validator
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.bench.sequential import SequentialTest
from egocrowd.campaigns.levels import holds_qualification
from egocrowd.campaigns.service import get_campaign, get_managed_campaign
from egocrowd.clock import db_now
from egocrowd.db.models import (
    Battle,
    BattleStatus,
    Campaign,
    CampaignStatus,
    EvalPolicy,
    Evaluation,
    User,
)
from egocrowd.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from egocrowd.inputs import InputModel
from egocrowd.pay import evaluations as pay

#: what a verdict gives policy A (B gets the rest): a tie is half a win each
A_SHARE = {"a": 1.0, "b": 0.0, "tie": 0.5}

#: a ceiling on policies per evaluation: the ranking's bootstrap is k², and nobody judges 50 robots
MAX_POLICIES = 50
MAX_TASKS = 100


class TaskIn(InputModel):
    task: str = Field(min_length=1, max_length=200)
    prompt: str = Field("", max_length=2000, description="A suggestion of what to ask the robots")


class EvaluationIn(InputModel):
    tasks: list[TaskIn] = Field(default_factory=list, max_length=MAX_TASKS)
    environments: list[str] = Field(default_factory=list, max_length=MAX_TASKS)
    pay_cents: int = Field(0, ge=0, le=100_000, description="Paid per verdict, in the campaign's currency")
    session_hour_cents: int = Field(
        0,
        ge=0,
        le=100_000,
        description="Paid per hour of an accepted field session, in the campaign's currency (0: sessions unpaid)",
    )
    session_max_hours: int = Field(
        2, ge=1, le=24, description="The most hours one field session is paid for, whatever its log says"
    )
    gold_rate: float = Field(0.1, ge=0.0, le=0.5)
    lease_minutes: int = Field(30, ge=5, le=24 * 60)
    max_open: int = Field(1, ge=1, le=5, description="Battles one evaluator may hold at once")
    alpha: float = Field(0.05, ge=0.001, le=0.2, description="Error level of the sequential test")

    @model_validator(mode="after")
    def _environments_fit(self) -> EvaluationIn:
        if any(not e or len(e) > 100 for e in self.environments):
            raise ValueError("each environment is 1 to 100 characters")
        return self


class PolicyIn(InputModel):
    name: str = Field(min_length=1, max_length=100, description="The lab's name for it; evaluators never see it")
    kind: Literal["http", "websocket", "physical"]
    endpoint: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _endpoint_fits_kind(self) -> PolicyIn:
        schemes = {"http": ("http://", "https://"), "websocket": ("ws://", "wss://")}.get(self.kind)
        if schemes is None:
            if self.endpoint:
                raise ValueError("a physical robot has no endpoint")
        elif not self.endpoint or not self.endpoint.startswith(schemes):
            raise ValueError(f"a {self.kind} policy needs an endpoint starting with {' or '.join(schemes)}")
        return self


class GoldPairIn(InputModel):
    better: int = Field(ge=1)
    worse: int = Field(ge=1)


class VerdictIn(InputModel):
    verdict: Literal["a", "b", "tie"]
    reason: str = Field(min_length=3, max_length=2000, description="Why: what each robot did")
    instruction: str = Field(min_length=1, max_length=2000, description="What you asked both robots")
    person: str | None = Field(None, max_length=100, description="Who gave the instruction, in a household")
    environment: str | None = Field(None, max_length=100)


class Recent:
    """The last few results of a costly, pure computation, keyed by everything it depends on: the
    lab's page polls its ranking every 15 s (a bootstrap of hundreds of rounds) and re-scores the
    long sessions on every view, while nothing changed in between. Callers get their own copy."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return copy.deepcopy(self._values[key])
        value = compute()  # outside the lock: two first askers may both compute, the same value
        with self._lock:
            self._values[key] = value
            while len(self._values) > self._size:
                self._values.popitem(last=False)
        return copy.deepcopy(value)


_RANKINGS = Recent()


def _digest(*parts: Any) -> str:
    """A short key for a long input (100,000 battles would make a large one)."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


# --- the lab's side -----------------------------------------------------------------------------
def create(session: Session, actor: User, campaign_id: int, data: EvaluationIn) -> Evaluation:
    campaign = get_managed_campaign(session, actor, campaign_id)
    if campaign.status is CampaignStatus.closed:
        raise Conflict("A closed campaign takes no evaluation.", code="evaluation.campaign_closed")
    if session.scalar(sa.select(Evaluation.id).where(Evaluation.campaign_id == campaign.id)) is not None:
        raise Conflict(f"Campaign {campaign.id} has an evaluation already.", code="evaluation.exists")
    ev = Evaluation(
        campaign_id=campaign.id,
        tasks=[t.model_dump() for t in data.tasks],
        environments=list(data.environments),
        pay_cents=data.pay_cents,
        session_hour_cents=data.session_hour_cents,
        session_max_hours=data.session_max_hours,
        gold_rate=data.gold_rate,
        gold=[],
        lease_minutes=data.lease_minutes,
        max_open=data.max_open,
        alpha=data.alpha,
        created_by=actor.id,
        created_at=db_now(session),
    )
    session.add(ev)
    session.flush()
    audit.record(session, actor, "evaluation.created", ev, {"campaign_id": campaign.id, **data.model_dump()})
    return ev


def update(session: Session, actor: User, campaign_id: int, data: EvaluationIn) -> Evaluation:
    """Change the evaluation's settings (the campaign form); battles already judged and sessions
    already accepted keep their pay."""
    ev = of_campaign(session, actor, campaign_id, manage=True)
    ev.tasks = [t.model_dump() for t in data.tasks]
    ev.environments = list(data.environments)
    for name in (
        "pay_cents",
        "session_hour_cents",
        "session_max_hours",
        "gold_rate",
        "lease_minutes",
        "max_open",
        "alpha",
    ):
        setattr(ev, name, getattr(data, name))
    audit.record(session, actor, "evaluation.updated", ev, data.model_dump())
    return ev


def of_campaign(session: Session, user: User | None, campaign_id: int, *, manage: bool = False) -> Evaluation:
    """The campaign's evaluation (``manage``: only for those who manage the campaign)."""
    campaign = (get_managed_campaign if manage else get_campaign)(session, user, campaign_id)
    ev = session.scalar(sa.select(Evaluation).where(Evaluation.campaign_id == campaign.id))
    if ev is None:
        raise NotFound(f"Campaign {campaign_id} has no evaluation.", code="evaluation.not_found")
    return ev


def for_campaign(session: Session, campaign: Campaign) -> Evaluation | None:
    """The evaluation of a campaign the caller may already see, if it has one (the campaign page)."""
    return session.scalar(sa.select(Evaluation).where(Evaluation.campaign_id == campaign.id))


def active_battles(session: Session, user: User, ev: Evaluation | None = None) -> list[Battle]:
    """The battles ``user`` holds now (lease running), oldest first: in ``ev``, or in any evaluation."""
    q = sa.select(Battle).where(
        Battle.evaluator_id == user.id,
        Battle.status == BattleStatus.active,
        Battle.lease_expires_at > db_now(session),
    )
    if ev is not None:
        q = q.where(Battle.evaluation_id == ev.id)
    return list(session.scalars(q.order_by(Battle.id)))


def policies(session: Session, ev: Evaluation, *, live_only: bool = False) -> list[EvalPolicy]:
    q = sa.select(EvalPolicy).where(EvalPolicy.evaluation_id == ev.id).order_by(EvalPolicy.id)
    if live_only:
        q = q.where(EvalPolicy.retired_at.is_(None))
    return list(session.scalars(q))


def add_policy(session: Session, actor: User, campaign_id: int, data: PolicyIn) -> EvalPolicy:
    ev = of_campaign(session, actor, campaign_id, manage=True)
    if len(policies(session, ev)) >= MAX_POLICIES:
        raise Conflict(f"An evaluation holds at most {MAX_POLICIES} policies.", code="evaluation.too_many_policies")
    if session.scalar(sa.select(EvalPolicy.id).where(EvalPolicy.evaluation_id == ev.id, EvalPolicy.name == data.name)):
        raise Conflict(f"There is a policy named {data.name!r} already.", code="evaluation.policy_exists")
    p = EvalPolicy(
        evaluation_id=ev.id, name=data.name, kind=data.kind, endpoint=data.endpoint, created_at=db_now(session)
    )
    session.add(p)
    session.flush()
    audit.record(session, actor, "evaluation.policy_added", ev, {"policy_id": p.id, **data.model_dump()})
    return p


def set_gold(session: Session, actor: User, campaign_id: int, pairs: list[GoldPairIn]) -> Evaluation:
    """Replace the pairs whose better policy the lab knows (gold battles are drawn from them)."""
    ev = of_campaign(session, actor, campaign_id, manage=True)
    ids = {p.id for p in policies(session, ev)}
    for pair in pairs:
        if pair.better == pair.worse or not {pair.better, pair.worse} <= ids:
            raise InvalidInput(
                "A gold pair names two different policies of this evaluation.",
                code="evaluation.bad_gold_pair",
                better=pair.better,
                worse=pair.worse,
            )
    ev.gold = [p.model_dump() for p in pairs]
    audit.record(session, actor, "evaluation.gold_set", ev, {"gold": ev.gold})
    return ev


# --- scheduling ---------------------------------------------------------------------------------
def informative_pair(
    ids: list[int], judged: Iterable[tuple[int, int, str, int]], rng: random.Random
) -> tuple[int, int]:
    """Two of ``ids`` to compare next, drawn with probability ∝ p(1 − p)/(1 + n) (module doc), from
    the verdicts so far counted by (policy A, policy B, verdict, how many)."""
    from egocrowd.bench.ranking import fit_bt  # SciPy, ~0.8 s: not at the worker's start (housekeeping imports us)

    k = len(ids)
    at = {pid: i for i, pid in enumerate(ids)}
    wins = np.zeros((k, k))
    n = np.zeros((k, k))
    for a, b, verdict, count in judged:
        if a not in at or b not in at:
            continue  # a retired policy
        i, j = at[a], at[b]
        n[i, j] += count
        n[j, i] += count
        wins[i, j] += count * A_SHARE[verdict]
        wins[j, i] += count * (1 - A_SHARE[verdict])
    theta = fit_bt(wins) if n.any() else np.zeros(k)
    p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))  # P(i beats j)
    weight = p * (1 - p) / (1 + n)
    iu = np.triu_indices(k, 1)
    w = weight[iu]
    pick = rng.choices(range(w.size), weights=w.tolist())[0]
    return ids[int(iu[0][pick])], ids[int(iu[1][pick])]


def _verdict_counts(session: Session, ev: Evaluation) -> list[tuple[int, int, str, int]]:
    """The judged non-gold battles counted by (policy A, policy B, verdict): one grouped query per
    claim, not every battle loaded."""
    rows = session.execute(
        sa.select(Battle.policy_a_id, Battle.policy_b_id, Battle.verdict, sa.func.count())
        .where(Battle.evaluation_id == ev.id, Battle.status == BattleStatus.judged, Battle.is_gold.is_(False))
        .group_by(Battle.policy_a_id, Battle.policy_b_id, Battle.verdict)
    )
    return [(a, b, verdict or "tie", int(n)) for a, b, verdict, n in rows]


def _judged(session: Session, ev: Evaluation, *, gold: bool | None = False) -> list[Battle]:
    q = sa.select(Battle).where(Battle.evaluation_id == ev.id, Battle.status == BattleStatus.judged)
    if gold is not None:
        q = q.where(Battle.is_gold.is_(gold))
    return list(session.scalars(q.order_by(Battle.judged_at, Battle.id)))


def _open_battles(session: Session, user_id: int, ev: Evaluation, now: datetime) -> int:
    return session.execute(
        sa.select(sa.func.count())
        .select_from(Battle)
        .where(
            Battle.evaluation_id == ev.id,
            Battle.evaluator_id == user_id,
            Battle.status == BattleStatus.active,
            Battle.lease_expires_at > now,
        )
    ).scalar_one()


def new_operator_code() -> str:
    """What the lab's robot operator types to learn which policy a slot is (evaluations.serving):
    six characters without 0/O or 1/I, easy to read aloud across a room."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(6))


_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def claim(
    session: Session, user: User, campaign_id: int, *, now: datetime | None = None, rng: random.Random | None = None
) -> Battle:
    """Hand ``user`` the next battle of the campaign's evaluation (``rng``: tests pass a seeded one)."""
    now = now or db_now(session)
    rng = rng or random.SystemRandom()
    policy.require(user, "evaluation.take")
    ev = of_campaign(session, user, campaign_id)
    campaign: Campaign = ev.campaign
    if campaign.status is not CampaignStatus.open:
        raise Conflict("This campaign is not open for evaluations.", code="evaluation.not_open")
    if campaign.required_qualification and not holds_qualification(
        session, user.id, campaign.required_qualification, campaign.id
    ):
        raise Forbidden(
            "This evaluation needs a qualification you do not hold yet.",
            code="training.qualification_required",
            qualification=campaign.required_qualification,
            practise=f"/training/{campaign.required_qualification}",
        )
    session.execute(sa.select(User.id).where(User.id == user.id).with_for_update())  # one claim at a time each
    held = _open_battles(session, user.id, ev, now)
    if held >= ev.max_open:
        raise Conflict(
            f"You already hold {held} battles; judge or give one back first.",
            code="evaluation.worker_cap",
            limit=ev.max_open,
        )
    live = [p.id for p in policies(session, ev, live_only=True)]
    if len(live) < 2:
        raise Conflict("This evaluation has fewer than two policies to compare.", code="evaluation.no_battles")
    gold_pairs = [g for g in ev.gold if g["better"] in live and g["worse"] in live]
    is_gold = bool(gold_pairs) and rng.random() < ev.gold_rate
    if is_gold:
        g = rng.choice(gold_pairs)
        pair = (g["better"], g["worse"])
    else:
        pair = informative_pair(live, _verdict_counts(session, ev), rng)
    a, b = pair if rng.random() < 0.5 else pair[::-1]  # which side is A: a coin, so sides carry no hint
    task = rng.choice(ev.tasks)["task"] if ev.tasks else None
    battle = Battle(
        evaluation_id=ev.id,
        policy_a_id=a,
        policy_b_id=b,
        evaluator_id=user.id,
        status=BattleStatus.active,
        is_gold=is_gold,
        task=task,
        claimed_at=now,
        lease_expires_at=now + timedelta(minutes=ev.lease_minutes),
        operator_code=new_operator_code(),
    )
    session.add(battle)
    session.flush()
    audit.record(
        session,
        user,
        "battle.claimed",
        battle,
        {"evaluation_id": ev.id, "gold": is_gold, "lease_expires_at": battle.lease_expires_at},
    )
    return battle


def get_battle(session: Session, user: User | None, battle_id: int) -> Battle:
    """The evaluator's own battle (anyone else: not found, the battle's existence included)."""
    battle = session.get(Battle, battle_id)
    if user is None or battle is None or battle.evaluator_id != user.id:
        raise NotFound(f"No battle {battle_id}.", code="battle.not_found")
    return battle


def my_battles(session: Session, user: User, *, limit: int = 100) -> list[Battle]:
    policy.require(user, "evaluation.take")
    return list(
        session.scalars(sa.select(Battle).where(Battle.evaluator_id == user.id).order_by(Battle.id.desc()).limit(limit))
    )


def _active(session: Session, user: User, battle_id: int, now: datetime) -> Battle:
    battle = get_battle(session, user, battle_id)
    session.execute(sa.select(Battle.id).where(Battle.id == battle.id).with_for_update())
    session.refresh(battle)
    if battle.status is not BattleStatus.active:
        raise Conflict(
            f"Battle {battle.id} is {battle.status.value}.", code="battle.not_active", state=battle.status.value
        )
    if battle.lease_expires_at <= now:
        raise Gone("The time for this battle ran out; claim a new one.", code="battle.lease_expired")
    return battle


def judge(session: Session, user: User, battle_id: int, data: VerdictIn, *, now: datetime | None = None) -> Battle:
    """Record the verdict, once, while the lease runs; pay for it (owed when the budget is short)."""
    now = now or db_now(session)
    battle = _active(session, user, battle_id, now)
    ev = session.get_one(Evaluation, battle.evaluation_id)
    ran = battle.rollouts or {}
    # A battle played here (its robots run from the page) is judged once both have run, on the
    # instruction they heard; one judged outside (no runs recorded) says what it instructed.
    missing = [slot for slot in ("a", "b") if slot not in ran]
    if ran and missing:
        raise Conflict(f"Run robot {missing[0].upper()} before judging.", code="battle.slot_missing", slot=missing[0])
    if ran.get("instruction"):
        data = data.model_copy(update={"instruction": ran["instruction"]})
    if data.environment and ev.environments and data.environment not in ev.environments:
        raise InvalidInput(
            f"{data.environment!r} is not one of this evaluation's environments.",
            code="battle.unknown_environment",
            environments=list(ev.environments),
        )
    battle.status = BattleStatus.judged
    battle.judged_at = now
    battle.verdict = data.verdict
    battle.reason = data.reason
    battle.instruction = data.instruction
    battle.person = data.person
    battle.environment = data.environment
    audit.record(session, user, "battle.judged", battle, {"evaluation_id": ev.id, "verdict": data.verdict})
    pay.pay_for_verdict(session, battle, ev, None)
    return battle


def release(session: Session, user: User, battle_id: int) -> Battle:
    battle = _active(session, user, battle_id, db_now(session))
    battle.status = BattleStatus.released
    audit.record(session, user, "battle.released", battle, {"evaluation_id": battle.evaluation_id})
    return battle


def expire_leases(session: Session, now: datetime | None = None) -> int:
    """Battles whose lease ran out (housekeeping)."""
    now = now or db_now(session)
    ids = list(
        session.scalars(
            sa.select(Battle.id).where(Battle.status == BattleStatus.active, Battle.lease_expires_at <= now)
        )
    )
    if ids:
        session.execute(
            sa.update(Battle)
            .where(Battle.id.in_(ids), Battle.status == BattleStatus.active)
            .values(status=BattleStatus.expired)
            .execution_options(synchronize_session=False)
        )
        for battle_id in ids:
            audit.record(session, None, "battle.expired", battle_id, {}, entity_type="battle")
    return len(ids)


# --- results ------------------------------------------------------------------------------------
@dataclass
class Results:
    ranking: dict[str, Any]
    settled: bool
    adjacent: list[dict[str, Any]] = field(default_factory=list)
    by_person: dict[str, dict[str, float]] = field(default_factory=dict)
    by_environment: dict[str, dict[str, float]] = field(default_factory=dict)
    evaluators: list[dict[str, Any]] = field(default_factory=list)
    gold_accuracy: float | None = None
    agreement: float | None = None
    judged: int = 0
    gold_judged: int = 0


def ranking_svg(r: Results) -> str:
    """The ranking's interval plot, drawn by egocrowd.bench exactly as its reports draw theirs."""
    from egocrowd.bench import svg

    rows = r.ranking.get("ranking", [])
    return svg.forest(
        [(row["policy"], row["rating"], row["low"], row["high"]) for row in rows],
        xlabel="Bradley–Terry rating",
        title="Ranking",
    )


def _win_shares(battles: list[Battle], names: dict[int, str]) -> dict[str, float]:
    """Each policy's share of wins (a tie is half) in these battles."""
    won: defaultdict[str, float] = defaultdict(float)
    met: Counter[str] = Counter()
    for b in battles:
        share = A_SHARE[b.verdict or "tie"]
        won[names[b.policy_a_id]] += share
        won[names[b.policy_b_id]] += 1 - share
        met[names[b.policy_a_id]] += 1
        met[names[b.policy_b_id]] += 1
    return {name: won[name] / met[name] for name in sorted(met)}


def results(session: Session, user: User, campaign_id: int, *, rounds: int = 1000, seed: int = 0) -> Results:
    """The live ranking with intervals, whether it is settled, per person and per environment, and
    how reliable the evaluators are (gold accuracy, agreement on the same pair)."""
    from egocrowd.bench.ranking import Battle as RankedBattle  # SciPy, ~0.8 s (see informative_pair)
    from egocrowd.bench.ranking import rank_battles

    ev = of_campaign(session, user, campaign_id, manage=True)
    names = {p.id: p.name for p in policies(session, ev)}
    judged = _judged(session, ev)
    gold = _judged(session, ev, gold=True)
    battles = [RankedBattle(names[b.policy_a_id], names[b.policy_b_id], b.verdict or "tie") for b in judged]
    ranking: dict[str, Any] = (
        _RANKINGS.get(_digest(battles, rounds, seed), lambda: rank_battles(battles, rounds=rounds, seed=seed))
        if battles
        else {"ranking": [], "battles": 0}
    )
    # each adjacent pair's head-to-head battles, in the order they were judged, through the sequential test
    adjacent = []
    rows: list[dict[str, Any]] = ranking["ranking"]
    for upper, lower in zip(rows, rows[1:], strict=False):
        test = SequentialTest(alpha=ev.alpha)
        for b in judged:
            pair = (names[b.policy_a_id], names[b.policy_b_id])
            if set(pair) != {upper["policy"], lower["policy"]}:
                continue
            share = A_SHARE[b.verdict or "tie"]
            upper_share = share if pair[0] == upper["policy"] else 1 - share
            test.update(upper_share, 1 - upper_share)
        adjacent.append(
            {"upper": upper["policy"], "lower": lower["policy"], "battles": test.n, "decision": test.decision}
        )
    settled = bool(adjacent) and all(a["decision"] != "continue" for a in adjacent)

    by_person: dict[str, list[Battle]] = defaultdict(list)
    by_env: dict[str, list[Battle]] = defaultdict(list)
    for b in judged:
        if b.person:
            by_person[b.person].append(b)
        if b.environment:
            by_env[b.environment].append(b)

    # evaluators: gold accuracy (a tie on a gold pair is a miss) and agreement with others on the same pair
    right: Counter[int] = Counter()
    seen: Counter[int] = Counter()
    for b in gold:
        better = next(
            (g["better"] for g in ev.gold if {g["better"], g["worse"]} == {b.policy_a_id, b.policy_b_id}), None
        )
        if better is None:
            continue  # a pair the lab no longer calls gold
        seen[b.evaluator_id] += 1
        right[b.evaluator_id] += int(
            (b.verdict == "a" and b.policy_a_id == better) or (b.verdict == "b" and b.policy_b_id == better)
        )
    per_pair: dict[tuple[int, int], list[tuple[int, str]]] = defaultdict(list)
    for b in judged:
        lo, hi = sorted((b.policy_a_id, b.policy_b_id))
        said = b.verdict if b.verdict == "tie" else ("lo" if (b.verdict == "a") == (b.policy_a_id == lo) else "hi")
        per_pair[(lo, hi)].append((b.evaluator_id, said or "tie"))
    agree = total = 0
    for votes in per_pair.values():
        for i in range(len(votes)):
            for j in range(i + 1, len(votes)):
                if votes[i][0] != votes[j][0]:  # two different people on the same pair
                    total += 1
                    agree += votes[i][1] == votes[j][1]
    judged_by: Counter[int] = Counter(b.evaluator_id for b in judged + gold)
    evaluators = [
        {
            "evaluator_id": uid,
            "judged": judged_by[uid],
            "gold": seen[uid],
            "gold_accuracy": right[uid] / seen[uid] if seen[uid] else None,
        }
        for uid in sorted(judged_by)
    ]
    return Results(
        ranking=ranking,
        settled=settled,
        adjacent=adjacent,
        by_person={k: _win_shares(v, names) for k, v in sorted(by_person.items())},
        by_environment={k: _win_shares(v, names) for k, v in sorted(by_env.items())},
        evaluators=evaluators,
        gold_accuracy=sum(right.values()) / sum(seen.values()) if seen else None,
        agreement=agree / total if total else None,
        judged=len(judged),
        gold_judged=len(gold),
    )
