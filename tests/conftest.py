"""Shared fixtures: a private redis-server for the whole session, a clean client per test.

No test talks to a Redis it did not start. Tests that stop or kill Redis use
``private_redis``, a server of their own, so the shared one stays up.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from templategen.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    # No skip when redis-server is missing: RedisServer raises with the install command,
    # so a machine without it fails loudly instead of passing by skipping.
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, free to be stopped, killed and restarted."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def stopped_redis(private_redis: RedisServer) -> Iterator[redis.Redis]:
    """A client of ``private_redis`` after that server was stopped: every call fails."""
    client = redis.Redis.from_url(private_redis.url, socket_connect_timeout=1)
    private_redis.stop()
    yield client
    client.close()
