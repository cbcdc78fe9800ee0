// What an adapter gives the bench (hits.ts): one pattern's hit path on the rendered
// module's own API. One file per pattern in adapters/, named after the pattern
// (adapters/cache-aside.ts), exporting `createHitPath`.
//
// Each adapter imports its rendered module statically ("../rendered/<file>.js", where
// bench/typescript_hits.py writes each rendering under the file name it has in
// output/typescript/), so the same tsc run that compiles the bench checks every call
// against the API the user gets.

import { createClient } from "redis";

/** The node-redis client every pattern and the floor share (connect it first). */
export function newClient(url: string) {
  // As the rendered modules ask: without the offline queue a command fails at once
  // while Redis is unreachable, instead of waiting for it.
  return createClient({ url, disableOfflineQueue: true });
}

/** Its type as createClient() infers it from those options (RESP3, no modules). */
export type Client = ReturnType<typeof newClient>;

export interface HitPath {
  /** Put `key`'s value in the cache, through the pattern's own write (or its miss). */
  fill(key: string): Promise<void>;
  /** One hit on `key`: the value the pattern returns for it. */
  hit(key: string): Promise<unknown>;
}

/**
 * Loader calls and store reads, counted by the adapters: a hit makes none, so any one
 * made while hits are counted or timed says the figures are not all hits.
 */
export class Loads {
  count = 0;
}

/** `value` is the JSON value every key holds, and what every loader returns. */
export type CreateHitPath = (
  client: Client,
  value: unknown,
  loads: Loads,
) => HitPath;

/** A loader that returns `value` and counts its calls into `loads`. */
export function countedLoader(value: unknown, loads: Loads): () => unknown {
  return () => {
    loads.count += 1;
    return value;
  };
}

/**
 * `store` (a rendered in-memory store standing for the database) with its reads counted
 * into `loads`: a hit reads Redis only.
 */
export function countingReads<S extends { get(id: string): Promise<unknown> }>(
  store: S,
  loads: Loads,
): S {
  const read = store.get.bind(store);
  return Object.assign(store, {
    get: async (id: string) => {
      loads.count += 1;
      return await read(id);
    },
  });
}

/** A rendered cache of rows (write-through, write-behind): `set` writes, `get` reads. */
interface RowCache {
  set(id: string, data: unknown): Promise<unknown>;
  get(id: string): Promise<{ data: unknown } | null>;
}

/** The hit path of a cache of rows: filled by its own write, a hit answers the data. */
export function rowHitPath(cache: RowCache, value: unknown): HitPath {
  return {
    fill: async (key) => {
      await cache.set(key, value);
    },
    hit: async (key) => (await cache.get(key))?.data,
  };
}
