// stampede-lock: cacheWithLock(key, loader) on a key its first call loaded (a miss
// under the lock fills it).

import { countedLoader, type CreateHitPath } from "../hit-path.js";
import { StampedeLockCache } from "../rendered/stampedeLock.js";

export const createHitPath: CreateHitPath = (client, value, loads) => {
  const cache = new StampedeLockCache(client);
  const loader = countedLoader(value, loads);
  return {
    fill: async (key) => {
      await cache.cacheWithLock(key, loader);
    },
    hit: (key) => cache.cacheWithLock(key, loader),
  };
};
