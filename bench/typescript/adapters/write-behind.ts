// write-behind: get(id) of a write that set(id, data) cached and queued. No flusher is
// started: a hit reads the cached write (data and version in one MGET) either way.

import type { Client, HitPath, Loads } from "../hit-path.js";
import {
  MemoryStore,
  WriteBehindCache,
  type Row,
} from "../rendered/writeBehind.js";

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
  const cache = new WriteBehindCache<unknown>(client, new CountedStore(loads));
  return {
    fill: async (key) => {
      await cache.set(key, value);
    },
    hit: async (key) => (await cache.get(key))?.data,
  };
}
