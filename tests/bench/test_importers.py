from __future__ import annotations

import pytest

from egocrowd.bench.digest import build_corpus, digest_log
from egocrowd.bench.importers import digests_to_log, read_pairwise_csv, read_trials, read_trials_csv
from egocrowd.bench.metrics import ScoreConfig, compute_metrics
from egocrowd.bench.score import compare, score_digests
from egocrowd.errors import InvalidInput

TRIALS = """\ufeffModel,Task,Outcome,Duration,Person,Env,Session,Day
pi0,fold,1,30,ana,home,1,0
pi0,fold,0,20,ben,home,1,0
pi0,pour,yes,10,ana,home,2,1
pi0,pour,failure,40,,lab,3,2
rt2,fold,true,25,ana,home,1,0
"""


def test_trials_csv_with_aliases_bom_and_sessions(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(TRIALS, encoding="utf-8")
    ds = read_trials_csv(p)
    by = {d.session_id: d for d in ds}
    assert set(by) == {"pi0/1", "pi0/2", "pi0/3", "rt2/1"}
    s1 = by["pi0/1"]
    assert s1.out_success == [1, 0] and s1.out_t == [30.0, 50.0] and s1.duration == 50.0  # trials laid end to end
    assert s1.out_person == ["ana", "ben"] and s1.environment == "home"
    # person changes inside session 1: sessions pair by the other design columns, task and environment
    assert s1.pair_key == '["fold", "home"]'
    assert by["pi0/3"].out_person == ["(unattributed)"] and by["pi0/3"].deployment_day == 2.0
    m = compute_metrics(
        build_corpus([d for d in ds if d.policy == "pi0"]),
        ScoreConfig(rounds=20, min_group=1),
        ["subtask_success", "per_person"],
    )
    assert m["subtask_success"]["rate"]["value"] == pytest.approx(2 / 4)
    assert {g["group"]: g["value"] for g in m["per_person"]["groups"]} == {
        "ana": 1.0,
        "ben": 0.0,
        "(unattributed)": 0.0,
    }


def test_rows_without_session_are_their_own_clusters(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("policy,task,success\na,x,1\na,x,0\nb,x,1\n")
    assert len(read_trials_csv(p)) == 3


@pytest.mark.parametrize(
    "text,match",
    [
        ("policy,task\na,x\n", "missing column"),
        ("policy,task,success\na,x,maybe\n", "success must be"),
        ("policy,task,success,duration\na,x,1,-4\n", "duration"),
        ("policy,task,success,progress\na,x,1,abc\n", "progress must be a number"),
        ("policy,task,success\n", "no trials"),
        ("", "empty"),
    ],
)
def test_trials_csv_errors(tmp_path, text, match):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(InvalidInput, match=match) as exc:
        read_trials_csv(p)
    assert exc.value.code == "bench.bad_csv"


def test_pairwise_csv_formats(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text(
        "model_a,model_b,winner,judge\nx,y,model_a,j1\nx,y,tie (bothbad),j2\ny,z,z,j1\nz,x,b,j3\nx,z,draw,j1\n"
    )
    got = [(b.a, b.b, b.winner) for b in read_pairwise_csv(p)]
    assert got == [("x", "y", "a"), ("x", "y", "tie"), ("y", "z", "b"), ("z", "x", "b"), ("x", "z", "tie")]
    p.write_text("a,b,winner\nx,y,w\n")
    with pytest.raises(InvalidInput, match="neither"):
        read_pairwise_csv(p)
    p.write_text("a,b,winner\nx,x,a\n")
    with pytest.raises(InvalidInput, match="two different"):
        read_pairwise_csv(p)


def test_trials_convert_to_a_log_that_scores_the_same(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(
        TRIALS.replace("pi0,pour,failure,40", "pi0,pour,partial,40")
        .replace(",Day", ",Day,Progress")
        .replace(",0\n", ",0,\n")
        .replace(",1\n", ",1,\n")
        .replace(",2\n", ",2,0.25\n")
    )
    ds = read_trials_csv(p)
    log = tmp_path / "t.jsonl"
    digests_to_log(ds, log)
    back = list(digest_log(log))
    cfg = ScoreConfig(rounds=30, min_group=1)
    names = ["subtask_success", "per_person", "drift_deployment_days", "sessions"]
    a = compute_metrics(build_corpus(ds), cfg, names)
    b = compute_metrics(build_corpus(back), cfg, names)
    a["sessions"].pop("events"), b["sessions"].pop("events")  # the log adds start/end events
    a["sessions"].pop("sources"), b["sessions"].pop("sources")
    assert a == b
    assert a["subtask_success"]["progress"]["value"] == pytest.approx((1 + 0 + 1 + 0.25 + 1) / 5)


# ------------------------------------------------------------ non-finite numbers in a CSV


@pytest.mark.parametrize("col,value", [("duration", "nan"), ("duration", "inf"), ("day", "-inf"), ("day", "nan")])
def test_non_finite_csv_numbers_are_rejected(tmp_path, col, value):
    # before: duration "nan" was accepted and the scores document then failed to serialise
    # ("Out of range float values are not JSON compliant")
    p = tmp_path / "t.csv"
    p.write_text(f"policy,task,success,{col}\np,a,1,{value}\n")
    with pytest.raises(InvalidInput) as exc:
        read_trials_csv(p)
    assert exc.value.code == "bench.bad_csv"


# ------------------------------------------------------------ pairing and columns (issue #19)


def _crossed(tmp_path, header="policy,task,person,success"):
    """4 tasks × 5 people, one trial each for A and B. With p0–p2 A succeeds and B fails; with p3
    and p4 both do the same. A is better within 12 of the 20 (task, person) cells, equal elsewhere."""
    rows = []
    for t in range(4):
        for p in range(5):
            b = 0 if p < 3 else (t + p) % 2
            a = 1 if p < 3 else b
            rows += [f"A,t{t},p{p},{a}", f"B,t{t},p{p},{b}"]
    path = tmp_path / "crossed.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_trials_pair_by_every_design_column(tmp_path):
    imported = read_trials([_crossed(tmp_path)])
    assert imported.pair_columns == ["task", "person"] and imported.warnings == []
    res = compare(imported.digests, "A", "B", ScoreConfig(rounds=200))
    # 20 pairs, 12 discordant, all for A: exact p = 2 / 2^12 (hand-worked). Paired by task alone
    # (the rule before) there were 4 pairs and no 4-pair sign test can go below 2/16 = 0.125.
    assert res["pairs"] == 20
    assert res["p_value"] < 0.01
    assert res["mcnemar"] == {"a_only": 12, "b_only": 0, "p_value": pytest.approx(2 / 2**12)}
    for d in imported.digests:  # the same data paired by task alone
        d.pair_key = d.out_task[0]
    by_task = compare(imported.digests, "A", "B", ScoreConfig(rounds=200))
    assert by_task["pairs"] == 4 and by_task["p_value"] == pytest.approx(2 / 16)


def test_a_design_column_that_changes_within_a_session_is_not_used_and_is_reported(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("policy,task,person,session,success\nA,x,ana,1,1\nA,x,ben,1,0\nB,x,ana,1,1\nB,y,ana,2,1\n")
    imported = read_trials([p])
    assert imported.pair_columns == ["task"]
    assert len(imported.warnings) == 1 and f"{p}:3: person changes within a session" in imported.warnings[0]
    assert [d.pair_key for d in imported.digests] == ["x", "x", "y"]
    # nothing left to pair by: not paired, said so
    p.write_text("policy,task,session,success\nA,x,1,1\nA,y,1,0\nB,x,1,1\n")
    imported = read_trials([p])
    assert imported.pair_columns == [] and all(d.pair_key is None for d in imported.digests)
    assert "not paired" in imported.warnings[-1]


def test_a_pair_column_wins_and_two_pairs_in_one_session_are_an_error(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("policy,task,pair,session,success\nA,x,k1,1,1\nA,y,k1,1,0\nB,x,k1,1,1\n")
    assert [d.pair_key for d in read_trials([p]).digests] == ["k1", "k1"]
    p.write_text("policy,task,pair,success\nA,x,k1,1\nB,x,,1\n")
    imported = read_trials([p])
    assert [d.pair_key for d in imported.digests] == ["k1", None]
    assert imported.warnings == ["1 session(s) have a blank pair: they are not paired"]
    p.write_text("policy,task,pair,session,success\nA,x,k1,1,1\nA,y,k2,1,0\n")
    with pytest.raises(InvalidInput, match=r"t.csv:3: .*pairing is ambiguous") as exc:
        read_trials([p])
    assert exc.value.code == "bench.bad_csv"


def test_files_pair_by_the_design_columns_they_share(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("policy,task,person,success\nA,x,ana,1\nA,y,ana,0\n")
    b = tmp_path / "b.csv"
    b.write_text("policy,task,success\nB,x,1\nB,y,1\n")
    imported = read_trials([a, b])
    assert imported.pair_columns == ["task"]
    assert compare(imported.digests, "A", "B", ScoreConfig(rounds=20))["pairs"] == 2


def test_unknown_columns_are_reported_and_duration_s_is_the_time_axis(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("policy,task,success,duration_s,session,robot,Notes\nA,x,1,30,1,so100,\nA,x,0,45,1,so100,late\n")
    imported = read_trials([p])
    assert imported.warnings == [
        f"{p}: column(s) 'robot', 'notes' not recognised and not used (known: day, duration, environment, pair, "
        "person, policy, progress, seed, session, success, task)"
    ]
    (d,) = imported.digests
    assert d.out_t == [30.0, 75.0] and d.duration == 75.0  # before: duration_s ignored, every t = 0
    drift = compute_metrics(build_corpus([d]), ScoreConfig(rounds=20), ["drift_session_time"])
    assert drift["drift_session_time"]["slope"]["value"] == pytest.approx(-1 / (45 / 3600))
    p.write_text("policy,task,success,duration,duration_s\nA,x,1,3,3\n")
    with pytest.raises(InvalidInput, match="given twice"):
        read_trials([p])


def test_per_trial_rows_give_no_drift_within_a_session(tmp_path):
    # failures last longer: as one-trial sessions this used to read as a steep "significant" decline
    p = tmp_path / "t.csv"
    p.write_text(
        "policy,task,success,duration\n" + "".join(f"A,x,{i % 2},{30 + 60 * (1 - i % 2)}\n" for i in range(40))
    )
    m = compute_metrics(build_corpus(read_trials_csv(p)), ScoreConfig(rounds=50))
    assert "subtask_success" in m and "drift_session_time" not in m


def test_ranking_from_a_trials_csv_follows_the_ratings(tmp_path):
    # the battles of test_ranking.CHAIN, one task per battle: A ≫ B, B edges C, C ≫ D
    rows = []
    for i, (winner, loser) in enumerate(
        [("A", "B")] * 30 + [("B", "A")] * 5 + [("B", "C")] * 2 + [("C", "B")] + [("C", "D")] * 30 + [("D", "C")] * 5
    ):
        rows += [f"{winner},t{i},1", f"{loser},t{i},0"]
    p = tmp_path / "t.csv"
    p.write_text("policy,task,success\n" + "\n".join(rows) + "\n")
    doc = score_digests(read_trials_csv(p), ScoreConfig(rounds=300), metrics=["subtask_success"])
    ranking = doc["ranking"]["ranking"]
    assert [r["policy"] for r in ranking] == ["A", "B", "C", "D"]
    assert [r["rank"] for r in ranking] == [1, 2, 2, 4]  # before: 1, 2, 1, 2
    assert [r["tied_with_next"] for r in ranking[:3]] == [False, True, False]


def test_short_rows_and_trailing_commas_do_not_upset_pairing(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("policy,task,success,session,person,\nA,x,1,1\nA,x,0,1,ana\nB,x,1,1,,\n")
    imported = read_trials([p])
    assert imported.pair_columns == ["task"]  # person is blank, then "ana", within A's session
    assert not any("not recognised" in w for w in imported.warnings)
