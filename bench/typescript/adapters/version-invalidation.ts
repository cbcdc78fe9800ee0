// version-invalidation: getOrLoad("user", id, loader) of an entry set under the
// entity's current version.

import type { Client, HitPath, Loads } from "../hit-path.js";
import { VersionedCache } from "../rendered/versionInvalidation.js";

export function createHitPath(
  client: Client,
  value: unknown,
  loads: Loads,
): HitPath {
  const cache = new VersionedCache(client);
  const loader = (): unknown => {
    loads.count += 1;
    return value;
  };
  return {
    fill: async (key) => {
      await cache.set("user", key, value);
    },
    hit: (key) => cache.getOrLoad("user", key, loader),
  };
}
