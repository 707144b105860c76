"""Fixtures of the failure tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.servers import RedisServer


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    """A redis-server of the test's own, on a free port, that the test may stop, freeze or kill."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()
