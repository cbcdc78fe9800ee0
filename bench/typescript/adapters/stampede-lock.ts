// stampede-lock: cacheWithLock(key, loader) on a key its first call loaded (a miss
// under the lock fills it).

import type { Client, HitPath, Loads } from "../hit-path.js";
import { StampedeLockCache } from "../rendered/stampedeLock.js";

export function createHitPath(
  client: Client,
  value: unknown,
  loads: Loads,
): HitPath {
  const cache = new StampedeLockCache(client);
  const loader = (): unknown => {
    loads.count += 1;
    return value;
  };
  return {
    fill: async (key) => {
      await cache.cacheWithLock(key, loader);
    },
    hit: (key) => cache.cacheWithLock(key, loader),
  };
}
