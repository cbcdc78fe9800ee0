"""The private redis-server the suite runs on: ours, empty, and not persisting."""

from __future__ import annotations

import redis

from templategen.redis_server import RedisServer


def test_private_server_keeps_nothing_on_disk(redis_client: redis.Redis) -> None:
    assert redis_client.config_get("save")["save"] == ""
    assert redis_client.config_get("appendonly")["appendonly"] == "no"


def test_private_server_can_be_killed_and_restarted_on_the_same_port(
    private_redis: RedisServer,
) -> None:
    client = redis.Redis.from_url(private_redis.url, socket_timeout=1)
    client.set("k", "v")
    private_redis.kill()
    assert not private_redis.running
    private_redis.start()
    assert client.get("k") is None  # nothing persisted across the crash
