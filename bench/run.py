"""The benchmark runner: ``python -m bench [NAME ...] [--smoke] [--pg-url URL] [--tmp-dir DIR]``."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

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
from bench.common import PG_VARIABLES, Options, Table, default_pg_url, libpq_url, no_postgres_note

__all__ = ["BENCHMARKS", "format_table", "main"]

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
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for name, function in BENCHMARKS.items():
            print(f"{name:<10} {_summary(function)}")
        return 0
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; available: {', '.join(BENCHMARKS)}")
    names = list(dict.fromkeys(args.names)) or list(BENCHMARKS)
    options = Options(smoke=args.smoke, pg_url=args.pg_url or None, tmp_dir=args.tmp_dir)

    where = f"PostgreSQL server {_hide_password(libpq_url(options.pg_url))}" if options.pg_url else no_postgres_note()
    print(f"openline benchmarks{' (smoke sizes)' if options.smoke else ''}; {where}")
    failed = []
    for name in names:
        benchmark = BENCHMARKS[name]
        print(f"\n== {name}: {_summary(benchmark)}", flush=True)
        started = time.perf_counter()
        try:
            table = benchmark(options)
        except Exception:
            traceback.print_exc()
            print(f"{name}: FAILED", flush=True)
            failed.append(name)
            continue
        print(format_table(table))
        for note in table.notes:
            print(f"  * {note}")
        print(f"({name} took {time.perf_counter() - started:.1f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _hide_password(text: str) -> str:
    return make_url(text).render_as_string(hide_password=True)
