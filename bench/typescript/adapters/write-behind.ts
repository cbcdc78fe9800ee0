// write-behind: get(id) of a write that set(id, data) cached and queued. No flusher is
// started: a hit reads the cached write (data and version in one MGET) either way.

import { countingReads, rowHitPath, type CreateHitPath } from "../hit-path.js";
import { MemoryStore, WriteBehindCache } from "../rendered/writeBehind.js";

export const createHitPath: CreateHitPath = (client, value, loads) => {
  const store = countingReads(new MemoryStore<unknown>(), loads);
  return rowHitPath(new WriteBehindCache<unknown>(client, store), value);
};
