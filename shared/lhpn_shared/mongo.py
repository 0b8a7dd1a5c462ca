"""Mongo client factory (PyMongo's AsyncMongoClient) and the failures that mean 'try later'."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    ServerSelectionTimeoutError,
)

from .settings import ServiceSettings

TRANSIENT_DB_ERRORS: tuple[type[Exception], ...] = (
    ConnectionFailure,
    AutoReconnect,
    NetworkTimeout,
    ServerSelectionTimeoutError,
)

Doc = dict[str, Any]


def make_client(settings: ServiceSettings) -> AsyncMongoClient[Doc]:
    """A client that returns aware UTC datetimes and stores UUIDs in the standard form.

    Short timeouts: when the database is down a request should answer 503 quickly rather
    than hang (SPEC §9.2).
    """
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        tzinfo=UTC,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=settings.mongo_timeout_ms,
        connectTimeoutMS=settings.mongo_timeout_ms,
        socketTimeoutMS=max(settings.mongo_timeout_ms * 4, 10_000),
        appname=settings.service_name,
    )


def database(client: AsyncMongoClient[Doc], name: str) -> AsyncDatabase[Doc]:
    return client.get_database(
        name, codec_options=CodecOptions(tz_aware=True, tzinfo=UTC, uuid_representation=4)
    )


async def ping(client: AsyncMongoClient[Doc]) -> bool:
    try:
        await client.admin.command("ping")
    except TRANSIENT_DB_ERRORS:
        return False
    return True
