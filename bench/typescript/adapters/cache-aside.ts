// cache-aside: get(key, loader) on a key that set() filled.

import type { Client, HitPath, Loads } from "../hit-path.js";
import { CacheAside } from "../rendered/cacheAside.js";

export function createHitPath(
  client: Client,
  value: unknown,
  loads: Loads,
): HitPath {
  // Constructed as the module's docs show: the client and no config, so the rendered
  // defaults (prefix "cache", ttl 3600 s) apply.
  const cache = new CacheAside(client);
  const loader = (): unknown => {
    loads.count += 1;
    return value;
  };
  return {
    fill: (key) => cache.set(key, value),
    hit: (key) => cache.get(key, loader),
  };
}
