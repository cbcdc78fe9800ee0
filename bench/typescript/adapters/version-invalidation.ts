// version-invalidation: getOrLoad("user", id, loader) of an entry set under the
// entity's current version.

import { countedLoader, type CreateHitPath } from "../hit-path.js";
import { VersionedCache } from "../rendered/versionInvalidation.js";

export const createHitPath: CreateHitPath = (client, value, loads) => {
  const cache = new VersionedCache(client);
  const loader = countedLoader(value, loads);
  return {
    fill: async (key) => {
      await cache.set("user", key, value);
    },
    hit: (key) => cache.getOrLoad("user", key, loader),
  };
};
