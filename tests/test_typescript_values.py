"""What the rendered TypeScript promises beyond the scenarios, checked on a real Redis.

- A hit returns what was stored: values JSON cannot hold (NaN, a Map, a Date, undefined,
  a sparse array, a cycle) are refused with SerializationError, not stored as something
  else; wrapped-function arguments likewise with UnencodableArgumentsError.
- Any node-redis client works: RESP2 as well as RESP3, and the client's keyPrefix does
  not move the keys (they are the wire format other languages read).
- A client that is not connected is refused when the cache is made.
"""

from __future__ import annotations

import json

import pytest
from _typescript import node_run, tsc

from templategen.engine import render
from templategen.redis_server import RedisServer

SCRIPT = """
import { createClient } from "redis";
import * as cacheAside from "./out/cacheAside.js";
import * as stampedeLock from "./out/stampedeLock.js";
import * as earlyRefresh from "./out/earlyRefresh.js";

const url = process.argv[2] ?? %(url)s;
const results = {};
async function outcome(name, run) {
  try {
    results[name] = { ok: await run() };
  } catch (error) {
    results[name] = { error: error.name, message: error.message };
  }
}

const client = await createClient({ url }).connect();
await client.flushAll();
const cache = new cacheAside.CacheAside(client);
const manager = new cacheAside.CacheManager(client);
const sparse = [1, , 3];
const cycle = { a: 1 };
cycle.self = cycle;
for (const [name, value] of Object.entries({
  nan: NaN, infinity: [1, Infinity], map: new Map([[1, 2]]), date: new Date(0),
  undefinedValue: undefined, undefinedItem: [1, undefined], sparse, cycle,
  bigint: 1n, fn: () => 1, instance: new (class Point { x = 1 })(),
})) {
  await outcome(`set-${name}`, () => cache.set(name, value));
  await outcome(`get-${name}`, () => cache.get(`g-${name}`, () => value));
}
await outcome("dropped-undefined-property", async () => {
  await cache.set("u", { a: 1, b: undefined });
  return await cache.get("u", () => "loaded");
});
await outcome("null-proto-object", async () => {
  const value = Object.assign(Object.create(null), { a: [1, "x"] });
  await cache.set("np", value);
  return await cache.get("np", () => "loaded");
});
const wrapped = manager.wrap(async (x) => x, { name: "f" });
await outcome("wrap-map-argument", () => wrapped(new Map()));
await outcome("wrap-undefined-argument", () => wrapped(undefined, 1));
await outcome("wrap-trailing-undefined", async () => [
  await wrapped(7), await manager.wrap(async () => "other", { name: "f" })(7, undefined),
]);
await outcome("wrap-anonymous", () => manager.wrap(async (x) => x)(1));
await outcome("not-connected", () => new cacheAside.CacheAside(createClient({ url })));

for (const [name, options] of Object.entries({
  resp2: { RESP: 2 }, keyPrefix: { keyPrefix: "app:" },
})) {
  const other = await createClient({ url, ...options }).connect();
  await outcome(`${name}-cache-aside`, async () => {
    const c = new cacheAside.CacheAside(other);
    const first = await c.get(`${name}:k`, () => ({ n: 1 }));
    const second = await c.get(`${name}:k`, () => "loaded");
    return [first, second, await client.exists(`cache:${name}:k`)];
  });
  await outcome(`${name}-stampede-lock`, async () => {
    const c = new stampedeLock.StampedeLockCache(other);
    const first = await c.cacheWithLock(`${name}:k`, () => 0);
    const second = await c.cacheWithLock(`${name}:k`, () => "loaded");
    return [first, second, await client.exists(`stampede:${name}:k`)];
  });
  await outcome(`${name}-early-refresh`, async () => {
    const c = new earlyRefresh.EarlyRefreshCache(other);
    const first = await c.getWithRefresh(`${name}:k`, () => false);
    const second = await c.getWithRefresh(`${name}:k`, () => "loaded");
    return [first, second, await client.exists(`early:${name}:k`)];
  });
  other.destroy();
}
client.destroy();
process.stdout.write(JSON.stringify(results));
"""

REFUSED = ["nan", "infinity", "map", "date", "undefinedValue", "undefinedItem", "sparse"]
REFUSED += ["cycle", "bigint", "fn", "instance"]


@pytest.fixture(scope="module")
def results(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("typescript-values")
    files = {}
    for pattern in ("cache-aside", "stampede-lock", "early-refresh"):
        rendered = render(pattern, "typescript")
        files[rendered.path.name] = rendered.text
    assert tsc(folder, files, emit=True) == {}
    out = node_run(folder, SCRIPT % {"url": json.dumps(redis_server.url)})
    data: dict = json.loads(out)
    return data


@pytest.mark.parametrize("name", REFUSED)
def test_values_json_cannot_hold_are_refused_not_changed(results: dict, name: str) -> None:
    assert results[f"set-{name}"]["error"] == "SerializationError", results[f"set-{name}"]
    assert results[f"get-{name}"]["error"] == "SerializationError", results[f"get-{name}"]


def test_plain_objects_read_back_as_stored(results: dict) -> None:
    assert results["dropped-undefined-property"] == {"ok": {"a": 1}}
    assert results["null-proto-object"] == {"ok": {"a": [1, "x"]}}


def test_wrapped_arguments_need_a_canonical_encoding(results: dict) -> None:
    assert results["wrap-map-argument"]["error"] == "UnencodableArgumentsError"
    assert results["wrap-undefined-argument"]["error"] == "UnencodableArgumentsError"
    assert "keyBuilder" in results["wrap-map-argument"]["message"]
    # f(7) and f(7, undefined) are one call: the second function gets the first's entry.
    assert results["wrap-trailing-undefined"] == {"ok": [7, 7]}
    assert results["wrap-anonymous"]["error"] == "ConfigurationError"


def test_a_client_that_is_not_connected_is_refused(results: dict) -> None:
    assert results["not-connected"]["error"] == "ConfigurationError"
    assert "client.connect()" in results["not-connected"]["message"]


@pytest.mark.parametrize("client", ["resp2", "keyPrefix"])
@pytest.mark.parametrize(
    ("pattern", "first"),
    [("cache-aside", {"n": 1}), ("stampede-lock", 0), ("early-refresh", False)],
)
def test_any_client_works_and_keys_stay_the_wire_format(
    results: dict, client: str, pattern: str, first: object
) -> None:
    assert results[f"{client}-{pattern}"] == {"ok": [first, first, 1]}
