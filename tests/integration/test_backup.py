"""Backups of whole databases with the driver, against DevMongo (issue 14): mongodump's layout,
every document byte for byte, indexes back, and the refusals — a backup that changed while it
was read, a restore over data, a damaged file, a snapshot the server cannot give."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import bson
import pytest
from bson import json_util
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, MongoClient

from lhpn_cli.backup import (
    Advance,
    Manifest,
    NotConsistent,
    create_backup,
    restore_backup,
)
from lhpn_cli.common import Failed
from tests.support.infra import DevMongo

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 31, 1, 0, tzinfo=UTC)


def quiet(label: str, total: int) -> Advance:
    return lambda n: None


@pytest.fixture
def mongo(devmongo: DevMongo) -> Iterator[MongoClient[dict[str, object]]]:
    client: MongoClient[dict[str, object]] = MongoClient(
        devmongo.url, uuidRepresentation="standard", tz_aware=True
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def databases(mongo: MongoClient[dict[str, object]]) -> Iterator[list[str]]:
    """Two databases of a service-like shape: instants, UUIDs, binaries, Vietnamese text, a
    unique index and a compound one, an outbox in a document."""
    tag = uuid.uuid4().hex[:8]
    names = [f"bk_{tag}_intake", f"bk_{tag}_cases"]
    intake, cases = (mongo[n] for n in names)
    intake.activities.insert_many(
        [
            {
                "_id": str(uuid.uuid4()),
                "unit_id": f"22{i:03d}",
                "title": f"Giám sát chính sách số {i} — Hội LHPN phường",
                "occurred_on": "2021-03-05",
                "recorded_at": datetime(2021, 3, 5, 2, i % 60, tzinfo=UTC),
                "revision": 1 + i % 3,
                "metrics": {"recommendations": i, "recommendations_accepted": i // 2},
                "outbox": [{"event_id": str(uuid.uuid4()), "body": "{}"}] if i % 7 == 0 else [],
                "outbox_pending": i % 7 == 0,
            }
            for i in range(1500)
        ]
    )
    intake.activities.create_index([("unit_id", ASCENDING), ("occurred_on", ASCENDING)])
    intake.units.insert_one({"_id": "54", "name": "Tỉnh Phú Yên", "revision": 3})
    cases.cases.insert_many(
        [
            {
                "_id": uuid.uuid4(),
                "requester": {"sealed": bson.Binary(bytes([i]) * 48), "kid": "k1"},
                "status": "received",
            }
            for i in range(40)
        ]
    )
    cases.cases.create_index([("status", ASCENDING)], name="by_status")
    cases.inbox.create_index([("event_id", ASCENDING)], unique=True)
    cases.inbox.insert_one({"event_id": "e-1"})
    try:
        yield names
    finally:
        for n in names:
            mongo.drop_database(n)


def dump(client: MongoClient[dict[str, object]], names: list[str]) -> dict[str, list[bytes]]:
    """Every document of every collection, as raw BSON, in `_id` order."""
    out: dict[str, list[bytes]] = {}
    for db in names:
        for coll in sorted(client[db].list_collection_names()):
            raw = client[db].get_collection(
                coll, codec_options=bson.CodecOptions(document_class=RawBSONDocument)
            )
            out[f"{db}.{coll}"] = [d.raw for d in raw.find({}, sort=[("_id", 1)])]
    return out


def indexes(client: MongoClient[dict[str, object]], names: list[str]) -> dict[str, object]:
    return {
        f"{db}.{coll}": sorted(
            (ix["name"], tuple(ix["key"].items()), bool(ix.get("unique")))
            for ix in client[db][coll].list_indexes()
        )
        for db in names
        for coll in client[db].list_collection_names()
    }


def test_a_backup_restores_every_document_byte_for_byte_with_its_indexes(
    mongo: MongoClient[dict[str, object]], databases: list[str], tmp_path: Path
) -> None:
    before, before_indexes = dump(mongo, databases), indexes(mongo, databases)
    target = tmp_path / "backup"

    manifest = create_backup(mongo, target, databases, consistency="auto", now=NOW, start=quiet)
    for db in databases:
        mongo.drop_database(db)
    report = restore_backup(mongo, target, databases=None, drop=False, start=quiet)

    assert manifest.consistency == "verified"  # DevMongo is no replica set
    assert dump(mongo, databases) == before
    assert indexes(mongo, databases) == before_indexes
    assert report.databases[databases[0]] == {"activities": 1500, "units": 1}
    assert not (tmp_path / "backup.partial").exists()


def test_the_backup_has_mongodump_s_layout_and_formats(
    mongo: MongoClient[dict[str, object]], databases: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "backup"
    create_backup(mongo, target, databases, consistency="verified", now=NOW, start=quiet)

    intake = target / databases[0]
    assert sorted(p.name for p in intake.iterdir()) == [
        "activities.bson.gz",
        "activities.metadata.json.gz",
        "units.bson.gz",
        "units.metadata.json.gz",
    ]
    # <collection>.bson.gz: BSON documents one after the other, gzip
    documents = bson.decode_all(gzip.decompress((intake / "activities.bson.gz").read_bytes()))
    assert len(documents) == 1500 and documents[0]["title"].startswith("Giám sát")
    # <collection>.metadata.json.gz: Extended JSON with the index specifications
    metadata = json_util.loads(
        gzip.decompress((intake / "activities.metadata.json.gz").read_bytes())
    )
    assert metadata["collectionName"] == "activities"
    assert {ix["name"] for ix in metadata["indexes"]} == {"_id_", "unit_id_1_occurred_on_1"}
    assert isinstance(metadata["options"], dict)
    assert (
        '"$numberInt"'
        in gzip.decompress((intake / "activities.metadata.json.gz").read_bytes()).decode()
    )  # canonical Extended JSON, as mongodump writes it
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["databases"][databases[1]]["inbox"]["indexes"] == 2


def test_a_backup_during_which_something_changed_is_refused_and_nothing_is_kept(
    mongo: MongoClient[dict[str, object]], databases: list[str], tmp_path: Path
) -> None:
    def a_service_writes_meanwhile(label: str, total: int) -> Advance:
        if label.startswith("Kiểm tra"):  # between the two passes
            mongo[databases[0]].units.update_one({"_id": "54"}, {"$inc": {"revision": 1}})
        return lambda n: None

    with pytest.raises(NotConsistent, match=f"{databases[0]}.units"):
        create_backup(
            mongo,
            tmp_path / "backup",
            databases,
            consistency="verified",
            now=NOW,
            start=a_service_writes_meanwhile,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_snapshot_backup_is_refused_where_the_server_is_no_replica_set(
    mongo: MongoClient[dict[str, object]], databases: list[str], tmp_path: Path
) -> None:
    with pytest.raises(Failed, match="replica set"):
        create_backup(
            mongo, tmp_path / "backup", databases, consistency="snapshot", now=NOW, start=quiet
        )


def test_a_restore_over_data_is_refused_unless_asked_to_drop_it(
    mongo: MongoClient[dict[str, object]], databases: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "backup"
    create_backup(mongo, target, databases, consistency="verified", now=NOW, start=quiet)
    before = dump(mongo, databases)
    mongo[databases[0]].units.insert_one({"_id": "VN", "name": "written after the backup"})

    with pytest.raises(Failed, match="--drop"):
        restore_backup(mongo, target, databases=None, drop=False, start=quiet)
    restore_backup(mongo, target, databases=None, drop=True, start=quiet)

    assert dump(mongo, databases) == before


def test_a_damaged_backup_is_refused_before_anything_is_touched(
    mongo: MongoClient[dict[str, object]], databases: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "backup"
    create_backup(mongo, target, databases, consistency="verified", now=NOW, start=quiet)
    path = target / databases[0] / "activities.bson.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))  # cut in the middle of a document
    for db in databases:
        mongo.drop_database(db)

    with pytest.raises(Failed, match=r"activities\.bson\.gz"):
        restore_backup(mongo, target, databases=None, drop=False, start=quiet)
    assert not set(databases) & set(mongo.list_database_names())


def test_a_restore_can_take_one_database_of_the_backup(
    mongo: MongoClient[dict[str, object]], databases: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "backup"
    manifest = create_backup(mongo, target, databases, consistency="verified", now=NOW, start=quiet)
    mongo.drop_database(databases[1])

    restore_backup(mongo, target, databases=[databases[1]], drop=False, start=quiet)

    assert mongo[databases[1]].cases.count_documents({}) == 40
    assert Manifest.read(target).documents == manifest.documents == 1500 + 1 + 40 + 1
    with pytest.raises(Failed, match="nope"):
        restore_backup(mongo, target, databases=["nope"], drop=False, start=quiet)
