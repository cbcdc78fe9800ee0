// tag-invalidation: get(key) of an entry filed under two tags, as the Python bench
// files it ("products" and one tag of its own). get takes no loader: a miss answers
// undefined, which the bench refuses at setup.

import type { CreateHitPath } from "../hit-path.js";
import { TaggedCache } from "../rendered/tagInvalidation.js";

export const createHitPath: CreateHitPath = (client, value) => {
  const cache = new TaggedCache(client);
  return {
    fill: (key) =>
      cache.setWithTags(key, value, 3600, ["products", `item:${key}`]),
    hit: (key) => cache.get(key),
  };
};
