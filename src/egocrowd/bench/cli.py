"""``egocrowd bench …``: score logs, compare and rank policies, write reports.

A thin door: parsing arguments, progress bars and file output live here; everything else is in the
pure modules. The lead wires the group in with ``root.add_command(bench)``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from egocrowd.bench.digest import SessionTable, digest_log
from egocrowd.bench.runner import protocols_command, run_command
from egocrowd.bench.schema import to_parquet
from egocrowd.cli_types import CommandGroup, RegistryChoice
from egocrowd.errors import EgocrowdError

# The scoring modules (metrics, score, ranking, importers) import SciPy: ~1 s measured with
# python -X importtime, so only the subcommands that score import them, inside the function.


def _config_options(f: Any) -> Any:
    for opt in reversed(
        [
            click.option(
                "--rounds",
                default=1000,
                show_default=True,
                type=click.IntRange(min=1),
                help="Bootstrap rounds for intervals.",
            ),
            click.option(
                "--seed",
                default=0,
                show_default=True,
                help="Seed for every random procedure (same seed, same numbers).",
            ),
            click.option("--confidence", default=0.95, show_default=True, help="Confidence level of every interval."),
            click.option(
                "--budget",
                "recovery_budget_s",
                default=60.0,
                show_default=True,
                help="Seconds within which a recovery after a misinterpretation counts as prompt.",
            ),
            click.option(
                "--time-bins",
                default=12,
                show_default=True,
                type=click.IntRange(min=1),
                help="Bins for success against time into a session.",
            ),
            click.option(
                "--min-group",
                default=5,
                show_default=True,
                type=click.IntRange(min=0),
                help="Outcomes a person/environment needs to count for worst group and gap.",
            ),
            click.option(
                "--metric",
                "metrics",
                multiple=True,
                type=RegistryChoice("egocrowd.bench.metrics:METRICS"),
                help="Only these metrics (repeatable). Default: all registered.",
            ),
            click.option("--lenient", is_flag=True, help="Skip lines of unknown event types instead of failing."),
            click.option(
                "--jobs",
                "-j",
                default=1,
                show_default=True,
                type=click.IntRange(min=1),
                help="Worker processes reading log files in parallel (helps with many files).",
            ),
        ]
    ):
        f = opt(f)
    return f


def _make_config(kw: dict[str, Any]) -> Any:
    from egocrowd.bench.metrics import ScoreConfig  # SciPy, ~1 s

    return ScoreConfig(
        rounds=kw["rounds"],
        seed=kw["seed"],
        confidence=kw["confidence"],
        recovery_budget_s=kw["recovery_budget_s"],
        time_bins=kw["time_bins"],
        min_group=kw["min_group"],
    )


def _load_digests(
    paths: Sequence[str], *, lenient: bool = False, quiet: bool = False, jobs: int = 1
) -> tuple[SessionTable, list[str]]:
    """Read logs with a byte-based progress bar (shown on a terminal) and trial CSVs; returns their
    digests in one table and the importer's warnings, which are also printed on stderr."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn  # ~40 ms

    from egocrowd.bench.importers import read_trials  # SciPy, ~1 s
    from egocrowd.bench.score import read_sessions

    logs = [p for p in paths if not _is_csv(p)]
    csvs = [p for p in paths if _is_csv(p)]
    trials = read_trials(csvs) if csvs else None
    tables = [SessionTable.from_digests(trials.digests)] if trials else []
    warnings = trials.warnings if trials else []
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if not logs:
        return SessionTable.concat(tables), warnings
    total = sum(Path(p).stat().st_size for p in logs if Path(p).exists())
    with Progress(
        TextColumn("[bold]scoring[/]"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("", total=total or None)
        tables.append(
            read_sessions(logs, strict=not lenient, jobs=jobs, on_progress=lambda n: progress.advance(task, n))
        )
    return SessionTable.concat(tables), warnings


def _write(text: str, output: str) -> None:
    if output == "-":
        click.echo(text)
    else:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


def _format_option(default_doc: str) -> Any:
    """``--format table|json`` (``--json`` kept as the old spelling of ``--format json``)."""

    def wrap(f: Any) -> Any:
        f = click.option(
            "--format",
            "fmt",
            type=click.Choice(["table", "json"]),
            default=None,
            help=f"table: for people (rich, on the terminal); json: for machines. Default: {default_doc}.",
        )(f)
        return click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as --format json.")(f)

    return wrap


@click.group("bench", cls=CommandGroup)
def bench() -> None:
    """Long-horizon, multi-person evaluation: score logs, compare and rank policies, write reports.

    \b
    Typical use:
      egocrowd bench validate runs/*.jsonl
      egocrowd bench report runs/*.jsonl -o report.html
      egocrowd bench compare runs/*.jsonl --a policy_x --b policy_y
      egocrowd bench rank preferences.csv
    """


@bench.command("score")
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", default="-", show_default=True, help="Where to write the scores JSON ('-' = stdout).")
@click.option(
    "--pairwise",
    type=click.Path(exists=True, dir_okay=False),
    help="A/B preference CSV to rank from instead of paired sessions.",
)
@_format_option("json into a file given with -o, a table on the terminal")
@_config_options
def score_cmd(
    logs: tuple[str, ...], output: str, pairwise: str | None, fmt: str | None, as_json: bool, **kw: Any
) -> None:
    """Score LOGS: every policy found gets every registered metric with intervals; policies run on
    the same protocol seeds (or trial-CSV pairs) are compared pairwise and ranked.

    LOGS are bench logs (.jsonl, .jsonl.gz, .parquet) or trial spreadsheets (.csv, see
    docs/bench.md). On the terminal the headline numbers are shown as tables; `-o scores.json` (or
    `--format json`) writes the whole scores document (JSON, versioned) for machines and `report`.
    """
    doc = _score(logs, pairwise, kw)
    fmt = fmt or ("json" if as_json or output != "-" else "table")
    if fmt == "table":
        from egocrowd.bench.terminal import print_scores  # rich, ~30 ms

        print_scores(doc)
        if output == "-":
            return
    _write(json.dumps(doc, indent=2, allow_nan=False), output)


def _score(logs: Sequence[str], pairwise: str | None, kw: dict[str, Any]) -> dict[str, Any]:
    from egocrowd.bench.importers import read_pairwise_csv  # SciPy, ~1 s
    from egocrowd.bench.score import score_digests

    digests, warnings = _load_digests(logs, lenient=kw["lenient"], jobs=kw["jobs"])
    battles = read_pairwise_csv(pairwise) if pairwise else None
    doc = score_digests(
        digests,
        _make_config(kw),
        metrics=list(kw["metrics"]) or None,
        battles=battles,
        inputs=[*logs, *([pairwise] if pairwise else [])],
    )
    doc["warnings"] = warnings
    return doc


@bench.command("report")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", default="report.html", show_default=True, help="Output file ('-' = stdout).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "json"]),
    default="html",
    show_default=True,
    help="html: one self-contained page (inline SVG, no scripts); json: the scores document for machines.",
)
@click.option("--title", default="egocrowd.bench report", show_default=True, help="Report title.")
@click.option(
    "--pairwise",
    type=click.Path(exists=True, dir_okay=False),
    help="A/B preference CSV to rank from instead of paired sessions.",
)
@_config_options
def report_cmd(inputs: tuple[str, ...], output: str, fmt: str, title: str, pairwise: str | None, **kw: Any) -> None:
    """Score INPUTS and write a report with plots and tables.

    INPUTS are bench logs (.jsonl, .jsonl.gz, .parquet), trial CSVs, or one scores JSON written by
    `egocrowd bench score` (re-rendered without rescoring).
    """
    from egocrowd.bench.report import render_html  # ~60 ms
    from egocrowd.bench.score import SCORES_FORMAT  # SciPy, ~1 s

    doc: dict[str, Any] | None = None
    if len(inputs) == 1 and inputs[0].endswith(".json"):
        try:
            doc = json.loads(Path(inputs[0]).read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise click.ClickException(f"{inputs[0]}: not a JSON file: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != SCORES_FORMAT:
            raise click.ClickException(f"{inputs[0]} is not an egocrowd.bench scores document")
    if doc is None:
        doc = _score(inputs, pairwise, kw)
    if fmt == "json":
        _write(json.dumps(doc, indent=2, allow_nan=False), output if output != "report.html" else "report.json")
    else:
        _write(render_html(doc, title=title), output)


@bench.command("compare")
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--a", "pol_a", required=True, help="First policy.")
@click.option("--b", "pol_b", required=True, help="Second policy.")
@click.option("--alpha", default=0.05, show_default=True, help="Error level of the sequential test.")
@_format_option("table")
@_config_options
def compare_cmd(
    logs: tuple[str, ...], pol_a: str, pol_b: str, alpha: float, fmt: str | None, as_json: bool, **kw: Any
) -> None:
    """Paired comparison of two policies run on the same protocol seeds (or CSV 'pair'/task).

    Prints the mean difference in subtask success with a bootstrap interval, a sign-flip
    permutation p-value (and the exact McNemar test when every pair is one success/failure each),
    and the anytime-valid sequential verdict: whether enough pairs have been run to decide, and
    after how many. Trial CSVs are paired by their 'pair' column, else by every design column.
    """
    from egocrowd.bench.score import compare  # SciPy, ~1 s

    digests, warnings = _load_digests(logs, lenient=kw["lenient"], jobs=kw["jobs"])
    res = compare(digests, pol_a, pol_b, _make_config(kw), alpha=alpha)
    if as_json or fmt == "json":
        click.echo(json.dumps({**res, "warnings": warnings}, indent=2))
        return
    s = res["sequential"]
    click.echo(f"{pol_a} vs {pol_b} over {res['pairs']} pairs: success {res['mean_a']:.3f} vs {res['mean_b']:.3f}")
    click.echo(f"difference {res['mean_diff']:+.3f}  [{res['low']:+.3f}, {res['high']:+.3f}]  p = {res['p_value']:.4g}")
    if res.get("mcnemar"):
        m = res["mcnemar"]
        click.echo(
            f"exact McNemar (0/1 outcomes): {pol_a} only {m['a_only']}, {pol_b} only {m['b_only']}, p = {m['p_value']:.4g}"
        )
    if s["decision"] == "continue":
        click.echo(f"sequential test (alpha={alpha}): not decided yet after {s['pairs']} pairs; keep running")
    else:
        winner = pol_a if s["decision"] == "A" else pol_b
        click.echo(f"sequential test (alpha={alpha}): {winner} is better, decided after {s['stopped_at']} pairs")


@bench.command("rank")
@click.argument("pairwise", type=click.Path(exists=True, dir_okay=False))
@click.option("--rounds", default=1000, show_default=True, type=click.IntRange(min=1), help="Bootstrap rounds.")
@click.option("--seed", default=0, show_default=True, help="Bootstrap seed.")
@click.option("--anchor", help="POLICY=RATING: shift ratings so POLICY gets RATING.")
@_format_option("table")
def rank_cmd(pairwise: str, rounds: int, seed: int, anchor: str | None, fmt: str | None, as_json: bool) -> None:
    """Rank policies from an A/B preference CSV (columns a, b, winner) with Bradley–Terry.

    Ratings come with 95% bootstrap intervals; a policy shares the rank of the one above it when
    the two are statistically tied (competition ranks: 1, 1, 3).
    """
    from rich.console import Console  # ~30 ms
    from rich.table import Table

    from egocrowd.bench.importers import read_pairwise_csv  # SciPy, ~1 s
    from egocrowd.bench.ranking import rank_battles

    anc = None
    if anchor:
        name, _, val = anchor.rpartition("=")
        try:
            anc = (name, float(val))
        except ValueError:
            raise click.BadParameter("use POLICY=RATING", param_hint="--anchor") from None
    res = rank_battles(read_pairwise_csv(pairwise), rounds=rounds, seed=seed, anchor=anc)
    if as_json or fmt == "json":
        click.echo(json.dumps(res, indent=2))
        return
    table = Table(title=f"Bradley–Terry ranking ({res['battles']} battles, {rounds} bootstrap rounds)")
    for col in ("rank", "policy", "rating", "95% interval", "battles", "vs next"):
        table.add_column(col, justify="right" if col in ("rank", "rating", "battles") else "left")
    for r in res["ranking"]:
        nxt = r.get("tied_with_next")
        table.add_row(
            str(r["rank"]),
            r["policy"],
            f"{r['rating']:.0f}",
            f"[{r['low']:.0f}, {r['high']:.0f}]",
            f"{r['battles']:.0f}",
            "" if nxt is None else ("tied" if nxt else "separated"),
        )
    Console().print(table)


def _is_csv(path: str) -> bool:
    return path.lower().endswith((".csv", ".csv.gz"))


@bench.command("validate")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--pairwise",
    type=click.Path(exists=True, dir_okay=False),
    help="Also check an A/B preference CSV, as `score --pairwise` reads it.",
)
@click.option("--lenient", is_flag=True, help="Skip lines of unknown event types instead of failing (as score's).")
def validate_cmd(inputs: tuple[str, ...], pairwise: str | None, lenient: bool) -> None:
    """Check INPUTS (bench logs, trial CSVs) exactly as `score` reads them: print sessions and
    events per file, or what is wrong and where (file:line). Exit status 1 if anything is wrong.

    It runs the readers and checks that `score` runs, so what passes here scores, and what fails
    here fails there with the same error.
    """
    from egocrowd.bench.digest import check_inputs

    bad = False
    digests: list[Any] = []
    battles: list[Any] = []
    for p in inputs:
        try:
            if _is_csv(p):
                from egocrowd.bench.importers import read_trials  # SciPy, ~1 s

                imported = read_trials([p])
                for w in imported.warnings:
                    click.echo(f"warning: {w}", err=True)
                ds = imported.digests
            else:
                ds = list(digest_log(p, strict=not lenient))
            digests.extend(ds)
            truncated = sum(d.end_reason is None for d in ds)
            click.echo(
                f"{p}: ok, {len(ds)} sessions, {sum(d.events for d in ds)} events"
                + (f", {truncated} without session_end" if truncated else "")
            )
        except EgocrowdError as exc:
            bad = True
            click.echo(f"{p}: {exc.message} [{exc.code}]", err=True)
    if pairwise:
        from egocrowd.bench.importers import read_pairwise_csv  # SciPy, ~1 s

        try:
            battles = read_pairwise_csv(pairwise)
            click.echo(f"{pairwise}: ok, {len(battles)} battles")
        except EgocrowdError as exc:
            bad = True
            click.echo(f"{pairwise}: {exc.message} [{exc.code}]", err=True)
    if not bad:
        try:
            check_inputs(digests, battles)
        except EgocrowdError as exc:
            bad = True
            click.echo(f"all inputs: {exc.message} [{exc.code}]", err=True)
    if bad:
        sys.exit(1)


@bench.command("import-csv")
@click.argument("trials", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, help="JSONL log to append the converted sessions to.")
def import_csv_cmd(trials: str, output: str) -> None:
    """Convert a trials CSV (policy, task, success, duration, …) into a bench log.

    Not needed for scoring (score/report read CSVs directly); useful to merge spreadsheets with
    simulated logs or to convert them to Parquet.
    """
    from egocrowd.bench.importers import digests_to_log, read_trials  # SciPy, ~1 s

    imported = read_trials([trials])
    for w in imported.warnings:
        click.echo(f"warning: {w}", err=True)
    n = digests_to_log(imported.digests, output)
    click.echo(f"wrote {n} events to {output}", err=True)


@bench.command("to-parquet")
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, help="Parquet file to write.")
def to_parquet_cmd(logs: tuple[str, ...], output: str) -> None:
    """Convert JSONL logs to one Parquet file for analysis (streamed; scoring reads it back too)."""
    n = to_parquet(logs, output)
    click.echo(f"wrote {n} rows to {output}", err=True)


@bench.command("metrics")
def metrics_cmd() -> None:
    """List the registered metrics with their versions."""
    from egocrowd.bench.metrics import METRICS  # SciPy, ~1 s

    for spec in METRICS.entries():
        click.echo(f"{spec.name:24} v{spec.version}  {spec.description}")


bench.add_command(run_command)
bench.add_command(protocols_command)
