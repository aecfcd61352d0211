from __future__ import annotations

import pytest

from egocrowd.bench.digest import build_corpus, digest_log
from egocrowd.bench.importers import digests_to_log, read_pairwise_csv, read_trials_csv
from egocrowd.bench.metrics import ScoreConfig, compute_metrics
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
    assert s1.out_person == ["ana", "ben"] and s1.environment == "home" and s1.pair_key == "fold"
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
