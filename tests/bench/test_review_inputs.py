"""Review tests: malformed numbers in logs and CSVs are clear input errors, never crashes or NaN scores."""

from __future__ import annotations

import json

import pytest

from egocrowd.bench import schema as S
from egocrowd.bench.importers import read_trials_csv
from egocrowd.bench.score import score_logs
from egocrowd.errors import InvalidInput


@pytest.mark.parametrize("day", ["abc", float("inf"), True, [1]])
def test_bad_deployment_day_is_a_log_error(tmp_path, day):
    # before: "abc" crashed scoring with a bare ValueError in build_corpus; Infinity (valid for
    # Python's json) silently broke the deployment-day drift
    p = tmp_path / "x.jsonl"
    head = {"type": "session", "session_id": "s", "policy": "p", "environment": "e", "deployment_day": day}
    p.write_text(json.dumps(head) + "\n" + json.dumps({"type": "subtask_end", "t": 1, "subtask": "x", "outcome": "success"}) + "\n")
    with pytest.raises(InvalidInput) as exc:
        score_logs([p])
    assert exc.value.code == "bench.bad_log"


def test_integer_deployment_day_still_reads():
    assert S.Session(session_id="s", policy="p", environment="e", deployment_day=3).deployment_day == 3


@pytest.mark.parametrize("col,value", [("duration", "nan"), ("duration", "inf"), ("day", "-inf"), ("day", "nan")])
def test_non_finite_csv_numbers_are_rejected(tmp_path, col, value):
    # before: duration "nan" was accepted and the scores document then failed to serialise
    # ("Out of range float values are not JSON compliant")
    p = tmp_path / "t.csv"
    p.write_text(f"policy,task,success,{col}\np,a,1,{value}\n")
    with pytest.raises(InvalidInput) as exc:
        read_trials_csv(p)
    assert exc.value.code == "bench.bad_csv"


@pytest.mark.parametrize("args", [["--rounds", "0"], ["--rounds", "-5"], ["--time-bins", "0"]])
def test_cli_rejects_nonsense_config_without_a_traceback(tmp_path, args):
    # before: --rounds 0 crashed in np.concatenate, --time-bins 0 in np.bincount (raw tracebacks)
    from click.testing import CliRunner

    from egocrowd.bench.cli import bench

    p = tmp_path / "x.jsonl"
    S.write_log(p, S.Session(session_id="s", policy="p", environment="e"),
                [S.SubtaskEnd(t=1, subtask="x", outcome="success"), S.SubtaskEnd(t=9, subtask="x", outcome="failure")])
    res = CliRunner().invoke(bench, ["score", str(p), "-o", str(tmp_path / "s.json"), *args])
    assert res.exit_code == 2, res.output  # click usage error
    assert not isinstance(res.exception, (ValueError, IndexError))


@pytest.mark.parametrize("kw", [{"rounds": 0}, {"time_bins": 0}, {"confidence": 1.0}, {"min_group": -1}])
def test_score_config_validates(kw):
    from egocrowd.bench.metrics import ScoreConfig

    with pytest.raises(InvalidInput):
        ScoreConfig(**kw)


def test_rank_rejects_zero_rounds(tmp_path):
    from click.testing import CliRunner

    from egocrowd.bench.cli import bench

    p = tmp_path / "b.csv"
    p.write_text("a,b,winner\nx,y,a\nx,y,tie\n")
    res = CliRunner().invoke(bench, ["rank", str(p), "--rounds", "0"])
    assert res.exit_code == 2, res.output
