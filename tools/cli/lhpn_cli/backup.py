"""Backups of the services' databases with the driver, in the layout `mongodump --gzip` writes and
`mongorestore --gzip --dir` reads:

    <backup>/manifest.json                        ours: what, when, how consistent, checksums
    <backup>/<database>/<collection>.bson.gz      every document, as stored (BSON, gzip)
    <backup>/<database>/<collection>.metadata.json.gz   indexes and options (Extended JSON)

Documents are copied as raw BSON, byte for byte: the cases service's sealed personal data stays
sealed (its keys, `CASE_KEYS`, and `WEBHOOK_SECRET_KEYS` are backed up apart — never here).

What "consistent" means here, without transactions:
- `snapshot` (a replica set, which compose runs): every collection of every database is read
  at one cluster time (a snapshot session), so the backup is the state of one instant while the
  services keep running. MongoDB keeps that instant readable for
  `minSnapshotHistoryWindowInSeconds` (300 s by default): a longer dump fails and says so.
- `verified` (any server, the development one included): everything is read, then read again
  and compared (SHA-256 of each collection's documents). The backup is accepted only when
  nothing changed in between, i.e. it is the state at the moment between the two passes —
  which in practice needs the services stopped or idle (`docker compose stop intake cases
  reminders aggregation portal`). A change makes the command fail and keep nothing.
A restore puts every document back as it was and rebuilds the indexes; it refuses a database
that is not empty unless asked to drop it first.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from .common import Failed

FORMAT = "lhpn-backup/1"
MANIFEST = "manifest.json"
READ_BATCH = 1000
INSERT_BATCH = 1000
RAW: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)

Consistency = Literal["auto", "snapshot", "verified"]
Advance = Callable[[int], None]
Start = Callable[[str, int], Advance]
"""start(label, total) → advance(n): drives a progress bar."""


class NotConsistent(Failed):
    """Something changed while the backup was read: it is not kept."""


@dataclass
class CollectionEntry:
    documents: int
    sha256: str
    """of the uncompressed BSON: every document's bytes, in `_id` order"""
    indexes: int


@dataclass
class Manifest:
    format: str
    created_at: str
    consistency: str
    """`snapshot` (one cluster time) or `verified` (read twice, unchanged)"""
    server_version: str
    databases: dict[str, dict[str, CollectionEntry]] = field(default_factory=dict)
    cluster_time: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        try:
            raw = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise Failed(f"{directory}: không có {MANIFEST} đọc được ({exc})") from exc
        if raw.get("format") != FORMAT:
            raise Failed(f"{directory}: không phải bản sao lưu {FORMAT}")
        databases = {
            db: {name: CollectionEntry(**entry) for name, entry in colls.items()}
            for db, colls in raw.pop("databases").items()
        }
        return cls(**raw, databases=databases)

    @property
    def documents(self) -> int:
        return sum(e.documents for colls in self.databases.values() for e in colls.values())


# ---- backup ----------------------------------------------------------------------------------


def _is_replica_set(client: MongoClient[Any]) -> bool:
    try:
        hello = client.admin.command("hello")
    except OperationFailure:  # servers before 4.4 (and the development one) know only this
        hello = client.admin.command("isMaster")
    return bool(hello.get("setName"))


def _collections(client: MongoClient[Any], db: str) -> list[Mapping[str, Any]]:
    """The database's collections (not views, not system collections), by name."""
    infos = list(client[db].list_collections())
    return sorted(
        (
            i
            for i in infos
            if i.get("type", "collection") == "collection" and not i["name"].startswith("system.")
        ),
        key=lambda i: i["name"],
    )


def _documents(coll: Collection[RawBSONDocument], session: ClientSession | None) -> Iterator[bytes]:
    cursor = coll.find({}, sort=[("_id", 1)], batch_size=READ_BATCH, session=session)
    for doc in cursor:
        yield bytes(doc.raw)


def _metadata(name: str, info: Mapping[str, Any], indexes: Sequence[Mapping[str, Any]]) -> bytes:
    """mongodump's `<collection>.metadata.json`: canonical Extended JSON."""
    specs = [{k: v for k, v in ix.items() if k != "ns"} for ix in indexes]
    doc: dict[str, Any] = {
        "indexes": specs,
        "collectionName": name,
        "type": "collection",
        "options": info.get("options", {}),
    }
    uuid = (info.get("info") or {}).get("uuid")
    if uuid is not None:  # mongodump writes it as hex; mongorestore --preserveUUID reads it
        doc["uuid"] = uuid.hex if isinstance(uuid, UUID) else bytes(uuid).hex()
    return json_util.dumps(doc, json_options=json_util.CANONICAL_JSON_OPTIONS).encode()


def create_backup(
    client: MongoClient[Any],
    target: Path,
    databases: Sequence[str],
    *,
    consistency: Consistency,
    now: datetime,
    start: Start,
) -> Manifest:
    """Write the backup into `target` (which must not exist yet): first into
    `<target>.partial`, renamed only once complete and, in `verified` mode, checked."""
    if target.exists():
        raise Failed(f"{target} đã có: chọn một thư mục mới cho bản sao lưu.")
    replica = _is_replica_set(client)
    mode = ("snapshot" if replica else "verified") if consistency == "auto" else consistency
    if mode == "snapshot" and not replica:
        raise Failed(
            "máy chủ MongoDB này không phải replica set nên không đọc được một thời điểm chung: "
            "dừng các dịch vụ rồi dùng --consistency verified."
        )
    build = client.admin.command("buildInfo")
    manifest = Manifest(FORMAT, now.isoformat(), mode, str(build.get("version", "?")))
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    plan = {db: _collections(client, db) for db in databases}
    totals = {
        (db, i["name"]): client[db][i["name"]].estimated_document_count()
        for db, infos in plan.items()
        for i in infos
    }
    try:
        session = client.start_session(snapshot=True) if mode == "snapshot" else None
        try:
            advance = start("Sao lưu (tài liệu)", sum(totals.values()))
            for db, infos in plan.items():
                (partial / db).mkdir()
                manifest.databases[db] = {}
                for info in infos:
                    manifest.databases[db][info["name"]] = _dump_collection(
                        client, db, info, partial, session, advance
                    )
            # the cluster time the server chose at the first read (PyMongo keeps it privately;
            # recorded for the operator only)
            at = getattr(session, "_snapshot_time", None)
            if at is not None:
                manifest.cluster_time = str(at)
        finally:
            if session is not None:
                session.end_session()
        if mode == "verified":
            _verify_unchanged(client, manifest, start)
        (partial / MANIFEST).write_text(manifest.to_json() + "\n", encoding="utf-8")
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest


def _dump_collection(
    client: MongoClient[Any],
    db: str,
    info: Mapping[str, Any],
    directory: Path,
    session: ClientSession | None,
    advance: Advance,
) -> CollectionEntry:
    name = info["name"]
    coll = client[db].get_collection(name, codec_options=RAW)
    digest = hashlib.sha256()
    count = 0
    with gzip.open(directory / db / f"{name}.bson.gz", "wb", compresslevel=6) as out:
        for raw in _documents(coll, session):
            out.write(raw)
            digest.update(raw)
            count += 1
            if count % READ_BATCH == 0:
                advance(READ_BATCH)
    advance(count % READ_BATCH)
    indexes = list(client[db][name].list_indexes())
    with gzip.open(directory / db / f"{name}.metadata.json.gz", "wb") as out:
        out.write(_metadata(name, info, indexes))
    return CollectionEntry(documents=count, sha256=digest.hexdigest(), indexes=len(indexes))


def _verify_unchanged(client: MongoClient[Any], manifest: Manifest, start: Start) -> None:
    changed: list[str] = []
    advance = start("Kiểm tra không có gì thay đổi", manifest.documents)
    for db, colls in manifest.databases.items():
        now_there = {i["name"] for i in _collections(client, db)}
        changed += [f"{db}.{n}" for n in sorted(now_there - set(colls))]
        for name, entry in colls.items():
            digest = hashlib.sha256()
            count = 0
            coll = client[db].get_collection(name, codec_options=RAW)
            for raw in _documents(coll, None):
                digest.update(raw)
                count += 1
            advance(entry.documents)
            if (count, digest.hexdigest()) != (entry.documents, entry.sha256):
                changed.append(f"{db}.{name}")
    if changed:
        raise NotConsistent(
            "dữ liệu thay đổi trong lúc sao lưu ("
            + ", ".join(changed[:10])
            + "): bản sao lưu không nhất quán nên không được giữ. Dừng các dịch vụ "
            "(docker compose stop intake cases reminders aggregation portal) rồi chạy lại, "
            "hoặc dùng MongoDB replica set (--consistency snapshot)."
        )


# ---- restore ---------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    databases: dict[str, dict[str, int]] = field(default_factory=dict)
    """database → collection → documents restored"""


def _raw_documents(path: Path) -> Iterator[bytes]:
    """The BSON documents of a `.bson.gz` file, one by one (each starts with its length)."""
    with gzip.open(path, "rb") as f:
        while header := f.read(4):
            size = int.from_bytes(header, "little")
            body = f.read(size - 4) if size > 4 else b""
            if len(header) < 4 or size < 5 or len(body) != size - 4:
                raise Failed(f"{path}: tệp bị cắt cụt hoặc hỏng")
            yield header + body


def _file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    count = 0
    for raw in _raw_documents(path):
        digest.update(raw)
        count += 1
    return count, digest.hexdigest()


def verify_files(source: Path, manifest: Manifest, start: Start) -> None:
    """Every file is there, complete, and has the checksum the manifest recorded."""
    advance = start("Kiểm tra tệp sao lưu", manifest.documents)
    for db, colls in manifest.databases.items():
        for name, entry in colls.items():
            path = source / db / f"{name}.bson.gz"
            try:
                found = _file_digest(path)
            except (OSError, EOFError) as exc:
                raise Failed(f"{path}: không đọc được ({exc})") from exc
            if found != (entry.documents, entry.sha256):
                raise Failed(f"{path}: nội dung không khớp với {MANIFEST}")
            advance(entry.documents)


def restore_backup(
    client: MongoClient[Any],
    source: Path,
    *,
    databases: Sequence[str] | None,
    drop: bool,
    start: Start,
) -> RestoreReport:
    """Put the backup's databases back (all, or `databases`): checked first, then each database
    emptied (`drop`) or found empty, then its documents and indexes."""
    manifest = Manifest.read(source)
    chosen = list(databases or manifest.databases)
    unknown = [db for db in chosen if db not in manifest.databases]
    if unknown:
        raise Failed(f"bản sao lưu không có cơ sở dữ liệu {', '.join(unknown)}")
    verify_files(source, manifest, start)
    for db in chosen:
        names = client[db].list_collection_names()
        if drop:
            client.drop_database(db)
        elif any([client[db][n].estimated_document_count() for n in names]):
            raise Failed(
                f"cơ sở dữ liệu {db} đang có dữ liệu: dùng --drop để thay bằng bản sao lưu."
            )
    report = RestoreReport()
    advance = start(
        "Khôi phục (tài liệu)",
        sum(e.documents for db in chosen for e in manifest.databases[db].values()),
    )
    for db in chosen:
        report.databases[db] = {}
        for name, entry in manifest.databases[db].items():
            restored = _restore_collection(client, source, db, name, advance)
            if restored != entry.documents:
                raise Failed(f"{db}.{name}: khôi phục {restored} tài liệu, cần {entry.documents}")
            report.databases[db][name] = restored
    return report


def _restore_collection(
    client: MongoClient[Any], source: Path, db: str, name: str, advance: Advance
) -> int:
    with gzip.open(source / db / f"{name}.metadata.json.gz", "rb") as f:
        metadata = json_util.loads(f.read().decode("utf-8"))
    database = client[db]
    options = metadata.get("options") or {}
    try:
        database.create_collection(name, **options)
    except OperationFailure as exc:
        if exc.code != 48:  # NamespaceExists: a collection kept on purpose (no --drop)
            raise
    coll = database.get_collection(name, codec_options=RAW)
    batch: list[RawBSONDocument] = []
    count = 0
    for raw in _raw_documents(source / db / f"{name}.bson.gz"):
        batch.append(RawBSONDocument(raw))
        if len(batch) >= INSERT_BATCH:
            coll.insert_many(batch, ordered=True)
            count += len(batch)
            advance(len(batch))
            batch = []
    if batch:
        coll.insert_many(batch, ordered=True)
        count += len(batch)
        advance(len(batch))
    specs = [
        {k: v for k, v in ix.items() if k not in ("v", "ns")}
        for ix in metadata.get("indexes", [])
        if ix.get("name") != "_id_"
    ]
    if specs:
        database.command({"createIndexes": name, "indexes": specs})
    return count
