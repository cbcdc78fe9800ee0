// write-through: get(id) of a row that set(id, data) wrote through the store to Redis.

import { countingReads, rowHitPath, type CreateHitPath } from "../hit-path.js";
import { MemoryStore, WriteThroughCache } from "../rendered/writeThrough.js";

export const createHitPath: CreateHitPath = (client, value, loads) => {
  // A hit never reaches the store (nor the SQLite store of section 2's Python hits).
  const store = countingReads(new MemoryStore<unknown>(), loads);
  return rowHitPath(new WriteThroughCache<unknown>(client, store), value);
};
