// write-through: get(id) of a row that set(id, data) wrote through the store to Redis.

import type { Client, HitPath, Loads } from "../hit-path.js";
import {
  MemoryStore,
  WriteThroughCache,
  type Row,
} from "../rendered/writeThrough.js";

/** The rendered in-memory store standing for the database, its reads counted. */
class CountedStore extends MemoryStore<unknown> {
  constructor(private readonly loads: Loads) {
    super();
  }

  override async get(id: string): Promise<Row<unknown> | null> {
    this.loads.count += 1;
    return await super.get(id);
  }
}

export function createHitPath(
  client: Client,
  value: unknown,
  loads: Loads,
): HitPath {
  // A hit never reaches the store (nor the SQLite store of section 2's Python hits).
  const cache = new WriteThroughCache<unknown>(client, new CountedStore(loads));
  return {
    fill: async (key) => {
      await cache.set(key, value);
    },
    hit: async (key) => (await cache.get(key))?.data,
  };
}
