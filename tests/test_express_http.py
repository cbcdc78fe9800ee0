"""The rendered Express middleware in a real app: node serves an Express app (its default
settings: Express's own ETags and freshness on) on a loopback port, and the tests send it
real HTTP requests. http-cache-headers runs in both renderings (the Express file, and the
TypeScript file compiled); the response cache is the Express file's."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import redis
from _express import write_files
from _helpers import wait_until
from _typescript import tsc

from templategen.engine import render
from templategen.formatting import typescript_toolchain
from templategen.redis_server import RedisServer

BODY = "kettle, 30 EUR"
ETAG = '"iAZll1XbKAn14M12iKYMqQ"'  # docs/wire-format.md: sha256, 16 bytes, base64url

#: A user's app: routes with the rendered middleware, counting how often each route runs.
APP = """
import express from "express";
import { createClient } from "redis";

const headers = await import(process.env.HEADERS_MODULE);
const { CacheHeadersMiddleware, publicApi, privateUserData } = headers;
const calls = {};
const count = (name) => {
  calls[name] = (calls[name] ?? 0) + 1;
};
const app = express();
const api = new CacheHeadersMiddleware(publicApi()).handler;
app.get("/calls", (req, res) => res.json(calls));
app.all("/api/products/:id", api, (req, res) => {
  count("product");
  res.type("text/plain").send("kettle, 30 EUR");
});
app.get("/json", api, (req, res) => res.json({ a: 1 }));

if (process.env.CACHE_MODULE) {
  const { CacheManager } = await import(process.env.CACHE_MODULE);
  const client = createClient({ url: process.env.REDIS_URL, disableOfflineQueue: true });
  client.on("error", () => {});
  await client.connect();
  const manager = new CacheManager(client);
  const products = manager.cacheResponses({ ttl: 60, failOpen: process.env.FAIL_OPEN !== "false" });
  const profile = new CacheHeadersMiddleware(privateUserData()).handler;
  app.get("/cached/products/:id", api, products, (req, res) => {
    count("cached");
    res.json({ id: req.params.id, name: "kettle" });
  });
  app.get("/cached/profile", profile, products, (req, res) => {
    count("profile");
    res.json({ user: "ada" });
  });
  app.get("/cached/own-private", products, (req, res) => {
    count("own-private");
    res.set("Cache-Control", "private, max-age=60").send("mine");
  });
  app.post("/cached/products/:id", async (req, res) => {
    count("write");
    res.json({ removed: await products.invalidate(`/cached/products/${req.params.id}`) });
  });
}

const server = app.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\\n");
});
"""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str


class App:
    """The app above in node, on a port of its own; stopped at teardown."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        node, _ = typescript_toolchain()
        self.process = subprocess.Popen(
            [node, str(folder / "app.mjs")],
            cwd=folder,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the app did not start: {self.process.stderr.read()}")  # type: ignore[union-attr]
        self.port = int(json.loads(line)["port"])

    def request(self, path: str, method: str = "GET", **headers: str) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
            response = conn.getresponse()
            body = response.read().decode("utf-8")
            fields = {k.lower(): v for k, v in response.getheaders()}
            return Reply(response.status, fields, body)
        finally:
            conn.close()

    def calls(self) -> dict[str, int]:
        result: dict[str, int] = json.loads(self.request("/calls").body)
        return result

    def stop(self) -> str:
        self.process.terminate()
        _, stderr = self.process.communicate(timeout=10)
        return stderr


@cache
def _rendered(pattern: str, language: str) -> tuple[str, str]:
    rendered = render(pattern, language)
    return rendered.path.name, rendered.text


def _folder(tmp_path: Path, implementation: str) -> dict[str, str]:
    """The rendered files in ``tmp_path`` (the TypeScript one compiled); the app's env."""
    write_files(tmp_path, {"app.mjs": APP})
    env: dict[str, str] = {}
    name, text = _rendered("http-cache-headers", implementation)
    if implementation == "express":
        write_files(tmp_path, {name: text})
        env["HEADERS_MODULE"] = (tmp_path / name).as_uri()
    else:
        compiled = tmp_path / "ts"
        assert tsc(compiled, {name: text}, emit=True) == {}
        env["HEADERS_MODULE"] = (compiled / "out" / "httpCacheHeaders.js").as_uri()
    name, text = _rendered("cache-aside", "express")
    write_files(tmp_path, {name: text})
    env["CACHE_MODULE"] = (tmp_path / name).as_uri()
    return env


@pytest.fixture(params=["express", "typescript"])
def app(request, tmp_path: Path, redis_server: RedisServer) -> Iterator[App]:
    env = _folder(tmp_path, request.param)
    server = App(tmp_path, {**env, "REDIS_URL": redis_server.url})
    yield server
    server.stop()


@pytest.fixture
def cached_app(
    tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer
) -> Iterator[App]:
    env = _folder(tmp_path, "express")
    server = App(tmp_path, {**env, "REDIS_URL": redis_server.url})
    yield server
    server.stop()


def _etag(body: bytes) -> str:
    digest = hashlib.sha256(body).digest()[:16]
    return '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode() + '"'


# --- http-cache-headers --------------------------------------------------------------------


def test_get_sends_200_with_the_etag_of_the_wire_format_not_expresss_own(app: App) -> None:
    reply = app.request("/api/products/1")
    assert (reply.status, reply.body) == (200, BODY)
    assert reply.headers["etag"] == ETAG == _etag(BODY.encode())
    assert reply.headers["cache-control"] == "public, max-age=300, stale-while-revalidate=60"
    assert reply.headers["vary"] == "Accept-Encoding"
    assert app.request("/json").headers["etag"] == _etag(b'{"a":1}')


def test_a_matching_member_of_an_if_none_match_list_gets_304(app: App) -> None:
    listed = f'"nope", W/"old,version", {ETAG} , "other"'
    reply = app.request("/api/products/1", If_None_Match=listed)
    assert (reply.status, reply.body) == (304, "")
    assert reply.headers["etag"] == ETAG
    assert reply.headers["cache-control"] == "public, max-age=300, stale-while-revalidate=60"
    assert "content-type" not in reply.headers


def test_a_weak_if_none_match_gets_304(app: App) -> None:
    reply = app.request("/api/products/1", If_None_Match=f"W/{ETAG}")
    assert (reply.status, reply.body) == (304, "")


def test_a_mismatching_if_none_match_gets_the_full_200(app: App) -> None:
    for value in ('"stale"', 'W/"stale", "older"', ETAG.strip('"'), '*, "other"'):
        reply = app.request("/api/products/1", If_None_Match=value)
        assert (reply.status, reply.body) == (200, BODY), value


def test_post_is_never_answered_304(app: App) -> None:
    for if_none_match in (ETAG, "*"):
        reply = app.request("/api/products/1", "POST", If_None_Match=if_none_match)
        assert (reply.status, reply.body) == (200, BODY)
        assert "cache-control" not in reply.headers
    assert app.calls()["product"] == 2


def test_head_gets_the_gets_etag_and_its_304(app: App) -> None:
    # Express's res.send hands a HEAD's body to nobody: the middleware hashes it anyway.
    reply = app.request("/api/products/1", "HEAD")
    assert (reply.status, reply.body, reply.headers["etag"]) == (200, "", ETAG)
    assert app.request("/api/products/1", "HEAD", If_None_Match=ETAG).status == 304


def test_expresss_own_freshness_check_does_not_decide(app: App) -> None:
    # Express's req.fresh would say fresh here (Date.parse rolls 31 Feb into March); the
    # reference's HTTP-date parser refuses the date, so the answer is a full 200.
    reply = app.request("/api/products/1", If_Modified_Since="Sun, 31 Feb 2094 08:49:37 GMT")
    assert reply.status == 200


# --- the response cache -------------------------------------------------------------------


def test_a_cached_response_is_served_from_redis_without_running_the_route(
    cached_app: App, redis_client: redis.Redis
) -> None:
    first = cached_app.request("/cached/products/1")
    # The middleware stores the response once it has gone out: wait for the value (a
    # request meanwhile would find the lease and render for itself, storing nothing).
    key = "cache:response:GET:/cached/products/1?"
    wait_until(lambda: (redis_client.get(key) or b"").startswith(b"{"))
    second = cached_app.request("/cached/products/1")
    assert first.status == second.status == 200
    assert first.body == second.body == '{"id":"1","name":"kettle"}'
    assert cached_app.calls()["cached"] == 1
    # The hit carries the same ETag, so the headers middleware in front answers 304s.
    assert second.headers["etag"] == first.headers["etag"] == _etag(first.body.encode())
    again = cached_app.request("/cached/products/1", If_None_Match=first.headers["etag"])
    assert again.status == 304
    assert cached_app.calls()["cached"] == 1


def test_an_invalidated_response_is_rendered_again(cached_app: App) -> None:
    cached_app.request("/cached/products/1")
    cached_app.request("/cached/products/1?b=2&a=1")
    removed = cached_app.request("/cached/products/1", "POST")
    assert json.loads(removed.body) == {"removed": 2}
    cached_app.request("/cached/products/1")
    assert cached_app.calls()["cached"] == 3


def test_a_private_response_is_never_cached(cached_app: App, redis_client: redis.Redis) -> None:
    # Private by the policy of the headers middleware in front, and by the route itself.
    for path in ("/cached/profile", "/cached/own-private"):
        for _ in range(2):
            reply = cached_app.request(path)
            assert reply.status == 200
            assert "private" in reply.headers["cache-control"]
    assert cached_app.calls()["profile"] == 2
    assert cached_app.calls()["own-private"] == 2
    # Each lease is released once its response has gone out.
    wait_until(lambda: redis_client.keys("cache:response:*") == [])


@pytest.mark.slow
@pytest.mark.parametrize("fail_open", [True, False])
def test_with_redis_down_the_route_still_answers_or_the_error_handler_does(
    tmp_path: Path, private_redis: RedisServer, fail_open: bool
) -> None:
    env = _folder(tmp_path, "express")
    server = App(
        tmp_path,
        {**env, "REDIS_URL": private_redis.url, "FAIL_OPEN": "true" if fail_open else "false"},
    )
    try:
        assert server.request("/cached/products/1").status == 200
        private_redis.stop()
        replies = [server.request("/cached/products/1") for _ in range(3)]
        if fail_open:
            assert [r.status for r in replies] == [200, 200, 200]
            assert server.calls()["cached"] == 4
        else:
            assert [r.status for r in replies] == [500, 500, 500]
            assert server.calls()["cached"] == 1
    finally:
        stderr = server.stop()
    if fail_open:
        assert stderr.count("Redis unavailable") == 1  # one warning per outage, not per call
    else:
        assert "CacheUnavailableError" in stderr
