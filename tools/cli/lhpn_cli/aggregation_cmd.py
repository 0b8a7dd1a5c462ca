"""`lhpn aggregation rebuild`: run aggregation's own operator entry point,
`python -m aggregation rebuild`, and draw its progress. `lhpn aggregation reroute`: run
`python -m aggregation reroute`, the repair of partitions after a reorganisation joined provinces
of two partitions after their events (docs/aggregation.md).

The entry point drops aggregation's read models and replays its event archive into them (the
answers are the same afterwards); the running service requeues new events meanwhile and goes on
once it is done. It reads aggregation's settings (`MONGO_URL`, `MONGO_DB`, …) from the
environment, so run this where aggregation's environment is: with compose,
`docker compose run --rm aggregation lhpn aggregation rebuild`.
"""

from __future__ import annotations

import collections
import json
import shlex
import subprocess
import sys
from typing import Annotated, Any

import typer

from .common import console, progress

aggregation_app = typer.Typer(
    help="Aggregation: rebuild its read models from its event archive.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

ENTRY_POINT = [sys.executable, "-m", "aggregation", "rebuild"]
REROUTE = [sys.executable, "-m", "aggregation", "reroute"]
REROUTED = "partitions rebuilt from their events routed again"


def follow(lines: Any, on_progress: Any) -> dict[str, Any] | None:
    """Read the entry point's JSON log lines: report each `rebuild progress`, return the final
    `read models rebuilt` line (None if it never came)."""
    done: dict[str, Any] | None = None
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if record.get("msg") == "rebuild progress":
            on_progress(int(record["archive_read"]), int(record["archive_total"]))
        elif record.get("msg") == "read models rebuilt":
            done = record
    return done


@aggregation_app.command("rebuild")
def rebuild(
    command: Annotated[
        str | None,
        typer.Option(
            help="Run this instead of `python -m aggregation rebuild` (e.g. through docker "
            "compose). It must print aggregation's JSON log lines.",
        ),
    ] = None,
) -> None:
    """Drop aggregation's read models and rebuild them from its event archive. Safe while
    aggregation runs; queries answer from what is rebuilt so far until it ends."""
    argv = shlex.split(command) if command else ENTRY_POINT
    tail: collections.deque[str] = collections.deque(maxlen=20)
    try:
        proc = subprocess.Popen(  # noqa: S603 - the operator's own command line
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except OSError as exc:
        console.print(f"[red]Không chạy được {argv[0]}:[/red] {exc}")
        raise typer.Exit(2) from exc
    output = proc.stdout
    assert output is not None

    def lines() -> Any:
        for line in output:
            tail.append(line.rstrip())
            yield line

    with progress() as bars:
        task = bars.add_task("Dựng lại số liệu tổng hợp (lô sự kiện)", total=None)
        done = follow(lines(), lambda read, total: bars.update(task, completed=read, total=total))
    if proc.wait() != 0 or done is None:
        console.print("[red]Dựng lại không xong.[/red] Những dòng cuối:\n" + "\n".join(tail))
        console.print("Chạy lại lệnh: việc dựng lại bắt đầu lại từ đầu và an toàn khi chạy lại.")
        raise typer.Exit(1)
    console.print(
        f"Đã dựng lại số liệu tổng hợp từ {done.get('events', '?')} sự kiện "
        f"trong {done.get('seconds', '?')} giây."
    )


def last_record(lines: Any, message: str) -> dict[str, Any] | None:
    """The last of the entry point's JSON log lines whose `msg` is `message` (None if none)."""
    found: dict[str, Any] | None = None
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("msg") == message:
            found = record
    return found


@aggregation_app.command("reroute")
def reroute(
    command: Annotated[
        str | None,
        typer.Option(
            help="Run this instead of `python -m aggregation reroute` (e.g. through docker "
            "compose). It must print aggregation's JSON log lines.",
        ),
    ] = None,
) -> None:
    """With partitions, rebuild every partition from every partition's events routed again:
    the repair after `lhpn_aggregation_partition_moves_total` counted a reorganisation joining
    provinces of two partitions. Stop every aggregation process first (it refuses otherwise);
    a repair that failed can be run again."""
    argv = shlex.split(command) if command else REROUTE
    try:
        with console.status("Đang định tuyến lại các sự kiện và dựng lại mọi phân vùng…"):
            done = subprocess.run(  # noqa: S603 - the operator's own command line
                argv, capture_output=True, text=True, check=False
            )
    except OSError as exc:
        console.print(f"[red]Không chạy được {argv[0]}:[/red] {exc}")
        raise typer.Exit(2) from exc
    lines = (done.stdout + done.stderr).splitlines()
    record = last_record(lines, REROUTED)
    if done.returncode != 0 or record is None:
        console.print(
            "[red]Chưa sửa xong các phân vùng.[/red] Những dòng cuối:\n" + "\n".join(lines[-20:])
        )
        console.print("Dừng mọi tiến trình aggregation rồi chạy lại lệnh: chạy lại là an toàn.")
        raise typer.Exit(1)
    counts = ", ".join(f"phân vùng {k}: {n}" for k, n in enumerate(record.get("events", [])))
    console.print(
        f"Đã dựng lại các phân vùng từ sự kiện được định tuyến lại ({counts}) "
        f"trong {record.get('seconds', '?')} giây. Khởi động lại aggregation."
    )
