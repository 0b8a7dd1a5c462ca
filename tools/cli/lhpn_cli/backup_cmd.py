"""`lhpn backup create|restore|check`: the services' databases to and from a directory that
`mongorestore --gzip --dir` also reads (see `backup` for the layout and for what "consistent"
means). This is the one command that talks to the databases directly: it is the operator's
whole-database tool, run with MongoDB's root account (`MONGO_URL`)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pymongo import MongoClient
from rich.progress import Progress

from lhpn_shared.contracts.owners import SERVICES

from .backup import Advance, Manifest, Start, create_backup, restore_backup, verify_files
from .common import console, progress, run

backup_app = typer.Typer(
    help="Back up and restore every service's database (gzip BSON, readable by mongorestore).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


class Mode(StrEnum):
    auto = "auto"
    snapshot = "snapshot"
    verified = "verified"


MongoUrl = Annotated[
    str,
    typer.Option(
        envvar="MONGO_URL",
        help="MongoDB, as an account that reads (backup) or writes (restore) every database: "
        "compose's root account, mongodb://lhpn:…@mongo:27017/?authSource=admin.",
    ),
]
Databases = Annotated[
    list[str] | None,
    typer.Option(
        "--database",
        help="Only this database (repeat for several). Default: every service's — "
        + ", ".join(SERVICES)
        + " (the portal has none).",
    ),
]


def bars(display: Progress) -> Start:
    def start(label: str, total: int) -> Advance:
        task = display.add_task(label, total=total)
        return lambda n: display.advance(task, n)

    return start


def client_for(url: str) -> MongoClient[dict[str, object]]:
    return MongoClient(url, serverSelectionTimeoutMS=10_000, appname="lhpn-backup")


@backup_app.command("create")
def create(
    target: Annotated[Path, typer.Argument(help="A new directory for the backup.")],
    mongo_url: MongoUrl = "mongodb://127.0.0.1:27017/",
    database: Databases = None,
    consistency: Annotated[
        Mode,
        typer.Option(
            help="snapshot: every collection read at one instant (needs a replica set, as "
            "compose runs; the services may keep running). verified: everything read twice and "
            "compared; refused if anything changed, so stop the services first. auto: snapshot "
            "on a replica set, verified otherwise.",
        ),
    ] = Mode.auto,
) -> None:
    """Back up every service's database. The sealed personal data of cases stays sealed: back
    CASE_KEYS and WEBHOOK_SECRET_KEYS up separately, never next to this."""

    async def work() -> Manifest:
        client = client_for(mongo_url)
        try:
            with progress() as display:
                return create_backup(
                    client,
                    target,
                    list(database or SERVICES),
                    consistency=consistency.value,
                    now=datetime.now(UTC),
                    start=bars(display),
                )
        finally:
            client.close()

    manifest = run(work)
    collections = sum(len(c) for c in manifest.databases.values())
    console.print(
        f"Đã sao lưu {manifest.documents} tài liệu, {collections} bảng của "
        f"{len(manifest.databases)} cơ sở dữ liệu vào {target} "
        f"(nhất quán: {manifest.consistency})."
    )


@backup_app.command("restore")
def restore(
    source: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="A backup's directory.")
    ],
    mongo_url: MongoUrl = "mongodb://127.0.0.1:27017/",
    database: Databases = None,
    drop: Annotated[
        bool,
        typer.Option(
            "--drop",
            help="Empty each database first. Without it, a database that has data is refused.",
        ),
    ] = False,
) -> None:
    """Put the databases back as the backup has them, indexes included. Stop the services
    first and start them afterwards; then give the broker's queues a moment: events published
    after the backup are still delivered, and each service ignores what it already has."""

    async def work() -> dict[str, dict[str, int]]:
        client = client_for(mongo_url)
        try:
            with progress() as display:
                report = restore_backup(
                    client, source, databases=database, drop=drop, start=bars(display)
                )
            return report.databases
        finally:
            client.close()

    restored = run(work)
    documents = sum(n for colls in restored.values() for n in colls.values())
    console.print(
        f"Đã khôi phục {documents} tài liệu vào {len(restored)} cơ sở dữ liệu "
        f"({', '.join(restored)})."
    )


@backup_app.command("check")
def check(
    source: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="A backup's directory.")
    ],
) -> None:
    """Check a backup without restoring it: every file there, complete, and unchanged since it
    was written (the checksums of its manifest)."""

    async def work() -> Manifest:
        manifest = Manifest.read(source)
        with progress() as display:
            verify_files(source, manifest, bars(display))
        return manifest

    manifest = run(work)
    console.print(
        f"Bản sao lưu {source} ({manifest.created_at}, nhất quán: {manifest.consistency}) "
        f"đầy đủ: {manifest.documents} tài liệu."
    )
