"""The request size limit over a real HTTP server (uvicorn): a body announced too large is
refused before a byte of it is sent, and a chunked body is cut off once it passes the limit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import uvicorn

from cases.app import create_app
from cases.settings import CasesSettings
from tests.support.http import eventually
from tests.support.infra import free_port

pytestmark = pytest.mark.integration

LIMIT = 256 * 1024


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[int]:
    """The cases app under uvicorn on a free loopback port, without its lifespan (no database
    or broker: only the HTTP stack is under test)."""
    port = free_port()
    app = create_app(CasesSettings(max_request_bytes=LIMIT))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started), timeout=10)
        yield port
    finally:
        server.should_exit = True
        await task


async def test_a_body_announced_too_large_is_refused_before_it_is_sent() -> None:
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/v1/cases HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")


async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit() -> None:
    chunk, most = 64 * 1024, 16 * 1024 * 1024
    sent = 0
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/v1/cases HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        answer = asyncio.create_task(reader.readline())
        while not answer.done() and sent < most:
            writer.write(b"%x\r\n%s\r\n" % (chunk, b"x" * chunk))
            try:
                await writer.drain()
            except ConnectionError:  # the server closed after answering
                break
            sent += chunk
            await asyncio.sleep(0.001)
        status_line = await asyncio.wait_for(answer, timeout=10)
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")
    assert sent < most
