"""The benchmark runner: ``python -m bench [NAME ...] [--smoke] [--pg-url URL] [--tmp-dir DIR] [--json PATH]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench import (
    dashboard,
    dispatch,
    encoding,
    engine,
    fanout,
    flood,
    inbox,
    ingest,
    member_import,
    segments,
    smpp,
    writer,
)
from bench.common import (
    PG_VARIABLES,
    Headline,
    Options,
    Table,
    default_pg_url,
    libpq_url,
    no_postgres_note,
    server_version,
)
from openline._version import __version__

__all__ = ["BENCHMARKS", "Outcome", "format_table", "main", "summary_table"]

Benchmark = Callable[[Options], Table]

# Name -> benchmark; each takes the options and returns its table. Runs in this order.
BENCHMARKS: dict[str, Benchmark] = {
    "writer": writer.run,
    "engine": engine.run,
    "ingest": ingest.run,
    "flood": flood.run,
    "dispatch": dispatch.run,
    "encoding": encoding.run,
    "segments": segments.run,
    "member_import": member_import.run,
    "fanout": fanout.run,
    "inbox": inbox.run,
    "dashboard": dashboard.run,
    "smpp": smpp.run,
}


@dataclass
class Outcome:
    """One benchmark's turn in a run: its table, or the failure that ended it."""

    name: str
    table: Table
    seconds: float
    failure: str | None = None


def _summary(benchmark: Benchmark) -> str:
    doc = benchmark.__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def format_table(table: Table) -> str:
    """A plain text table: text columns left-aligned, numbers right-aligned."""
    columns = table.columns()
    if not columns:
        return ""
    cells = [[row.get(column, "") for column in columns] for row in table.rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    numeric = [all(_is_number(line[i]) for line in cells) for i in range(len(columns))]

    def render(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return " | ".join(parts).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([render(columns), rule, *(render(line) for line in cells)])


def _is_number(text: str) -> bool:
    stripped = text.replace(",", "").replace("%", "").replace("x", "").strip()
    if not stripped or stripped == "-":
        return True
    try:
        float(stripped)
    except ValueError:
        return False
    return True


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<10} {_summary(function)}" for name, function in BENCHMARKS.items())
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run openline's benchmarks and print their results as plain text tables.",
        epilog=f"benchmarks:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition: proves the suite runs")
    parser.add_argument(
        "--pg-url",
        default=default_pg_url(),
        help=f"PostgreSQL server URL whose user may create databases (default: ${' or $'.join(PG_VARIABLES)})",
    )
    parser.add_argument("--tmp-dir", type=Path, default=None, help="directory for SQLite files (default: system temp)")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the run and every result to PATH as JSON"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    if args.list:
        for name, function in BENCHMARKS.items():
            print(f"{name:<10} {_summary(function)}")
        return 0
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; available: {', '.join(BENCHMARKS)}")
    names = list(dict.fromkeys(args.names)) or list(BENCHMARKS)
    options = Options(smoke=args.smoke, pg_url=args.pg_url or None, tmp_dir=args.tmp_dir)
    if args.json is not None:
        # Found out now, not after a run of an hour: the file's directory must exist or be made.
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            parser.error(f"--json {args.json}: {error}")
        if args.json.is_dir():
            parser.error(f"--json {args.json}: is a directory")

    started_at = datetime.now(UTC)
    postgres = _postgres(options.pg_url)
    if postgres is None:
        where = no_postgres_note()
    else:
        where = f"PostgreSQL server {postgres['server']} ({postgres['version'] or 'version unknown'})"
    print(f"openline benchmarks{' (smoke sizes)' if options.smoke else ''}; {where}")
    outcomes: list[Outcome] = []
    for name in names:
        benchmark = BENCHMARKS[name]
        print(f"\n== {name}: {_summary(benchmark)}", flush=True)
        started = time.perf_counter()
        try:
            table = benchmark(options)
        except Exception:
            traceback.print_exc()
            print(f"{name}: FAILED", flush=True)
            outcomes.append(Outcome(name, Table(), time.perf_counter() - started, traceback.format_exc()))
            continue
        seconds = time.perf_counter() - started
        outcomes.append(Outcome(name, table, seconds))
        print(format_table(table))
        for note in table.notes:
            print(f"  * {note}")
        print(f"({name} took {seconds:.1f} s)", flush=True)

    summary = summary_table(outcomes, smoke=options.smoke)
    print(f"\n== summary: every headline figure\n{format_table(summary)}")
    for note in summary.notes:
        print(f"  * {note}")
    if args.json is not None:
        run = _run_facts(arguments, options, started_at, postgres)
        _write_json(args.json, run, outcomes)
        print(f"\nresults written to {args.json}")
    failed = [outcome.name for outcome in outcomes if outcome.failure is not None]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def summary_table(outcomes: Sequence[Outcome], *, smoke: bool = False) -> Table:
    """Every benchmark's headline figures as one table (a failed benchmark as one FAILED line)."""
    summary = Table()
    for outcome in outcomes:
        if outcome.failure is not None:
            summary.rows.append({"benchmark": outcome.name, "figure": "FAILED (see above)"})
            continue
        for headline in outcome.table.headlines:
            summary.rows.append(_summary_row(outcome.name, headline))
    summary.notes.append(
        "ratio = value / ceiling, the ceiling measured in the same run: for rates the share of the ceiling "
        "reached (1.00 = as fast as it); for times (s, ms) how many times the ceiling's time (1.00 = as fast, "
        "higher is slower)"
    )
    if smoke:
        summary.notes.append("smoke sizes: the targets are set for the full sizes, so 'met' says little here")
    return summary


def _summary_row(name: str, headline: Headline) -> dict[str, str]:
    return {
        "benchmark": name,
        "figure": headline.figure,
        "database": headline.database,
        "value": _figure(headline.value),
        "unit": headline.unit,
        "ceiling": "-" if headline.ceiling is None else _figure(headline.ceiling),
        "ratio": "-" if headline.ratio is None else f"{headline.ratio:.2f}",
        "target": headline.target or "-",
        "met": {True: "yes", False: "NO", None: "-"}[headline.met],
    }


def _figure(value: float) -> str:
    """A number as a person reads it: thousands separated, about three significant digits when small."""
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _postgres(pg_url: str | None) -> dict[str, str | None] | None:
    """The PostgreSQL server the run uses (password hidden) and its version; None without one."""
    if pg_url is None:
        return None
    facts: dict[str, str | None] = {"server": _hide_password(libpq_url(pg_url)), "version": None}
    try:
        facts["version"] = server_version(pg_url)
    except psycopg.Error as error:
        # The PostgreSQL cases will fail and say why; the run itself goes on.
        facts["error"] = str(error).strip()
    return facts


def _run_facts(
    arguments: Sequence[str], options: Options, started_at: datetime, postgres: dict[str, str | None] | None
) -> dict[str, Any]:
    """What a result needs to be compared with another: when, how, on what."""
    return {
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *_hide_pg_password(arguments, options.pg_url)]),
        "smoke": options.smoke,
        "openline": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
    }


def _write_json(path: Path, run: dict[str, Any], outcomes: Sequence[Outcome]) -> None:
    document = {
        "run": run,
        "benchmarks": {
            outcome.name: {
                "summary": _summary(BENCHMARKS[outcome.name]),
                "seconds": round(outcome.seconds, 3),
                "failure": outcome.failure,
                "rows": outcome.table.rows,
                "notes": outcome.table.notes,
                "headlines": [dataclasses.asdict(headline) for headline in outcome.table.headlines],
            }
            for outcome in outcomes
        },
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _cpu_model() -> str:
    """The CPU's model name where Linux tells it, else what the platform module knows (often nothing)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _hide_pg_password(arguments: Sequence[str], pg_url: str | None) -> list[str]:
    """The command line with the PostgreSQL URL's password masked, so the JSON can be shared."""
    if not pg_url:
        return list(arguments)
    hidden = _hide_password(libpq_url(pg_url))
    return [
        hidden if argument == pg_url else f"--pg-url={hidden}" if argument == f"--pg-url={pg_url}" else argument
        for argument in arguments
    ]


def _hide_password(text: str) -> str:
    return make_url(text).render_as_string(hide_password=True)
