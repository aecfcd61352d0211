from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from egocrowd.bench import schema as S
from egocrowd.bench.cli import bench
from egocrowd.bench.metrics import ScoreConfig
from egocrowd.bench.report import render_html
from egocrowd.bench.score import SCORES_FORMAT, battles_from_digests, compare, read_digests, score_digests, score_logs
from egocrowd.bench.synthetic import SynthPolicy, write_synthetic
from egocrowd.errors import InvalidInput

FAST = ScoreConfig(rounds=100, seed=3)


@pytest.fixture(scope="module")
def synth_log(tmp_path_factory):
    p = tmp_path_factory.mktemp("synth") / "runs.jsonl"
    write_synthetic(p, [SynthPolicy("strong", 0.9), SynthPolicy("weak", 0.5), SynthPolicy("weak2", 0.5)], 30, seed=1)
    return p


def _strip(doc):
    doc = dict(doc)
    doc.pop("created_at")
    return doc


def test_same_seed_same_numbers_and_versions_recorded(synth_log):
    a = score_logs([synth_log], FAST)
    b = score_logs([synth_log], FAST)
    assert _strip(a) == _strip(b)
    c = score_logs([synth_log], ScoreConfig(rounds=100, seed=4))
    assert _strip(a)["policies"] != _strip(c)["policies"]
    assert a["format"] == SCORES_FORMAT and a["format_version"] == 1
    assert a["metrics"]["chain_success"] == "1" and a["config"]["seed"] == 3
    json.dumps(a, allow_nan=False)  # strict JSON: no NaN/inf leaks


def test_comparison_and_ranking_find_the_strong_policy(synth_log):
    ds = read_digests([synth_log])
    res = compare(ds, "strong", "weak", FAST)
    assert res["pairs"] == 30 and res["mean_diff"] > 0.2 and res["p_value"] < 0.01 and res["low"] > 0
    assert res["sequential"]["decision"] == "A"
    battles = battles_from_digests(ds)
    assert len(battles) == 30 * 3
    doc = score_digests(ds, FAST)
    rows = doc["ranking"]["ranking"]
    assert rows[0]["policy"] == "strong" and rows[0]["tied_with_next"] is False
    assert len(doc["comparisons"]) == 3


def test_scoring_alone_leaves_out_comparisons_and_ranking(synth_log):
    ds = read_digests([synth_log])
    full, alone = score_digests(ds, FAST), score_digests(ds, FAST, comparisons=False, ranking=False)
    assert full["ranking"] and full["comparisons"]
    assert alone["ranking"] is None and alone["comparisons"] == [] and alone["policies"] == full["policies"]


def test_compare_needs_pairs(synth_log):
    ds = read_digests([synth_log])
    with pytest.raises(InvalidInput) as exc:
        compare(ds, "strong", "ghost", FAST)
    assert exc.value.code == "bench.too_few_pairs"


def test_html_report_is_self_contained_and_phone_friendly(synth_log):
    html = render_html(score_logs([synth_log], FAST), title="Nightly <eval>")
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r"(src|href)=\"https?:", html)
    assert "name='viewport'" in html and "Nightly &lt;eval&gt;" in html
    assert html.count("<svg") >= 5  # horizon, drift ×2, recovery, per person, ranking
    for heading in (
        "Success against horizon",
        "Recovery after misinterpretations",
        "Per person",
        "Ranking",
        "Paired comparisons",
    ):
        assert heading in html


def test_cli_score_report_compare_rank_validate(synth_log, tmp_path):
    r = CliRunner()
    out = tmp_path / "scores.json"
    res = r.invoke(bench, ["score", str(synth_log), "-o", str(out), "--rounds", "50"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert set(doc["policies"]) == {"strong", "weak", "weak2"} and doc["config"]["rounds"] == 50

    html = tmp_path / "r.html"
    res = r.invoke(bench, ["report", str(out), "-o", str(html)])  # re-render a scores document
    assert res.exit_code == 0 and "<svg" in html.read_text()
    res = r.invoke(
        bench,
        ["report", str(synth_log), "--format", "json", "-o", "-", "--rounds", "30", "--metric", "subtask_success"],
    )
    assert res.exit_code == 0 and list(json.loads(res.output)["policies"]["strong"]) == ["subtask_success"]

    res = r.invoke(bench, ["compare", str(synth_log), "--a", "strong", "--b", "weak", "--rounds", "30"])
    assert res.exit_code == 0 and "strong is better" in res.output

    pw = tmp_path / "p.csv"
    pw.write_text("a,b,winner\n" + "x,y,a\n" * 30 + "x,y,b\n" * 5 + "y,z,tie\n" * 10)
    res = r.invoke(bench, ["rank", str(pw), "--json", "--rounds", "50", "--anchor", "z=1000"])
    assert res.exit_code == 0
    ranking = json.loads(res.output)["ranking"]
    assert ranking[0]["policy"] == "x" and {x["policy"]: x["rating"] for x in ranking}["z"] == pytest.approx(1000)
    res = r.invoke(bench, ["rank", str(pw), "--rounds", "20"])
    assert res.exit_code == 0 and "tied" in res.output

    res = r.invoke(bench, ["validate", str(synth_log)])
    assert res.exit_code == 0 and "90 sessions" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type":"safety","t":1,"kind":"contact"}\n')
    res = r.invoke(bench, ["validate", str(bad)])
    assert res.exit_code == 1 and "bench.bad_log" in res.output
    res = r.invoke(bench, ["score", str(bad)])
    assert res.exit_code != 0 and "bench.bad_log" in res.output


def test_score_shows_tables_to_people_and_json_to_machines(synth_log, tmp_path):
    r = CliRunner()
    out = tmp_path / "scores.json"
    res = r.invoke(bench, ["score", str(synth_log), "--rounds", "30", "-o", str(out)])
    doc = json.loads(out.read_text())
    res = r.invoke(bench, ["score", str(synth_log), "--rounds", "30"])  # on the terminal: tables
    assert res.exit_code == 0, res.output
    assert "{" not in res.output and "'" not in res.output  # no raw JSON or Python dict
    rate = doc["policies"]["strong"]["subtask_success"]["rate"]
    row = next(line for line in res.output.splitlines() if "subtask success" in line)
    # the headline row holds each policy's estimate and interval, in the document's order of columns
    assert f"{rate['value']:.0%} [{rate['low']:.0%}, {rate['high']:.0%}]" in row
    header = next(line for line in res.output.splitlines() if "strong" in line and "weak" in line)
    assert header.index("strong") < header.index("weak2")
    assert "Paired comparisons" in res.output and "Ranking (tied policies share a rank)" in res.output
    machine = r.invoke(bench, ["score", str(synth_log), "--rounds", "30", "--format", "json"])
    assert machine.exit_code == 0
    again = json.loads(machine.output)
    assert again["policies"] == doc["policies"] and again["ranking"] == doc["ranking"]
    res = r.invoke(
        bench, ["compare", str(synth_log), "--a", "strong", "--b", "weak", "--rounds", "20", "--format", "json"]
    )
    assert res.exit_code == 0 and json.loads(res.output)["pairs"] > 0


def test_run_summary_is_two_tables(tmp_path):
    from egocrowd.bench.runner import run_command

    res = CliRunner().invoke(
        run_command,
        ["weekday-kitchen", "-p", "random", "-n", "1", "--steps", "200", "-o", str(tmp_path / "r"), "-j", "1"],
    )
    assert res.exit_code == 0, res.output
    assert "where it wins and loses" in res.output and "What happened" in res.output
    assert "{" not in res.output  # never a raw dict


def test_cli_parquet_and_csv_paths_score_like_jsonl(synth_log, tmp_path):
    r = CliRunner()
    pq = tmp_path / "runs.parquet"
    assert r.invoke(bench, ["to-parquet", str(synth_log), "-o", str(pq)]).exit_code == 0
    a = _strip(score_logs([synth_log], FAST))
    b = _strip(score_logs([pq], FAST))
    a.pop("inputs"), b.pop("inputs")
    assert a == b

    csv = tmp_path / "trials.csv"
    csv.write_text(
        "policy,task,success,duration\n"
        + "".join(f"{p},t{i % 4},{int(i % 3 != 0 or p == 'a')},10\n" for i in range(24) for p in "ab")
    )
    res = r.invoke(bench, ["report", str(csv), "-o", str(tmp_path / "c.html"), "--rounds", "20"])
    assert res.exit_code == 0, res.output
    log = tmp_path / "trials.jsonl"
    assert r.invoke(bench, ["import-csv", str(csv), "-o", str(log)]).exit_code == 0
    assert len({s.policy for s in S.read_log(log) if isinstance(s, S.Session)}) == 2


def test_every_command_has_help():
    r = CliRunner()
    for name, cmd in bench.commands.items():
        res = r.invoke(bench, [name, "--help"])
        assert res.exit_code == 0 and len(cmd.help or "") > 20, name


def test_parallel_reading_of_many_files_matches_serial(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / f"ep{i}.jsonl"
        write_synthetic(p, [SynthPolicy("a", 0.7), SynthPolicy("b", 0.6)], 3, seed=i)
        paths.append(p)
    seen = []
    serial = read_digests(paths)
    parallel = read_digests(paths, jobs=2, on_progress=seen.append)
    assert [d.session_id for d in parallel] == [d.session_id for d in serial]
    assert _strip(score_digests(parallel, FAST)) == _strip(score_digests(serial, FAST))
    assert sum(seen) == sum(p.stat().st_size for p in paths)
    res = CliRunner().invoke(
        bench, ["score", *map(str, paths), "-j", "2", "--rounds", "20", "-o", str(tmp_path / "s.json")]
    )
    assert res.exit_code == 0, res.output


# ------------------------------------------------- nonsense options are usage errors


@pytest.mark.parametrize("args", [["--rounds", "0"], ["--rounds", "-5"], ["--time-bins", "0"]])
def test_cli_rejects_nonsense_config_without_a_traceback(tmp_path, args):
    # before: --rounds 0 crashed in np.concatenate, --time-bins 0 in np.bincount (raw tracebacks)
    from click.testing import CliRunner

    from egocrowd.bench.cli import bench

    p = tmp_path / "x.jsonl"
    S.write_log(
        p,
        S.Session(session_id="s", policy="p", environment="e"),
        [S.SubtaskEnd(t=1, subtask="x", outcome="success"), S.SubtaskEnd(t=9, subtask="x", outcome="failure")],
    )
    res = CliRunner().invoke(bench, ["score", str(p), "-o", str(tmp_path / "s.json"), *args])
    assert res.exit_code == 2, res.output  # click usage error
    assert not isinstance(res.exception, (ValueError, IndexError))


def test_rank_rejects_zero_rounds(tmp_path):
    from click.testing import CliRunner

    from egocrowd.bench.cli import bench

    p = tmp_path / "b.csv"
    p.write_text("a,b,winner\nx,y,a\nx,y,tie\n")
    res = CliRunner().invoke(bench, ["rank", str(p), "--rounds", "0"])
    assert res.exit_code == 2, res.output


def test_cli_reports_csv_warnings_and_the_exact_mcnemar_test(tmp_path):
    # issue #19: an unknown column is reported (stderr and the scores document), and a compare of
    # 0/1 trials prints the exact McNemar test beside the sign-flip p-value
    p = tmp_path / "t.csv"
    p.write_text(
        "policy,task,success,robot\n" + "".join(f"A,t{i},1,so100\nB,t{i},{int(i >= 8)},so100\n" for i in range(12))
    )
    r = CliRunner()
    res = r.invoke(bench, ["score", str(p), "--rounds", "20", "-o", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    assert "warning: " in res.stderr and "'robot' not recognised" in res.stderr
    doc = json.loads((tmp_path / "s.json").read_text())
    assert len(doc["warnings"]) == 1 and "'robot'" in doc["warnings"][0]
    (comp,) = doc["comparisons"]
    assert comp["mcnemar"] == {"a_only": 8, "b_only": 0, "p_value": pytest.approx(2 / 2**8)}
    res = r.invoke(bench, ["compare", str(p), "--a", "A", "--b", "B", "--rounds", "20"])
    assert res.exit_code == 0 and "exact McNemar (0/1 outcomes): A only 8, B only 0, p = 0.007812" in res.stdout
    html = render_html(doc)
    assert "McNemar" in html and "0.00781" in html
