// cache-aside: get(key, loader) on a key that set() filled.

import { countedLoader, type CreateHitPath } from "../hit-path.js";
import { CacheAside } from "../rendered/cacheAside.js";

export const createHitPath: CreateHitPath = (client, value, loads) => {
  // Constructed as the module's docs show: the client and no config, so the rendered
  // defaults (prefix "cache", ttl 3600 s) apply.
  const cache = new CacheAside(client);
  const loader = countedLoader(value, loads);
  return {
    fill: (key) => cache.set(key, value),
    hit: (key) => cache.get(key, loader),
  };
};
