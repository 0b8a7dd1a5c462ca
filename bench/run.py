"""Every benchmark, one table (issue 13): `uv run python bench/run.py [--quick] [--json FILE]`.

    uv run python bench/run.py                    # the full samples (about 25 minutes here)
    uv run python bench/run.py --quick            # smaller samples, in about five minutes
    uv run python bench/run.py --only intake,aggregation --json bench.json

Runs intake (HTTP and inbound paths), aggregation (ingestion, answers at national scale, the
national exports), reminders (sweeps) and portal (pages, and every service's memory) one after
another, each with the raw baseline it measures in the same run, and prints one table: the
measure, its value, the baseline, their ratio, the target (issue 13's) and whether it is met.
`--json FILE` writes the same rows (`name`, `value`, `unit`, `baseline`, `ratio`, `target`,
`met`) so that runs can be compared. The machine is shared: compare ratios, not times.

Needs what the benchmarks need: RabbitMQ running (deploy/rabbitmq.sh) and the DevMongo jars
(deploy/devmongo.sh build). A benchmark that fails leaves one row saying so; the others run.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# run as a script, this file's folder would shadow the `aggregation` package: use the repo root
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from bench.table import Row, table, write_json  # noqa: E402

Benchmark = Callable[[bool], list[Row]]


def _intake(quick: bool) -> list[Row]:
    from bench import intake

    return asyncio.run(intake.measure(quick))


def _aggregation(quick: bool) -> list[Row]:
    from bench import aggregation

    return asyncio.run(aggregation.measure(quick))


def _partitions(quick: bool) -> list[Row]:
    from bench import partitions

    return partitions.rows(quick)


def _reminders(quick: bool) -> list[Row]:
    from bench import reminders

    return asyncio.run(reminders.measure(quick))


def _portal(quick: bool) -> list[Row]:
    from bench import portal

    return portal.measure(quick)


BENCHMARKS: dict[str, Benchmark] = {
    "intake": _intake,
    "aggregation": _aggregation,
    "partitions": _partitions,
    "reminders": _reminders,
    "portal": _portal,
}


def run_all(
    benchmarks: dict[str, Benchmark], quick: bool, log: Callable[[str], None] = print
) -> list[Row]:
    """Each benchmark's rows in turn, then how long each took; a failure is a row, not the end."""
    rows: list[Row] = []
    took: list[Row] = []
    for name, bench in benchmarks.items():
        log(f"== {name} …")
        started = time.perf_counter()
        try:
            rows += bench(quick)
        except Exception as exc:
            traceback.print_exc()
            rows.append(Row(f"{name}: FAILED ({type(exc).__name__}: {exc})"[:160], None, ""))
        seconds = time.perf_counter() - started
        took.append(Row(f"run time: {name} benchmark", seconds, "s"))
        log(f"== {name} done in {seconds:.0f} s")
    return rows + took


def heading(quick: bool, load: tuple[float, float, float]) -> str:
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {'--quick' if quick else 'full'}; "
        f"{os.cpu_count()} cores, load average at start {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (1/5/15 min; the machine is shared, compare ratios)"
    )


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller samples, about 5 minutes")
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this file")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated, among: {', '.join(BENCHMARKS)}"
    )
    args = parser.parse_args(argv)
    chosen = BENCHMARKS
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
        chosen = {n: BENCHMARKS[n] for n in names}
    load = os.getloadavg()
    rows = run_all(chosen, args.quick)
    print()
    print(heading(args.quick, load))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(table(rows))
    if args.json is not None:
        write_json(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
